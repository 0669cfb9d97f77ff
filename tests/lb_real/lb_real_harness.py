"""Harness for running lb's real controller (``lb run``) against the testbed.

Pieces, each used by ``conftest.py`` / ``test_lb_run_real.py``:

- :func:`lb_installation` — an editable lb (a writable copy of the vendored
  source) in a Python 3.12 venv, plus a uv cache from which targets without
  a route to PyPI can ``uv sync`` lb's locked dependencies. Cached under
  ``$LB_REAL_CACHE_DIR`` (default ``<repo>/target/lb-real``), keyed by a hash
  of the vendored tree and the interpreter, built once under a file lock.
- :func:`install_plugin` — ``lb-dfaas lb-install`` into that copy.
- :class:`LbRun` — one ``lb run`` of a benchmark config: starts lb in its own
  session with the offline workarounds in its environment, waits, stops
  every process it left behind (by pid), and reads lb's journal, run log and
  output tree.
- readers: lb's poll batches from its run log, the LB_EVENT stream with lb's
  poller rule, ``;``/``,`` CSVs, the gateway's truth, k6 processes on the
  k6 host over SSH.

Nothing here talks to anything but loopback and the testbed's namespaces.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTBED = REPO_ROOT / "testbed" / "testbed.sh"
LBTARGET = REPO_ROOT / "testbed" / "lbtarget.sh"

#: Bumped when the cache layout or its build steps change.
CACHE_FORMAT = "1"

#: lb's poller ends a repetition at the first of these (stream_events_step.yml).
TERMINAL_STATUSES = ("done", "failed", "stopped")


class HarnessError(RuntimeError):
    """The environment cannot run lb for real (says what is missing)."""


# --- locating lb and Python 3.12 ---------------------------------------------


def find_lb_source() -> Path:
    """The vendored lb tree: ``$LB_SOURCE_DIR``, else ``<repo>/../shared/vendor/
    linux-benchmark-lib``, else ``/work/shared/vendor/linux-benchmark-lib``."""
    candidates = []
    if os.environ.get("LB_SOURCE_DIR"):
        candidates.append(Path(os.environ["LB_SOURCE_DIR"]))
    candidates += [
        REPO_ROOT.parent / "shared" / "vendor" / "linux-benchmark-lib",
        Path("/work/shared/vendor/linux-benchmark-lib"),
    ]
    for path in candidates:
        if (path / "pyproject.toml").is_file() and (path / "lb_controller").is_dir():
            return path.resolve()
    raise HarnessError(
        "lb's source tree was not found (set LB_SOURCE_DIR); looked in "
        + ", ".join(str(p) for p in candidates)
    )


def find_python312() -> Path:
    """A CPython 3.12: ``$LB_PYTHON``, pyenv's 3.12.x, or ``python3.12`` on PATH."""
    candidates: list[Path] = []
    if os.environ.get("LB_PYTHON"):
        candidates.append(Path(os.environ["LB_PYTHON"]))
    pyenv = Path("/root/.pyenv/versions")
    if pyenv.is_dir():
        candidates += sorted(pyenv.glob("3.12*/bin/python3.12"), reverse=True)
    found = shutil.which("python3.12")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            probe = subprocess.run(
                [str(path), "-c", "import sys, venv; print(sys.version_info[:2] == (3, 12))"],
                capture_output=True,
                text=True,
            )
            if probe.stdout.strip() == "True":
                return path
    raise HarnessError("lb needs Python 3.12: none found (set LB_PYTHON)")


def tree_digest(root: Path, extra: str) -> str:
    """SHA-256 of every file's relative path and content below ``root``."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the cached lb installation --------------------------------------------


@dataclass
class LbInstallation:
    root: Path  # cache entry
    source: Path  # the writable, editable copy of lb's tree
    venv: Path
    uv_cache: Path
    python312: Path
    build_seconds: float | None  # None: taken from the cache
    timings: dict = field(default_factory=dict)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def lb(self) -> Path:
        return self.venv / "bin" / "lb"

    @property
    def uv(self) -> Path:
        return self.venv / "bin" / "uv"


def _run(cmd: list[str], *, env: dict | None = None, cwd: Path | None = None, timeout: float = 1800) -> None:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise HarnessError(
            f"{shlex.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )


def _writable_copy(source: Path, dest: Path) -> None:
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    for path in [dest, *dest.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


def cache_dir() -> Path:
    return Path(os.environ.get("LB_REAL_CACHE_DIR") or REPO_ROOT / "target" / "lb-real")


def lb_installation(log: Callable[[str], None] = lambda _msg: None) -> LbInstallation:
    """The cached editable lb + uv cache, built now if missing (~1-2 min)."""
    source = find_lb_source()
    python312 = find_python312()
    version = subprocess.run(
        [str(python312), "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    ).stdout.strip()
    key = tree_digest(source, f"{CACHE_FORMAT}\0{python312}\0{version}")[:16]
    root = cache_dir() / key
    install = LbInstallation(
        root=root,
        source=root / "lb",
        venv=root / "venv",
        uv_cache=root / "uv-cache",
        python312=python312,
        build_seconds=None,
    )
    ready = root / "READY"
    with file_lock(cache_dir() / f"{key}.lock"):
        if ready.is_file():
            install.timings = json.loads(ready.read_text())
            return install
        log(f"building the lb installation in {root} (once per lb tree)")
        started = time.monotonic()
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        _writable_copy(source, install.source)
        _run([str(python312), "-m", "venv", str(install.venv)])
        pip_started = time.monotonic()
        _run(
            [str(install.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "-e", f"{install.source}[controller,ui]", "uv"]
        )
        pip_seconds = time.monotonic() - pip_started
        # The targets' `uv sync --frozen --no-dev` of the same tree, offline:
        # fill the cache here, where PyPI is reachable.
        prefill = root / "uv-prefill"
        _writable_copy(source, prefill)
        uv_env = dict(
            os.environ,
            UV_CACHE_DIR=str(install.uv_cache),
            UV_PYTHON_DOWNLOADS="never",
            PATH=f"{python312.parent}:{os.environ.get('PATH', '')}",
        )
        uv_env.pop("VIRTUAL_ENV", None)
        uv_started = time.monotonic()
        _run([str(install.uv), "venv", "--python", str(python312), ".venv"], env=uv_env, cwd=prefill)
        _run([str(install.uv), "sync", "--frozen", "--no-dev"], env=uv_env, cwd=prefill)
        uv_seconds = time.monotonic() - uv_started
        shutil.rmtree(prefill)
        install.build_seconds = time.monotonic() - started
        install.timings = {
            "built_at": time.time(),
            "total_s": round(install.build_seconds, 1),
            "pip_install_s": round(pip_seconds, 1),
            "uv_cache_s": round(uv_seconds, 1),
            "python": version,
            "source": str(source),
        }
        ready.write_text(json.dumps(install.timings, indent=1))
        return install


def find_lb_dfaas() -> Path:
    """``$LB_DFAAS_BIN``, else the newer of the repository's debug/release builds."""
    if os.environ.get("LB_DFAAS_BIN"):
        return Path(os.environ["LB_DFAAS_BIN"])
    builds = [REPO_ROOT / "target" / kind / "lb-dfaas" for kind in ("debug", "release")]
    builds = [b for b in builds if b.is_file()]
    if not builds:
        raise HarnessError("no lb-dfaas build: run `cargo build --bin lb-dfaas` (or set LB_DFAAS_BIN)")
    return max(builds, key=lambda b: b.stat().st_mtime)


def install_plugin(install: LbInstallation, binary: Path) -> dict:
    """``lb-dfaas lb-install`` into the editable copy; returns its JSON report."""
    probe = subprocess.run([str(binary), "lb-install", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise HarnessError(f"{binary} has no `lb-install` command: rebuild it ({probe.stderr.strip()})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LB_")}
    done = subprocess.run(
        [str(binary), "lb-install", "--python", str(install.python)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if done.returncode != 0:
        raise HarnessError(f"lb-install exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout)


# --- testbed and target ------------------------------------------------------


def parse_env(listing: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in listing.splitlines():
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            values[key] = value
    return values


def script_env(script: Path, test_id: int) -> dict[str, str]:
    listing = subprocess.run(
        [str(script), "env", str(test_id)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return parse_env(listing)


def namespace_pids(netns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def stop_pids(pids: list[int], grace_s: float = 5.0) -> None:
    """TERM, then KILL what is left after ``grace_s`` (these pids only)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def http_json(url: str, method: str = "GET") -> object:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body.strip() else None


@dataclass
class SshHost:
    """A testbed host over SSH (key auth, its own known_hosts file)."""

    address: str
    port: str
    user: str
    key: str
    known_hosts: str

    @classmethod
    def k6_host(cls, env: dict[str, str]) -> "SshHost":
        return cls(env["K6_HOST"], env["K6_PORT"], env["K6_USER"], env["K6_SSH_KEY"], env["K6_KNOWN_HOSTS"])

    @classmethod
    def target(cls, env: dict[str, str]) -> "SshHost":
        return cls(
            env["LB_TARGET_HOST"], env["LB_TARGET_PORT"], env["LB_TARGET_USER"],
            env["LB_TARGET_SSH_KEY"], env["LB_TARGET_KNOWN_HOSTS"],
        )

    def ssh(self, command: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "ssh", "-i", self.key, "-p", str(self.port),
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                f"{self.user}@{self.address}", command,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def k6_processes(self, run_id: str) -> list[str]:
        """``pid args`` of every process on the k6 host that runs k6 for
        ``run_id`` (k6 carries the run id as a tag on its command line)."""
        done = self.ssh("ps -eo pid=,args=")
        if done.returncode != 0:
            raise HarnessError(f"ps on the k6 host failed: {done.stderr}")
        tag = re.compile(rf"(^|[\s'\"])run_id={re.escape(run_id)}($|[\s'\"])")
        found = []
        for line in done.stdout.splitlines():
            words = line.split()
            if len(words) < 2 or not tag.search(line):
                continue
            program = os.path.basename(words[1])
            # k6 itself, or the `sh -c` that started it and waits for it
            # (the process namespace is the machine's: ssh clients that merely
            # carry the command line are not k6 processes).
            if program == "k6" or (program in ("sh", "bash", "dash") and "k6" in line):
                found.append(line.strip())
        return found


# --- one lb run -------------------------------------------------------------


#: What lb gets wrong offline, worked around in the environment of `lb run`.
def lb_environment(
    install: LbInstallation, home: Path, known_hosts: Path, control_dir: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LB_", "VIRTUAL_ENV", "ANSIBLE_"))}
    env.update(
        {
            # lb's CLI imports pystray; without a display its Xlib backend
            # raises DisplayNameError before the run starts.
            "PYSTRAY_BACKEND": "dummy",
            # lb's setup.yml installs collector packages with apt (no apt
            # repository for targets here); the collectors are off instead.
            "ANSIBLE_SKIP_TAGS": "deps",
            # The controller's own files stay in the test's directory: lb's
            # ~/.config, Ansible's ~/.ansible, and SSH host keys of the k6 host
            # and the target (never the machine's ~/.ssh).
            "HOME": str(home),
            "ANSIBLE_SSH_ARGS": (
                "-C -o ControlMaster=auto -o ControlPersist=60s "
                f"-o UserKnownHostsFile={known_hosts}"
            ),
            # SSH control sockets need a short path (a Unix socket's limit).
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "PATH": f"{install.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            "K6_NO_USAGE_REPORT": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class LbRun:
    install: LbInstallation
    workdir: Path
    run_id: str
    config: dict
    stop_file: Path | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    control_dir: Path | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "benchmark_config.json"

    @property
    def output_root(self) -> Path:
        return Path(self.config["output_dir"]) / self.run_id

    @property
    def console_log(self) -> Path:
        return self.workdir / "lb-console.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        home = self.workdir / "controller-home"
        home.mkdir(exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2))
        cmd = [str(self.install.lb), "--headless", "run", "-c", str(self.config_path), "--run-id", self.run_id]
        if self.stop_file is not None:
            cmd += ["--stop-file", str(self.stop_file)]
        self.control_dir = Path(tempfile.mkdtemp(prefix="lbr-cp-"))
        env = lb_environment(self.install, home, self.workdir / "known_hosts", self.control_dir)
        self.started_at = time.monotonic()
        with open(self.console_log, "w") as console:
            self.process = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout_s: float) -> int:
        """Waits for `lb run` to end (its exit code says nothing: lb exits 0
        even when a phase failed). Kills it and what it started on timeout."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HarnessError(f"lb run did not end within {timeout_s:.0f}s\n{self.diagnostics()}")
        finally:
            self.finished_at = time.monotonic()

    def kill(self) -> None:
        """Stops `lb run` and every process below it (lb starts each
        ansible-playbook in a session of its own), by pid."""
        if self.process is None:
            return
        pids = descendants(self.process.pid)
        if self.process.poll() is None:
            pids.insert(0, self.process.pid)
        stop_pids(pids)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.close_control_masters()

    def close_control_masters(self) -> None:
        """Ends the SSH masters Ansible left persisting (ControlPersist), by
        their control sockets, and removes the socket directory."""
        if self.control_dir is None or not self.control_dir.is_dir():
            return
        for socket_path in self.control_dir.iterdir():
            subprocess.run(
                ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "lb-real-master"],
                capture_output=True,
                timeout=15,
                check=False,
            )
        shutil.rmtree(self.control_dir, ignore_errors=True)

    def journal(self) -> dict:
        path = self.output_root / "run_journal.json"
        if not path.is_file():
            raise HarnessError(f"lb wrote no journal at {path}\n{self.diagnostics()}")
        return json.loads(path.read_text())

    def task(self, host: str, workload: str, repetition: int = 1) -> dict:
        tasks = [
            t
            for t in self.journal()["tasks"]
            if (t["host"], t["workload"], int(t["repetition"])) == (host, workload, repetition)
        ]
        if len(tasks) != 1:
            raise HarnessError(f"journal has {len(tasks)} tasks for {host}/{workload}/rep{repetition}")
        return tasks[0]

    def run_log(self) -> str:
        path = self.output_root / "run.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def diagnostics(self, lines: int = 80) -> str:
        parts = []
        for name, text in (
            ("lb console", self.console_log.read_text(errors="replace") if self.console_log.is_file() else ""),
            ("lb run.log", self.run_log()),
        ):
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- {name} (last {lines} lines) ---\n{tail}")
        failures = [l for l in self.run_log().splitlines() if l.startswith(("fatal:", "failed:", "[ERROR]"))]
        if failures:
            parts.append("--- failures in run.log ---\n" + "\n".join(failures[-20:]))
        return "\n".join(parts)


# --- reading lb's outputs ------------------------------------------------------


_POLL_TASK = "TASK [workload_runner : Poll LB_EVENT stream]"
_CAPTURED = re.compile(r"^ok: \[[^\]]+\] => \(item=LB_EVENT (\{.*\})\) => \{$")


def poll_batches(run_log: str) -> list[list[dict]]:
    """The events each of lb's event polls passed on, in order (from the
    ``Emit captured events`` items that follow each poll in lb's run log)."""
    batches: list[list[dict]] = []
    for line in run_log.splitlines():
        if line.startswith(_POLL_TASK):
            batches.append([])
            continue
        match = _CAPTURED.match(line)
        if match and batches:
            with contextlib.suppress(json.JSONDecodeError):
                batches[-1].append(json.loads(match.group(1)))
    return batches


def stream_events(text: str) -> list[dict]:
    """Every LB_EVENT of an event stream log, parsed as lb's poller does."""
    events = []
    for line in text.splitlines():
        if "LB_EVENT" not in line:
            continue
        with contextlib.suppress(ValueError, IndexError):
            events.append(json.loads(line.split("LB_EVENT", 1)[1].strip()))
    return events


def ends_repetition(event: dict, workload: str, repetition: int) -> bool:
    """lb's poller rule: this event ends the repetition."""
    try:
        same = event.get("workload") == workload and int(event.get("repetition", 0)) == repetition
    except (TypeError, ValueError):
        return False
    return same and event.get("status") in TERMINAL_STATUSES


#: The event types lb-dfaas itself emits (its stderr, forwarded by the plugin).
BINARY_EVENT_TYPES = {
    "run_started", "baseline", "config_started", "iteration_started", "iteration_finished",
    "config_finished", "config_skipped", "overload", "run_finished", "log", "warning", "error",
}


def from_binary(event: dict) -> bool:
    """An event of lb-dfaas (lb's own records carry a ``logger`` or type ``status``, or no type)."""
    return event.get("type") in BINARY_EVENT_TYPES and "logger" not in event


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def config_id(pairs: list[tuple[str, int]]) -> str:
    """lb's configuration id: SHA-256 of ``name:rate|name:rate``, 12 hex digits."""
    text = "|".join(f"{name}:{rate}" for name, rate in sorted(pairs))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.2) -> float:
    """Polls ``predicate``; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(step_s)


def log(message: str) -> None:
    print(f"[lb-real] {message}", file=sys.stderr, flush=True)
