"""Several k6 load generators (`k6_hosts`), for real over SSH: two testbed
k6 hosts, each sshd in a network namespace of its own with its own client
key (instances TESTBED_ID and TESTBED_ID2). setup_global.yml installs k6 on
both and gives the targets each generator's key, collect/post.yml fetches a
target's k6 logs from both, teardown_k6.yml cleans both, and bad entries
fail naming the entry and the field.

The namespaces share this machine's file system: k6 is installed into one
directory of the test (reached through each generator's own SSH session),
while each generator has a workspace root of its own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from playbook_runner import (
    ANSIBLE_DIR,
    GENERATOR_NAME,
    HARNESS_DIR,
    Ansible,
    K6Host,
    PlaybookRun,
    TargetSshd,
    task_results,
)

SETUP_GLOBAL = ANSIBLE_DIR / "setup_global.yml"
TEARDOWN = ANSIBLE_DIR / "teardown_k6.yml"
HARNESS = HARNESS_DIR / "collect.yml"
GEN0, GEN1 = f"{GENERATOR_NAME}-0", f"{GENERATOR_NAME}-1"
K6_VERSION_TASK = "Run k6 version"
KEYS_TASK = "Copy the k6 SSH keys of the generators to ~/.ssh (k6_hosts)"
RUN_ID = "run-20240101-1"
CONFIG_IDS = ("0a1b2c3d4e5f", "5f4e3d2c1b0a")


def flat(run: PlaybookRun) -> str:
    """The output with the default callback's line folding undone."""
    return " ".join(run.output.split())


def two_generators(ansible: Ansible, k6host2: K6Host, ws0: Path, ws1: Path) -> dict[str, Any]:
    """plugin_settings.dfaas with k6_hosts: entry 0 takes the single-generator
    settings (the first k6 host, its key, ws0), entry 1 names everything."""
    return {
        **ansible.dfaas_settings(ws0),
        "k6_hosts": [
            {"host": ansible.k6host.address},
            {
                "host": k6host2.address,
                "user": k6host2.user,
                "port": k6host2.port,
                "ssh_key": str(k6host2.key),
                "workspace_root": str(ws1),
            },
        ],
    }


def install_vars(ansible: Ansible, k6_binary: Path, k6_version: str, bin_dir: Path) -> dict[str, Any]:
    return {
        "k6_version": k6_version,
        "k6_install_method": "binary",
        "k6_binary_src": str(k6_binary),
        "k6_bin_dir": str(bin_dir),
        **ansible.generator_vars(),
    }


# -- setup_global.yml ------------------------------------------------------


def test_setup_global_installs_k6_on_every_generator_and_gives_targets_each_key(
    ansible: Ansible, k6host2: K6Host, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    ws0, ws1, bin_dir = tmp_path / "ws0", tmp_path / "ws1", tmp_path / "bin"
    # Made beforehand: two generators installing into one shared directory
    # would otherwise both create it at once.
    bin_dir.mkdir()
    extra = {
        "benchmark_config": {"plugin_settings": {"dfaas": two_generators(ansible, k6host2, ws0, ws1)}},
        **install_vars(ansible, k6_binary, k6_version, bin_dir),
    }
    hosts = {"target1": ansible.target_host_vars(target)}

    first = ansible.run(SETUP_GLOBAL, hosts, extra).assert_ok()

    assert set(first.recap) == {"localhost", "target1", GEN0, GEN1}, first.describe()
    assert sorted(task_results(first.output, K6_VERSION_TASK)) == [("ok", GEN0), ("ok", GEN1)], first.describe()
    # k6 runs in each generator's own SSH session, and each got its workspace root.
    for host in (ansible.k6host, k6host2):
        proc = ansible.ssh([str(bin_dir / "k6"), "version"], host=host)
        assert proc.returncode == 0 and proc.stdout.startswith(f"k6 v{k6_version} "), (host, proc.stdout, proc.stderr)
    assert ws0.is_dir() and ws1.is_dir()
    assert sorted(task_results(first.output, "Create the k6 workspace root")) == [("changed", GEN0), ("changed", GEN1)]
    # Each generator's key at ~/.ssh/dfaas_k6_key_<index>; k6_ssh_key, which
    # entry 0 uses, also at ~/.ssh/dfaas_k6_key.
    ssh_dir = target.home / ".ssh"
    expected = {
        "dfaas_k6_key_0": ansible.k6host.key.read_bytes(),
        "dfaas_k6_key_1": k6host2.key.read_bytes(),
        "dfaas_k6_key": ansible.k6host.key.read_bytes(),
    }
    assert expected["dfaas_k6_key_0"] != expected["dfaas_k6_key_1"], "the two k6 hosts should have their own keys"
    assert {p.name: p.read_bytes() for p in ssh_dir.iterdir()} == expected
    for name in expected:
        assert stat.S_IMODE((ssh_dir / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700
    assert task_results(first.output, KEYS_TASK) == [("changed", "target1")] * 3

    second = ansible.run(SETUP_GLOBAL, hosts, extra).assert_ok()
    assert second.total_changed() == 0, second.describe()


def test_setup_global_with_a_loopback_entry_makes_each_target_a_generator(
    ansible: Ansible, k6host2: K6Host, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    """A loopback entry is each target itself (as a loopback k6_host): the
    target gets k6 and the entry's workspace root; that entry's key is a
    path on the target and is not copied."""
    ws_local, ws1, bin_dir = tmp_path / "ws-local", tmp_path / "ws1", tmp_path / "bin"
    bin_dir.mkdir()
    settings = {
        # The loopback entry's user (and so its workspace owner) is k6_user.
        "k6_user": ansible.k6host.user,
        "k6_hosts": [
            {"host": "127.0.0.1", "workspace_root": str(ws_local), "ssh_key": "~/.ssh/own_key"},
            {
                "host": k6host2.address,
                "user": k6host2.user,
                "port": k6host2.port,
                "ssh_key": str(k6host2.key),
                "workspace_root": str(ws1),
            },
        ],
    }
    extra = {
        "benchmark_config": {"plugin_settings": {"dfaas": settings}},
        **install_vars(ansible, k6_binary, k6_version, bin_dir),
    }

    run = ansible.run(SETUP_GLOBAL, {"target1": ansible.target_host_vars(target)}, extra).assert_ok()

    assert set(run.recap) == {"localhost", "target1", GEN1}, run.describe()
    assert sorted(task_results(run.output, K6_VERSION_TASK)) == [("ok", GEN1), ("ok", "target1")], run.describe()
    assert ws_local.is_dir() and ws1.is_dir()
    ssh_dir = target.home / ".ssh"
    assert {p.name: p.read_bytes() for p in ssh_dir.iterdir()} == {"dfaas_k6_key_1": k6host2.key.read_bytes()}


def test_missing_key_of_a_generator_fails_naming_the_entry(
    ansible: Ansible, k6host2: K6Host, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    name = f"no-such-dfaas-key-{os.getpid()}"
    settings = two_generators(ansible, k6host2, tmp_path / "ws0", tmp_path / "ws1")
    settings["k6_hosts"][1]["ssh_key"] = f"~/{name}"
    extra = {"benchmark_config": {"plugin_settings": {"dfaas": settings}},
             **install_vars(ansible, k6_binary, k6_version, tmp_path / "bin")}

    run = ansible.run(SETUP_GLOBAL, {"target1": ansible.local_host_vars()}, extra)

    assert run.rc != 0
    assert run.recap["localhost"]["failed"] == 1, run.describe()
    expanded = Path(os.environ["HOME"]) / name
    assert (
        f"k6_hosts[1].ssh_key ~/{name} (plugin_settings.dfaas or extra var) does not exist on the controller: "
        f"no file {expanded}. It is the private key that reaches the k6 generator k6_hosts[1] "
        f"{k6host2.user}@{k6host2.address}:{k6host2.port}"
    ) in flat(run), run.describe()
    assert not (tmp_path / "bin").exists()


ENTRY_1 = "invalid k6_hosts[1] (plugin_settings.dfaas or extra var): "


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"host": ""}, ENTRY_1 + "host is missing or empty"),
        ({"port": 22}, ENTRY_1 + "host is missing or empty"),
        (
            {"host": "10.0.0.6 -oProxyCommand=x"},
            ENTRY_1 + 'host "10.0.0.6 -oProxyCommand=x" is not an address or host name (no spaces;',
        ),
        ({"host": "-oProxyCommand=x"}, ENTRY_1 + 'host "-oProxyCommand=x" is not an address or host name'),
        ({"host": "local"}, ENTRY_1 + "host is 'local': k6_hosts entries are generators reached over SSH"),
        ({"host": "10.0.0.6", "user": "root; rm"}, ENTRY_1 + 'user "root; rm" is not a user name'),
        ({"host": "10.0.0.6", "port": 70000}, ENTRY_1 + "port 70000 is not a port number 1..65535"),
        ({"host": "10.0.0.6", "port": "ssh"}, ENTRY_1 + "port ssh is not a port number 1..65535"),
        ({"host": "10.0.0.6", "workspace_root": "ws"}, ENTRY_1 + 'workspace_root "ws" is not an absolute path'),
        ({"host": "10.0.0.6", "workspace_root": "/srv/../etc"}, ENTRY_1 + "workspace_root \"/srv/../etc\" has a '..' component"),
        (
            {"host": "10.0.0.6", "hots": "x"},
            ENTRY_1 + "unknown field(s) hots (known: host, user, port, ssh_key, workspace_root, known_hosts_file)",
        ),
        (
            "10.0.0.6",
            ENTRY_1 + 'is not a mapping of host, user, port, ssh_key, workspace_root, known_hosts_file (got "10.0.0.6")',
        ),
        ({"host": "::1"}, "entries 0, 1 are all loopback addresses, which all mean each target itself: give at most one"),
    ],
    ids=[
        "empty-host", "no-host", "host-with-space", "host-option", "local", "user", "port-range", "port-text",
        "relative-root", "dotdot-root", "unknown-field", "not-a-mapping", "two-loopbacks",
    ],
)
def test_a_bad_entry_fails_naming_its_index_and_field(
    ansible: Ansible, tmp_path: Path, entry: Any, message: str
) -> None:
    settings = {"k6_hosts": [{"host": "127.0.0.1"}, entry]}
    extra = {"benchmark_config": {"plugin_settings": {"dfaas": settings}}, "k6_bin_dir": str(tmp_path / "bin")}

    run = ansible.run(SETUP_GLOBAL, {"target1": ansible.local_host_vars()}, extra)

    assert run.rc != 0
    assert run.recap["localhost"]["failed"] == 1, run.describe()
    assert message in flat(run).replace('\\"', '"'), run.describe()
    assert "target1" not in run.recap, "nothing may run on a target after bad settings"


def test_k6_hosts_must_be_a_list(ansible: Ansible, tmp_path: Path) -> None:
    extra = {"k6_hosts": {"host": "10.0.0.5"}}

    run = ansible.run(SETUP_GLOBAL, {"target1": ansible.local_host_vars()}, extra)

    assert run.rc != 0
    assert "invalid k6_hosts (plugin_settings.dfaas or extra var): it must be a list of generators" in flat(run), run.describe()


# -- collect ---------------------------------------------------------------


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def collect_vars(settings: dict[str, Any], tmp_path: Path, ansible: Ansible) -> dict[str, Any]:
    return {
        "benchmark_config": {
            "plugin_settings": {"dfaas": settings},
            "workloads": {"dfaas": {"plugin": "dfaas", "enabled": True, "options": {}}},
            "plugin_assets": {
                "dfaas": {
                    "collect_pre_playbook": str(ANSIBLE_DIR / "collect" / "pre.yml"),
                    "collect_post_playbook": str(ANSIBLE_DIR / "collect" / "post.yml"),
                }
            },
        },
        "run_id": RUN_ID,
        "remote_output_root": str(tmp_path / "remote"),
        "output_root": str(tmp_path / "out"),
        "per_host_output": {},
        **ansible.generator_vars(),
    }


def test_collect_fetches_the_k6_logs_of_every_generator(
    ansible: Ansible, k6host2: K6Host, tmp_path: Path
) -> None:
    ws0, ws1 = tmp_path / "ws0", tmp_path / "ws1"
    # Each generator ran its share of every configuration of target1; target2
    # has logs on generator 1 only.
    for ws in (ws0, ws1):
        for config_id in CONFIG_IDS:
            write(ws / "target1" / RUN_ID / config_id / "k6.log", os.urandom(1024))
    write(ws1 / "target2" / RUN_ID / CONFIG_IDS[0] / "k6.log", os.urandom(300))
    write(ws0 / "target1" / "run-older" / CONFIG_IDS[0] / "k6.log", b"an older run\n")
    write(tmp_path / "remote" / "target1" / "dfaas" / "results.csv", b"function_env,rate_function_env\nenv,10\n")
    extra = collect_vars(two_generators(ansible, k6host2, ws0, ws1), tmp_path, ansible)
    hosts = {"target1": ansible.ssh_host_vars(), "target2": ansible.local_host_vars()}

    run = ansible.run(HARNESS, hosts, extra).assert_ok()

    logs = tmp_path / "out" / "logs" / "k6"
    expected = {
        f"target1/{gen}/{config_id}/k6.log": (ws / "target1" / RUN_ID / config_id / "k6.log").read_bytes()
        for gen, ws in ((GEN0, ws0), (GEN1, ws1))
        for config_id in CONFIG_IDS
    }
    expected[f"target2/{GEN1}/{CONFIG_IDS[0]}/k6.log"] = (ws1 / "target2" / RUN_ID / CONFIG_IDS[0] / "k6.log").read_bytes()
    assert files_under(logs) == expected
    assert (tmp_path / "out" / "target1" / "dfaas" / "results.csv").is_file()
    assert f"dfaas collect: no k6 logs for target2 under {ws0 / 'target2' / RUN_ID} on {GEN0}" in flat(run), run.describe()

    again = ansible.run(HARNESS, hosts, extra).assert_ok()
    assert again.total_changed() == 0, again.describe()


def test_collect_with_one_generator_unreachable_fetches_the_others(
    ansible: Ansible, k6host2: K6Host, tmp_path: Path
) -> None:
    ws0, ws1 = tmp_path / "ws0", tmp_path / "ws1"
    for ws in (ws0, ws1):
        write(ws / "target1" / RUN_ID / CONFIG_IDS[0] / "k6.log", os.urandom(512))
    settings = two_generators(ansible, k6host2, ws0, ws1)
    # Nothing listens there: generator 1 is unreachable.
    settings["k6_hosts"][1]["port"] = k6host2.port + 1
    extra = collect_vars(settings, tmp_path, ansible)

    run = ansible.run(HARNESS, {"target1": ansible.ssh_host_vars()}, extra).assert_ok()

    assert files_under(tmp_path / "out" / "logs" / "k6") == {
        f"target1/{GEN0}/{CONFIG_IDS[0]}/k6.log": (ws0 / "target1" / RUN_ID / CONFIG_IDS[0] / "k6.log").read_bytes()
    }
    assert f"no k6 logs for target1 (k6 generator {GEN1} unreachable" in flat(run), run.describe()


# -- teardown_k6.yml -------------------------------------------------------


def test_teardown_removes_the_run_on_every_generator(ansible: Ansible, k6host2: K6Host, tmp_path: Path) -> None:
    ws0, ws1 = tmp_path / "ws0", tmp_path / "ws1"
    for ws in (ws0, ws1):
        for run_id in ("run-7", "run-6"):
            write(ws / "target1" / run_id / CONFIG_IDS[0] / "k6.log", b"k6 output\n")
    extra = {
        "benchmark_config": {"plugin_settings": {"dfaas": two_generators(ansible, k6host2, ws0, ws1)}},
        "run_id": "run-7",
        # An extra var k6_workspace_root is the default of entries without
        # their own: entry 1's workspace_root still wins.
        "k6_workspace_root": str(ws0),
        **ansible.generator_vars(),
    }

    run = ansible.run(TEARDOWN, {"target1": ansible.local_host_vars()}, extra).assert_ok()

    assert run.recap[GEN0]["changed"] == 1 and run.recap[GEN1]["changed"] == 1, run.describe()
    for ws in (ws0, ws1):
        assert {str(p.relative_to(ws)) for p in ws.glob("*/*")} == {"target1/run-6"}, ws
