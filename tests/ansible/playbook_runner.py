"""Runs the bundled playbooks for the tests, for real.

`ansible-playbook` runs with a test-private configuration: its own
known_hosts (StrictHostKeyChecking=accept-new, never the user's file), the
testbed's client key, its own temp and control-socket directories. The
PLAY RECAP and the per-task host lines of the default callback are parsed
into data the tests assert on.

`TargetSshd` is an lb target for the tests: one more sshd in the k6 host's
network namespace whose sessions have a HOME of the test's own, so that
what the set-up writes to a target's ~/.ssh lands in the test's directory
(the namespace shares this machine's file system).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
K6HOST_SCRIPT = REPO / "testbed" / "k6host.sh"
# The testbed instance these tests own (netns lbd-k6-7, 10.211.7.2);
# LBD_ANSIBLE_TESTBED_ID picks another (to run beside someone else's tests).
TESTBED_ID = int(os.environ.get("LBD_ANSIBLE_TESTBED_ID", "7"))
# The second k6 host of the tests of several generators (netns lbd-k6-17,
# 10.211.17.2); LBD_ANSIBLE_TESTBED_ID2 picks another.
TESTBED_ID2 = int(os.environ.get("LBD_ANSIBLE_TESTBED_ID2", "17"))
GENERATOR_NAME = "dfaas-k6"

_RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)\s+"
    r"skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)
_HOST_LINE_RE = re.compile(r"^(?P<status>ok|changed|skipping|fatal|failed|included): \[(?P<host>[^\]\s]+)")


def lb_dfaas_ansible_dir() -> Path:
    """lb's own dfaas playbooks, from the lb source tree (`$LB_SOURCE_DIR`, else
    the pinned copy beside this repository); a missing tree fails the test."""
    root = Path(os.environ.get("LB_SOURCE_DIR") or REPO.parent / "shared" / "vendor" / "linux-benchmark-lib")
    path = root / "lb_plugins" / "plugins" / "dfaas" / "ansible"
    if not (path / "setup_target.yml").is_file():
        raise RuntimeError(f"lb's dfaas playbooks are not at {path}: set LB_SOURCE_DIR to an lb source tree")
    return path


def require_tool(name: str) -> str:
    """Path of a required command-line tool; a missing one fails the test run."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is not installed (or not on PATH); the Ansible tests need it: "
            "pip install ansible-core ansible-lint"
        )
    return path


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """Per-host counters of the last PLAY RECAP in `output`."""
    start = output.rfind("PLAY RECAP")
    if start < 0:
        return {}
    recap: dict[str, dict[str, int]] = {}
    for match in _RECAP_RE.finditer(output, start):
        counts = match.groupdict()
        host = counts.pop("host")
        recap[host] = {key: int(value) for key, value in counts.items()}
    return recap


def task_results(output: str, task_name: str) -> list[tuple[str, str]]:
    """(status, host) lines printed under every `TASK [task_name]` header."""
    results: list[tuple[str, str]] = []
    inside = False
    for line in output.splitlines():
        if line.startswith(("TASK [", "PLAY [", "PLAY RECAP")):
            inside = line.startswith(f"TASK [{task_name}]")
            continue
        if inside:
            match = _HOST_LINE_RE.match(line)
            if match:
                results.append((match["status"], match["host"]))
    return results


@dataclass
class PlaybookRun:
    """One finished ansible-playbook run."""

    args: list[str]
    rc: int
    output: str
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-80:])
        return f"ansible-playbook {' '.join(self.args)}\nrc={self.rc}\n{tail}"

    def assert_ok(self) -> PlaybookRun:
        assert self.rc == 0, self.describe()
        assert self.recap, f"no PLAY RECAP\n{self.describe()}"
        for host, counts in self.recap.items():
            assert counts["failed"] == 0 and counts["unreachable"] == 0, f"{host}: {counts}\n{self.describe()}"
        return self

    def total_changed(self) -> int:
        return sum(counts["changed"] for counts in self.recap.values())


@dataclass(frozen=True)
class K6Host:
    """Connection facts of the testbed's k6 host (`k6host.sh env`)."""

    address: str
    port: int
    user: str
    key: Path
    state_dir: Path
    netns: str

    @classmethod
    def from_env_lines(cls, text: str) -> K6Host:
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        return cls(
            address=values["K6_HOST"],
            port=int(values["K6_PORT"]),
            user=values["K6_USER"],
            key=Path(values["K6_SSH_KEY"]),
            state_dir=Path(values["K6HOST_STATE_DIR"]),
            netns=values["K6_NETNS"],
        )


class Ansible:
    """ansible-playbook with the tests' private configuration."""

    def __init__(self, playbook_bin: str, workdir: Path, k6host: K6Host) -> None:
        self.playbook_bin = playbook_bin
        self.workdir = workdir
        self.k6host = k6host
        self.python = sys.executable
        self.known_hosts = workdir / "known_hosts"
        self.known_hosts.touch()
        # Unix socket paths are short-lived and length-limited: keep them in /tmp.
        self.control_dir = Path(tempfile.mkdtemp(prefix="lbd-ans-cp-"))
        for name in ("local-tmp", "remote-tmp", "home"):
            (workdir / name).mkdir(exist_ok=True)
        config = workdir / "ansible.cfg"
        config.write_text("[defaults]\nretry_files_enabled = False\n")
        self._counter = 0
        self.env = dict(os.environ)
        self.env.update(
            {
                "ANSIBLE_CONFIG": str(config),
                "ANSIBLE_HOME": str(workdir / "home"),
                "ANSIBLE_LOCAL_TEMP": str(workdir / "local-tmp"),
                "ANSIBLE_REMOTE_TEMP": str(workdir / "remote-tmp"),
                "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
                "ANSIBLE_PIPELINING": "1",
                "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=15s",
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
                "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "1",
                "K6_NO_USAGE_REPORT": "true",
            }
        )

    @property
    def ssh_common_args(self) -> str:
        return (
            f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={self.known_hosts} "
            "-o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10"
        )

    def ssh_host_vars(self) -> dict[str, Any]:
        """Inventory vars of a host reached over SSH to the testbed's k6 host."""
        return {
            "ansible_connection": "ssh",
            "ansible_host": self.k6host.address,
            "ansible_port": self.k6host.port,
            "ansible_user": self.k6host.user,
            "ansible_ssh_private_key_file": str(self.k6host.key),
            "ansible_ssh_common_args": self.ssh_common_args,
            # The namespace shares the file system: the same interpreter is there.
            "ansible_python_interpreter": self.python,
        }

    def local_host_vars(self) -> dict[str, Any]:
        # No sudo here: plays that become (as lb's do) run as the login user, root.
        return {"ansible_connection": "local", "ansible_python_interpreter": self.python, "ansible_become": False}

    def target_host_vars(self, target: TargetSshd) -> dict[str, Any]:
        """Inventory vars of an lb target served by `target`."""
        return {**self.ssh_host_vars(), "ansible_port": target.port, "ansible_become": False}

    def dfaas_settings(self, workspace_root: Path) -> dict[str, Any]:
        """plugin_settings.dfaas pointing at the testbed's k6 host."""
        return {
            "k6_host": self.k6host.address,
            "k6_user": self.k6host.user,
            "k6_port": self.k6host.port,
            "k6_ssh_key": str(self.k6host.key),
            "k6_workspace_root": str(workspace_root),
        }

    def generator_vars(self) -> dict[str, Any]:
        """Extra vars for the generator that setup_global/teardown/collect add."""
        return {"k6_ssh_common_args": self.ssh_common_args, "k6_python_interpreter": self.python}

    def run(
        self,
        playbook: Path,
        hosts: dict[str, dict[str, Any]],
        extra_vars: dict[str, Any] | None = None,
        timeout_s: int = 900,
    ) -> PlaybookRun:
        self._counter += 1
        inventory = self.workdir / f"inventory-{self._counter}.yml"
        inventory.write_text(json.dumps({"all": {"hosts": hosts}}, indent=1))
        args = ["-i", str(inventory), str(playbook)]
        if extra_vars is not None:
            vars_file = self.workdir / f"extra-vars-{self._counter}.json"
            vars_file.write_text(json.dumps(extra_vars, indent=1))
            args += ["-e", f"@{vars_file}"]
        proc = subprocess.run(
            [self.playbook_bin, *args],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
        )
        (self.workdir / f"output-{self._counter}.txt").write_text(proc.stdout)
        return PlaybookRun(args=args, rc=proc.returncode, output=proc.stdout, recap=parse_recap(proc.stdout))

    def ssh(self, command: list[str], host: K6Host | None = None) -> subprocess.CompletedProcess[str]:
        """Runs a command on the k6 host (or `host`) over plain ssh (a non-interactive session)."""
        host = host or self.k6host
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(host.key),
                "-p",
                str(host.port),
                *self.ssh_common_args.split(),
                f"{host.user}@{host.address}",
                "--",
                *command,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def close(self) -> None:
        """Ends the SSH control masters ansible-playbook left behind."""
        for socket in sorted(self.control_dir.iterdir()):
            subprocess.run(
                ["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "lbd-control-master"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
            )
        shutil.rmtree(self.control_dir, ignore_errors=True)


class TargetSshd:
    """An sshd in the k6 host's namespace whose sessions get HOME=`home`.

    Started by the test that owns it and stopped by the pid it recorded.
    Logins use the k6 host's client key (its authorized_keys file is only
    read). Ports are never reused within a session, so the tests' shared
    known_hosts never sees two host keys for one address and port.
    """

    _next_port = 2300

    def __init__(self, k6host: K6Host, workdir: Path, host_key: Path) -> None:
        self.k6host = k6host
        self.workdir = workdir
        self.home = workdir / "home"
        self.home.mkdir(parents=True)
        self.port = TargetSshd._next_port
        TargetSshd._next_port += 1
        self.pid_file = workdir / "sshd.pid"
        self.config = workdir / "sshd_config"
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {k6host.address}",
                    f"HostKey {host_key}",
                    f"PidFile {self.pid_file}",
                    f"AuthorizedKeysFile {k6host.state_dir / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PrintMotd no",
                    f"SetEnv HOME={self.home} PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        self.pid: int | None = None

    def start(self) -> TargetSshd:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.k6host.netns, "/usr/sbin/sshd", "-f", str(self.config),
             "-E", str(self.workdir / "sshd.log")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"target sshd did not start: {proc.stdout}{proc.stderr}")
        deadline = time.monotonic() + 10
        while not (self.pid_file.exists() and self.pid_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"target sshd wrote no pid file {self.pid_file}")
            time.sleep(0.05)
        self.pid = int(self.pid_file.read_text().strip())
        return self

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.pid = None
