"""lb user plugin ``dfaas`` that runs DFaaS campaigns with the ``lb-dfaas`` binary.

linux-benchmark-lib (lb) loads this file from its user plugin directory
(``LB_USER_PLUGIN_DIR``, or ``lb_plugins/plugins/_user/``) and registers the
exported ``PLUGIN``. User plugins are registered after lb's built-ins, so this
one, named ``dfaas``, replaces lb's own Python ``dfaas`` plugin: existing
benchmark configs (``workloads: {dfaas: {plugin: dfaas}}``) run unchanged.

What this module owns:

- the plugin object lb asks for a config model, a generator, the Ansible
  playbooks (taken from ``lb-dfaas describe``) with their extra vars, and
  the CSV export;
- the generator: it spawns ``lb-dfaas run``, writes the request
  (``{"config", "context"}``) on its stdin, forwards the binary's
  ``LB_EVENT`` lines to stdout where lb's event pipeline reads them (never
  with a status that would end lb's repetition early), turns ``stop()``
  into SIGTERM, and hands lb the parsed result document.

What it must not do: validate or interpret the dfaas config (the binary does,
and says which field is wrong), or run any part of the campaign itself.

lb is optional at import time. When its base classes are importable the
plugin, generator and config subclass them; otherwise small stand-ins with
the same attributes are used, which is all lb's registry checks
(``hasattr(plugin, "name") and hasattr(plugin, "create_generator")``).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

try:  # lb present: subclass its bases so isinstance checks in lb hold.
    from lb_common.api import WorkloadError
    from lb_plugins.base_generator import BaseGenerator as _GeneratorBase
    from lb_plugins.interface import BasePluginConfig as _ConfigBase
    from lb_plugins.interface import WorkloadPlugin as _PluginBase

    LB_AVAILABLE = True
except ImportError:  # lb absent (tests, CI): duck-typed stand-ins.
    LB_AVAILABLE = False

    class WorkloadError(RuntimeError):  # type: ignore[no-redef]
        """Stand-in for lb's ``WorkloadError``: a message plus a context."""

        def __init__(
            self,
            message: str,
            *,
            context: Mapping[str, Any] | None = None,
            cause: Exception | None = None,
        ) -> None:
            super().__init__(message)
            self.context = dict(context or {})
            if cause is not None:
                self.__cause__ = cause

    class _ConfigBase(BaseModel):  # type: ignore[no-redef]
        """Stand-in for lb's ``BasePluginConfig`` (same fields)."""

        max_retries: int = Field(default=0, ge=0)
        timeout_buffer: int = 10
        tags: list[str] = Field(default_factory=list)

    class _GeneratorBase:  # type: ignore[no-redef]
        """Stand-in for lb's ``BaseGenerator``; the generator overrides it all."""

    class _PluginBase:  # type: ignore[no-redef]
        """Stand-in for lb's ``WorkloadPlugin``: the optional hooks lb calls."""

        def get_grafana_assets(self) -> Any:
            return None


logger = logging.getLogger(__name__)

BINARY_NAME = "lb-dfaas"
BINARY_ENV = "LB_DFAAS_BIN"

#: The playbooks named in the ``lb-dfaas describe`` manifest.
PLAYBOOK_KEYS = ("setup_global", "setup_k6", "collect_pre", "collect_post", "teardown")

#: Exit code of ``lb-dfaas run`` when interrupted (SIGINT/SIGTERM/stop file).
EXIT_INTERRUPTED = 130

#: Bounds on the short subcommands (none touches the network).
DESCRIBE_TIMEOUT_S = 30.0
VALIDATE_TIMEOUT_S = 60.0
PLAN_TIMEOUT_S = 120.0

#: After SIGTERM the binary signals the remote k6, flushes and prints its
#: result; past this bound it gets SIGKILL.
DEFAULT_STOP_TIMEOUT_S = 30.0

#: lb's runner force-stops a workload that outlives its expected runtime.
#: The binary's plan estimate counts only k6 time (duration × iterations ×
#: configurations); these allowances cover cooldown waits and per-iteration
#: SSH / Prometheus work so the estimate is an upper bound.
DEFAULT_COOLDOWN_MAX_WAIT_S = 180
ITERATION_OVERHEAD_S = 30
RUN_OVERHEAD_S = 120

#: stderr lines kept (non-event) for error messages, and their max length.
STDERR_TAIL_LINES = 50
STDERR_LINE_MAX_CHARS = 2000

EVENT_PREFIX = "LB_EVENT "

#: Event statuses lb's workload runner takes as the end of a repetition
#: (lb_controller/ansible/roles/workload_runner/tasks/stream_events_step.yml):
#: it stops polling at the first one and reads the runner's status file. Only
#: lb's runner itself may end a repetition, after the generator returned.
TERMINAL_EVENT_STATUSES = frozenset({"done", "failed", "stopped"})

#: Where the set-up (setup_global.yml, like lb's built-in dfaas set-up)
#: copies the controller's k6 SSH key on a target, below the home directory.
TARGET_K6_KEY = Path(".ssh") / "dfaas_k6_key"

_EVENT_WRITE_LOCK = threading.Lock()


class BinaryNotFound(FileNotFoundError):
    """No usable ``lb-dfaas`` executable; the message names every place looked at."""


class LbDfaasError(RuntimeError):
    """A short ``lb-dfaas`` subcommand failed (timeout, no JSON, bad exit)."""


# --------------------------------------------------------------------------
# Finding the binary


def find_binary(
    environ: Mapping[str, str] | None = None,
    plugin_file: Path | None = None,
) -> Path:
    """Locate the ``lb-dfaas`` executable.

    Order: ``$LB_DFAAS_BIN`` (an explicit setting that does not point at an
    executable is an error, never silently skipped); next to this file,
    ``bin/lb-dfaas``; the repository build this file sits in,
    ``../../target/{release,debug}/lb-dfaas`` (the newer of the two); then
    ``PATH``.
    """
    env = os.environ if environ is None else environ
    here = (plugin_file or Path(__file__)).resolve().parent

    explicit = env.get(BINARY_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if _is_executable(path):
            return path
        raise BinaryNotFound(f"{BINARY_ENV}={explicit} is not an executable file; fix or unset it")

    beside = here / "bin" / BINARY_NAME
    if _is_executable(beside):
        return beside

    builds = [
        here.parent.parent / "target" / profile / BINARY_NAME for profile in ("release", "debug")
    ]
    built = [path for path in builds if _is_executable(path)]
    if built:
        return max(built, key=lambda path: path.stat().st_mtime)

    on_path = shutil.which(BINARY_NAME, path=env.get("PATH", os.defpath))
    if on_path:
        return Path(on_path)

    raise BinaryNotFound(
        f"{BINARY_NAME} not found. Looked at: (1) ${BINARY_ENV} (unset); "
        f"(2) next to the plugin: {beside}, or a repository build: "
        f"{builds[0]} / {builds[1]}; (3) PATH. "
        f"Build it with `cargo build --release --bin {BINARY_NAME}` and set "
        f"{BINARY_ENV}, or copy it to {beside}."
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


# --------------------------------------------------------------------------
# The request: config + context


@dataclass(frozen=True)
class RunContext:
    """Where a run happens, as the binary's request ``context`` (all optional)."""

    host: str | None = None
    host_address: str | None = None
    workload: str | None = None
    run_id: str | None = None
    repetition: int | None = None
    total_repetitions: int | None = None
    output_dir: str | None = None
    stop_file: str | None = None
    lb_workdir: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The context object, without the unknown (None) fields."""
        return {key: value for key, value in asdict(self).items() if value is not None}


def config_payload(config: Any) -> dict[str, Any]:
    """The dfaas config as JSON data for the binary.

    Every field is passed through, lb's own ``max_retries``,
    ``timeout_buffer`` and ``tags`` included (the binary validates, ignores
    those three and warns about unknown ones); ``None`` values are dropped
    at any depth, meaning "not set, use the default".
    """
    if isinstance(config, BaseModel):
        data = config.model_dump(mode="json")
    elif isinstance(config, Mapping):
        data = json.loads(json.dumps(dict(config), default=str))
    else:
        raise TypeError(f"dfaas config must be a mapping or model, got {type(config).__name__}")
    return _drop_none(data)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_none(item) for item in value]
    return value


def build_request(config: Any, context: RunContext) -> dict[str, Any]:
    """The request document ``lb-dfaas`` reads on stdin."""
    return {"config": config_payload(config), "context": context.as_json()}


def discover_context(
    config: Mapping[str, Any],
    environ: Mapping[str, str],
    handlers: Sequence[logging.Handler],
    stop_file: str | None = None,
) -> RunContext:
    """Reconstruct the run context lb gives a workload.

    lb hands a generator only its config; the rest comes from:

    - the ``LBEventLogHandler`` lb's runner attaches to the root logger for
      the current repetition (run_id, host, workload, repetition, total) —
      exact for in-process runs;
    - the ``LB_RUN_*`` variables lb's Ansible role sets for the runner on a
      target host (the same values, plus ``LB_RUN_HOST_ADDRESS`` and
      ``LB_RUN_STOP_FILE``);
    - the output directory: lb gives each workload
      ``<run output root>/<workload name>``. The root is read from the
      runner's JSONL log handler (``<root>/logs/runner-<host>.jsonl``) or,
      on a target, from the benchmark config at ``LB_BENCH_CONFIG_PATH``
      scoped as lb's runner scopes it. A config that sets ``output_dir``
      itself keeps it: the context then leaves ``output_dir`` out;
    - lb's workdir: the directory lb's runner starts workloads in (the
      current one), where relative ``memory`` paths resolve, as lb's
      ``peva_faas`` resolves its own — sent only when lb runs us.
    """
    event = _runner_event_handler(handlers)

    def from_event(attr: str) -> Any:
        value = getattr(event, attr, None) if event is not None else None
        return value if value not in (None, "") else None

    host = from_event("host") or _env_str(environ, "LB_RUN_HOST")
    run_id = from_event("run_id") or _env_str(environ, "LB_RUN_ID")
    workload = from_event("workload") or _env_str(environ, "LB_RUN_WORKLOAD")
    repetition = _as_int(from_event("repetition")) or _env_int(environ, "LB_RUN_REPETITION")
    total = _as_int(from_event("total_repetitions")) or _env_int(environ, "LB_RUN_TOTAL_REPS")

    output_dir = None
    if not config.get("output_dir") and workload:
        root = _runner_output_root(handlers, host, environ) or _bench_config_output_root(
            environ, run_id
        )
        if root is not None:
            output_dir = str(root / workload)

    stop = stop_file or _env_str(environ, "LB_RUN_STOP_FILE")
    run_by_lb = event is not None or any(
        _env_str(environ, name) for name in ("LB_RUN_ID", "LB_RUN_WORKLOAD", "LB_BENCH_CONFIG_PATH")
    )
    return RunContext(
        host=host,
        host_address=_env_str(environ, "LB_RUN_HOST_ADDRESS"),
        workload=workload,
        run_id=run_id,
        repetition=repetition,
        total_repetitions=total,
        output_dir=output_dir,
        stop_file=os.path.abspath(stop) if stop else None,
        lb_workdir=os.getcwd() if run_by_lb else None,
    )


def _runner_event_handler(handlers: Sequence[logging.Handler]) -> logging.Handler | None:
    """The most recently attached lb ``LBEventLogHandler``, if any."""
    for handler in reversed(list(handlers)):
        if type(handler).__name__ == "LBEventLogHandler" and hasattr(handler, "run_id"):
            return handler
    return None


def _runner_output_root(
    handlers: Sequence[logging.Handler], host: str | None, environ: Mapping[str, str]
) -> Path | None:
    """The run output root from lb's runner JSONL log (default path template only)."""
    if environ.get("LB_JSONL_LOG_PATH"):
        return None  # a custom template need not contain the output root
    wanted = f"runner-{host}.jsonl" if host else None
    for handler in reversed(list(handlers)):
        filename = getattr(handler, "baseFilename", None)
        if not isinstance(filename, str):
            continue
        path = Path(filename)
        name_ok = path.name == wanted if wanted else path.name.startswith("runner-")
        if name_ok and path.suffix == ".jsonl" and path.parent.name == "logs":
            return path.parent.parent
    return None


def _bench_config_output_root(environ: Mapping[str, str], run_id: str | None) -> Path | None:
    """The run output root from the benchmark config lb writes for a target's runner.

    Mirrors lb's runner: ``output_dir`` is used as is when it already names
    the run id or the host (remote runs), else ``output_dir/<run_id>``.
    """
    config_path = _env_str(environ, "LB_BENCH_CONFIG_PATH")
    if not config_path:
        return None
    try:
        data = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("cannot read lb benchmark config %s: %s", config_path, exc)
        return None
    raw = data.get("output_dir") if isinstance(data, dict) else None
    if not isinstance(raw, str) or not raw:
        return None
    base = Path(raw).expanduser()
    host = _env_str(environ, "LB_RUN_HOST")
    if not run_id or run_id in base.parts or (host and host in base.parts):
        return base.resolve()
    return (base / run_id).resolve()


def _env_str(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
    return _as_int(_env_str(environ, name))


def _as_int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _lb_stop_file() -> str | None:
    """The stop file of lb's active ``StopToken`` (in-process runs), if any."""
    try:
        from lb_runner.engine.stop_context import get_stop_token
    except ImportError:
        return None
    token = get_stop_token()
    stop_file = getattr(token, "stop_file", None)
    return str(stop_file) if stop_file else None


def k6_ssh_key_fallback(config: Mapping[str, Any], home: Path) -> Path | None:
    """The target's copy of the k6 SSH key, when the configured key is not here.

    The benchmark config names the key as it is on the controller; on a
    target the set-up copied it to ``~/.ssh/dfaas_k6_key``. The same rule as
    lb's built-in generator: a configured ``k6_ssh_key`` that does not exist
    while that copy does is replaced by the copy. None means "keep the config
    as it is" (no key configured, the key exists, or there is no copy either,
    which the binary then reports).
    """
    key = config.get("k6_ssh_key")
    if not isinstance(key, str) or not key.strip():
        return None
    if _expand_home(key.strip(), home).exists():
        return None
    copy = home / TARGET_K6_KEY
    return copy if copy.is_file() else None


def _expand_home(path: str, home: Path) -> Path:
    if path == "~":
        return home
    if path.startswith("~/"):
        return home / path[2:]
    return Path(path).expanduser()


def forwardable_event(line: str) -> tuple[str | None, bool]:
    """The ``LB_EVENT`` line to forward to lb (None: drop it), and whether its
    status was rewritten.

    lb's workload runner ends the repetition at the first event whose status
    is ``done``, ``failed`` or ``stopped``, before the runner has the result:
    such a status becomes ``running`` (the message is kept). A line whose
    payload is not a JSON object is not an event and is not forwarded.
    """
    try:
        event = json.loads(line[len(EVENT_PREFIX) :])
    except ValueError:
        return None, False
    if not isinstance(event, dict):
        return None, False
    status = event.get("status")
    if isinstance(status, str) and status.strip().lower() in TERMINAL_EVENT_STATUSES:
        event["status"] = "running"
        return EVENT_PREFIX + json.dumps(event), True
    return line, False


# --------------------------------------------------------------------------
# Short subcommands: describe, validate, plan


def _run_short(
    binary: Path,
    args: Sequence[str],
    request: Mapping[str, Any] | None,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    stdin = json.dumps(request) if request is not None else None
    try:
        return subprocess.run(
            [str(binary), *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env=None if env is None else dict(env),
        )
    except subprocess.TimeoutExpired as exc:
        raise LbDfaasError(
            f"{binary} {' '.join(args)} did not finish within {timeout_s:.0f}s"
        ) from exc
    except OSError as exc:
        raise LbDfaasError(f"cannot execute {binary}: {exc}") from exc


def describe(binary: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``lb-dfaas describe``: the manifest (name, version, schema, playbooks)."""
    proc = _run_short(binary, ["describe"], None, DESCRIBE_TIMEOUT_S, env)
    if proc.returncode != 0:
        raise LbDfaasError(
            f"{binary} describe exited with {proc.returncode}: {_last_line(proc.stderr)}"
        )
    try:
        manifest = json.loads(proc.stdout)
    except ValueError as exc:
        raise LbDfaasError(f"{binary} describe printed no JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise LbDfaasError(
            f"{binary} describe printed a JSON {type(manifest).__name__}, not an object"
        )
    return manifest


def validation_reasons(returncode: int, stdout: str) -> list[str]:
    """Why ``lb-dfaas validate`` rejected a request (``{"ok": false, "error":
    {message, context: {errors: [{field, reason}]}}}``); empty when it accepted it."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return [f"lb-dfaas validate printed no JSON (exit {returncode}): {stdout[:500]!r}"]
    if returncode == 0 and isinstance(doc, dict) and doc.get("ok") is True:
        return []
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return [f"lb-dfaas validate rejected the config (exit {returncode}): {stdout[:500]}"]
    context = error.get("context")
    errors = context.get("errors") if isinstance(context, dict) else None
    reasons = [
        f"{item['field']}: {item['reason']}"
        for item in (errors if isinstance(errors, list) else [])
        if isinstance(item, dict) and "field" in item and "reason" in item
    ]
    return reasons or [str(error.get("message") or stdout[:500])]


def runtime_upper_bound_s(plan_head: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    """An upper bound on a campaign's wall time from the plan head.

    ``estimated_runtime_seconds`` covers k6 time only; each iteration still
    to run may also wait for cooldown (``cooldown.max_wait_seconds``) and
    spend a little on SSH and Prometheus.
    """
    estimate = int(plan_head.get("estimated_runtime_seconds") or 0)
    to_run = int(plan_head.get("to_run") or 0)
    iterations = int(plan_head.get("iterations") or config.get("iterations") or 1)
    cooldown = config.get("cooldown")
    if not isinstance(cooldown, Mapping):
        cooldown = {}
    max_wait = int(cooldown.get("max_wait_seconds", DEFAULT_COOLDOWN_MAX_WAIT_S))
    return estimate + to_run * iterations * (max_wait + ITERATION_OVERHEAD_S) + RUN_OVERHEAD_S


def read_plan_head(
    binary: Path, request: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The counts of ``lb-dfaas plan`` (``--limit 0``: no listing, exact counts)."""
    proc = _run_short(binary, ["plan", "--limit", "0"], request, PLAN_TIMEOUT_S, env)
    if proc.returncode != 0:
        raise LbDfaasError(
            f"{binary} plan exited with {proc.returncode}: {_last_line(proc.stderr)}"
        )
    try:
        head = json.loads(proc.stdout)
    except ValueError as exc:
        raise LbDfaasError(f"{binary} plan printed no JSON: {exc}") from exc
    if not isinstance(head, dict):
        raise LbDfaasError(f"{binary} plan printed a JSON {type(head).__name__}, not an object")
    return head


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


# --------------------------------------------------------------------------
# Result mapping


def describe_exit(returncode: int) -> str:
    """``exit code N`` or ``signal NAME`` for a Popen return code."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def map_run_result(
    returncode: int,
    stdout: bytes,
    stderr_tail: Sequence[str],
    *,
    stop_requested: bool = False,
) -> dict[str, Any]:
    """Turn ``lb-dfaas run``'s exit code and stdout into lb's ``generator_result``.

    The result document is kept whole (its ``dfaas_*`` keys are what the CSV
    export reads). lb's own fields are set from it: ``returncode`` is the
    process's exit code, ``success`` requires exit 0, and the protocol's
    ``error`` object ``{type, message, context}`` becomes lb's ``error``
    (message text), ``error_type`` and ``error_context``. A stdout that is
    not one JSON object becomes an error result naming the exit and the last
    stderr lines.
    """
    text = stdout.decode("utf-8", errors="replace")
    try:
        doc: Any = json.loads(text)
        problem = None if isinstance(doc, dict) else f"a JSON {type(doc).__name__}, not an object"
    except ValueError as exc:
        doc, problem = None, "empty" if not text.strip() else f"not JSON ({exc})"

    if problem is not None:
        message = f"lb-dfaas run gave no result document ({describe_exit(returncode)}): stdout was {problem}"
        if stderr_tail:
            message += f"; last stderr line: {stderr_tail[-1]}"
        return {
            "returncode": returncode,
            "success": False,
            "interrupted": stop_requested or returncode == EXIT_INTERRUPTED,
            "error": message,
            "error_type": "OutputParseError",
            "error_context": {
                "returncode": returncode,
                "stdout_head": text[:2000],
                "stderr_tail": list(stderr_tail)[-20:],
            },
        }

    result = dict(doc)
    declared = result.get("returncode")
    if declared is not None and declared != returncode:
        logger.warning(
            "lb-dfaas run printed returncode %s but exited with %s",
            declared,
            describe_exit(returncode),
        )
    result["returncode"] = returncode

    error = result.get("error")
    if isinstance(error, Mapping):
        result["error"] = str(error.get("message") or error.get("type") or "lb-dfaas run failed")
        result["error_type"] = error.get("type")
        result["error_context"] = error.get("context")
    elif error:
        result["error"] = str(error)
    else:
        result["error"] = None
    if returncode != 0 and not result["error"]:
        result["error"] = f"lb-dfaas run failed ({describe_exit(returncode)})"
        result["error_type"] = "WorkloadError"
        result["error_context"] = {"returncode": returncode, "stderr_tail": list(stderr_tail)[-20:]}
    result["success"] = bool(doc.get("success")) and returncode == 0 and not result["error"]
    return result


# --------------------------------------------------------------------------
# The generator


def _print_event(line: str) -> None:
    """Write one ``LB_EVENT`` line to the *current* ``sys.stdout``.

    lb's runner on a target swaps ``sys.stdout`` for a tee into its event
    stream log, and its in-process handlers print there too, so the stream
    is looked up at each call and written in one call.
    """
    with _EVENT_WRITE_LOCK:
        stream = sys.stdout
        stream.write(line + "\n")
        stream.flush()


class DfaasGenerator(_GeneratorBase):
    """Runs one ``lb-dfaas run`` per lb repetition.

    Lifecycle (driven by lb's runner): ``expected_runtime_seconds`` (plan),
    ``prepare()`` (binary and context), ``start()`` (validate, then spawn in
    a worker thread), ``_is_running`` polled, ``stop()`` (always called at
    the end; SIGTERM only if the binary still runs), ``get_result()``.

    ``environ`` (default: the process environment) is where the binary and
    lb's run variables are looked up, and the whole environment the binary
    gets; ``event_writer`` receives each forwarded ``LB_EVENT`` line.
    """

    def __init__(
        self,
        config: Any,
        name: str = "lb-dfaas",
        *,
        binary: Path | None = None,
        environ: Mapping[str, str] | None = None,
        event_writer: Callable[[str], None] = _print_event,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        # lb's BaseGenerator.__init__ sets exactly these; set them here so the
        # stand-in base behaves the same.
        self.name = name
        self._is_running = False
        self._thread: threading.Thread | None = None
        self._result: Any = None
        self._error: Any = None

        self.config = config
        self._binary = binary
        self._environ = environ
        self._event_writer = event_writer
        self._stop_timeout_s = stop_timeout_s
        self._context: RunContext | None = None
        self._expected_runtime_s: int | None = None
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._stop_requested = False  # stop() was called: never spawn after it
        self._signalled = False  # stop() signalled a running binary
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._key_fallback_logged = False
        self._terminal_status_warned = False

    # -- what lb reads --------------------------------------------------

    @property
    def expected_runtime_seconds(self) -> int:
        """Upper bound on the campaign's wall time (0 when unknown).

        lb reads this before ``prepare()`` and force-stops the workload once
        it is exceeded (plus 10 s); it never raises.
        """
        if self._expected_runtime_s is None:
            try:
                head = read_plan_head(self.binary(), self.request(), self._environ)
                self._expected_runtime_s = runtime_upper_bound_s(head, config_payload(self.config))
            except Exception as exc:  # noqa: BLE001 - a hint only; lb falls back to its default
                logger.warning("lb-dfaas: cannot estimate the campaign runtime: %s", exc)
                self._expected_runtime_s = 0
        return self._expected_runtime_s

    def binary(self) -> Path:
        if self._binary is None:
            self._binary = find_binary(self._env())
        return self._binary

    def context(self) -> RunContext:
        """The run context, discovered once (lb makes a generator per repetition)."""
        if self._context is None:
            self._context = discover_context(
                config_payload(self.config),
                self._env(),
                logging.getLogger().handlers,
                stop_file=_lb_stop_file(),
            )
        return self._context

    def request(self) -> dict[str, Any]:
        """The request for the binary; on a target, with the set-up's copy of
        the k6 SSH key when the configured one is not there."""
        request = build_request(self.config, self.context())
        fallback = k6_ssh_key_fallback(request["config"], self._home())
        if fallback is not None:
            if not self._key_fallback_logged:
                logger.info(
                    "lb-dfaas: k6_ssh_key %s not found here, using %s",
                    request["config"]["k6_ssh_key"],
                    fallback,
                )
                self._key_fallback_logged = True
            request["config"]["k6_ssh_key"] = str(fallback)
        return request

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def _home(self) -> Path:
        home = self._env().get("HOME", "").strip()
        return Path(home) if home else Path.home()

    # -- lifecycle ------------------------------------------------------

    def prepare(self) -> None:
        """Resolve the binary (raising a clear error if absent) and the context."""
        self.binary()
        context = self.context()
        logger.info("lb-dfaas: %s, context %s", self._binary, json.dumps(context.as_json()))

    def cleanup(self) -> None:
        return None

    def check_prerequisites(self) -> bool:
        """True when the binary exists and ``lb-dfaas validate`` accepts the request."""
        try:
            reasons = self.validate()
        except (BinaryNotFound, LbDfaasError) as exc:
            logger.error("lb-dfaas: %s", exc)
            return False
        for reason in reasons:
            logger.error("lb-dfaas: invalid dfaas config: %s", reason)
        return not reasons

    def _validate_environment(self) -> bool:
        return self.check_prerequisites()

    def validate(self) -> list[str]:
        """Reasons ``lb-dfaas validate`` gives against the request (empty: valid)."""
        proc = _run_short(
            self.binary(), ["validate"], self.request(), VALIDATE_TIMEOUT_S, self._environ
        )
        reasons = validation_reasons(proc.returncode, proc.stdout)
        if not reasons:
            for warning in json.loads(proc.stdout).get("warnings") or []:
                logger.warning("lb-dfaas: dfaas config: %s", warning)
        return reasons

    def start(self) -> None:
        """Validate, then run the campaign in a worker thread."""
        if self._is_running:
            logger.warning("%s generator is already running", self.name)
            return
        try:
            reasons = self.validate()
        except (BinaryNotFound, LbDfaasError) as exc:
            raise WorkloadError(str(exc), context={"workload": "dfaas"}) from exc
        if reasons:
            raise WorkloadError(
                "invalid dfaas config: " + "; ".join(reasons),
                context={"workload": "dfaas", "errors": reasons},
            )
        self._is_running = True
        self._thread = threading.Thread(target=self._run_worker, name="lb-dfaas-run", daemon=False)
        self._thread.start()

    def stop(self) -> None:
        """SIGTERM the binary if it still runs, wait (bounded), SIGKILL, join."""
        self._stop_workload()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._stop_timeout_s + 10.0)
            if thread.is_alive():
                logger.warning("lb-dfaas: worker thread still alive after stop")

    def _stop_workload(self) -> None:
        with self._lock:
            self._stop_requested = True
            proc = self._process
        if proc is None or proc.poll() is not None:
            return
        logger.info("lb-dfaas: stopping (SIGTERM to pid %s)", proc.pid)
        self._signalled = True
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self._stop_timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning(
                "lb-dfaas: pid %s still running %.0fs after SIGTERM; sending SIGKILL",
                proc.pid,
                self._stop_timeout_s,
            )
            proc.kill()
            proc.wait()

    def get_result(self) -> Any:
        return self._result

    def get_error(self) -> Any:
        return self._error

    # -- the worker -----------------------------------------------------

    def _run_worker(self) -> None:
        try:
            self._result = self._run_command()
        except Exception as exc:  # noqa: BLE001 - nothing may escape the thread
            logger.exception("lb-dfaas: run failed")
            self._result = {
                "returncode": -2,
                "success": False,
                "interrupted": self._signalled,
                "error": f"lb-dfaas run failed: {exc}",
                "error_type": type(exc).__name__,
                "error_context": {"stderr_tail": list(self._stderr_tail)},
            }
        finally:
            self._is_running = False

    def _run_command(self) -> dict[str, Any]:
        request = json.dumps(self.request()).encode()
        with self._lock:
            if self._stop_requested:
                return {
                    "returncode": EXIT_INTERRUPTED,
                    "success": False,
                    "interrupted": True,
                    "error": "stopped before lb-dfaas run started",
                    "error_type": "interrupted",
                    "error_context": None,
                }
            # Same process group as lb's runner: a terminal Ctrl+C reaches
            # both, and both stop gracefully.
            proc = subprocess.Popen(
                [str(self.binary()), "run"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=None if self._environ is None else dict(self._environ),
            )
            self._process = proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stderr_thread = threading.Thread(
            target=self._pump_stderr, args=(proc.stderr,), name="lb-dfaas-stderr", daemon=True
        )
        stderr_thread.start()
        try:
            proc.stdin.write(request)
            proc.stdin.close()
        except BrokenPipeError:
            logger.warning("lb-dfaas: run closed its stdin before reading the request")
        stdout = proc.stdout.read()
        returncode = proc.wait()
        stderr_thread.join(timeout=10.0)
        result = map_run_result(
            returncode, stdout, list(self._stderr_tail), stop_requested=self._signalled
        )
        logger.info("lb-dfaas: run finished (%s)", describe_exit(returncode))
        return result

    def _pump_stderr(self, stream: Any) -> None:
        """Forward ``LB_EVENT`` lines (see :func:`forwardable_event`); keep a
        bounded tail of the other lines."""
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            forwarded, rewritten = (
                forwardable_event(line) if line.startswith(EVENT_PREFIX) else (None, False)
            )
            if rewritten and not self._terminal_status_warned:
                logger.warning(
                    "lb-dfaas: an event with a terminal status reached the plugin; "
                    "forwarded as status running, since lb ends the repetition at such an event"
                )
                self._terminal_status_warned = True
            if forwarded is not None:
                try:
                    self._event_writer(forwarded)
                except Exception as exc:  # noqa: BLE001 - a lost event must not stop the pump
                    logger.debug("lb-dfaas: cannot forward event: %s", exc)
            elif line.strip():
                self._stderr_tail.append(line[:STDERR_LINE_MAX_CHARS])
                logger.debug("lb-dfaas: %s", line)


# --------------------------------------------------------------------------
# CSV export (the files lb's own dfaas plugin writes)

NODE_COLUMNS = (
    "cpu_usage_idle_node",
    "cpu_usage_node",
    "ram_usage_idle_node",
    "ram_usage_node",
    "ram_usage_idle_node_percentage",
    "ram_usage_node_percentage",
    "power_usage_idle_node",
    "power_usage_node",
    "rest_seconds",
    "overloaded_node",
)
FUNCTION_COLUMNS = (
    "function_{f}",
    "rate_function_{f}",
    "success_rate_function_{f}",
    "cpu_usage_function_{f}",
    "ram_usage_function_{f}",
    "power_usage_function_{f}",
    "replica_{f}",
    "overloaded_function_{f}",
    "medium_latency_function_{f}",
)
METRICS_NODE_COLUMNS = (
    "cpu_usage_node",
    "ram_usage_node",
    "ram_usage_node_pct",
    "power_usage_node",
)


def results_header(functions: Iterable[str]) -> list[str]:
    """results.csv: nine columns per function (sorted), then the ten node columns."""
    header = [column.format(f=name) for name in functions for column in FUNCTION_COLUMNS]
    return header + list(NODE_COLUMNS)


def skipped_header(functions: Iterable[str]) -> list[str]:
    return [
        column for name in functions for column in (f"function_{name}", f"rate_function_{name}")
    ]


def metrics_header(functions: Iterable[str]) -> list[str]:
    header = list(METRICS_NODE_COLUMNS)
    for name in functions:
        header += [
            f"cpu_usage_function_{name}",
            f"ram_usage_function_{name}",
            f"power_usage_function_{name}",
        ]
    return header


def csv_cell(value: Any) -> str:
    """A cell as the binary writes it: floats ``%.3f`` (never ``-0.000``), NaN
    ``nan``, flags 0/1, None empty; the binary's own JSON rows already hold
    text for floats and numbers for integers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        text = f"{value:.3f}"
        return "0.000" if text == "-0.000" else text  # no negative zero from noise
    return str(value)


def metrics_row(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten ``{node..., functions: {name: {cpu, ram, power}}}`` into metrics CSV cells."""
    row: dict[str, Any] = {column: metrics.get(column, "nan") for column in METRICS_NODE_COLUMNS}
    functions = metrics.get("functions") or {}
    for name, values in functions.items() if isinstance(functions, Mapping) else ():
        values = values if isinstance(values, Mapping) else {}
        row[f"cpu_usage_function_{name}"] = values.get("cpu", "nan")
        row[f"ram_usage_function_{name}"] = values.get("ram", "nan")
        row[f"power_usage_function_{name}"] = values.get("power", "nan")
    return row


def _generator_results(results: Iterable[Mapping[str, Any]]) -> list[tuple[Any, Mapping[str, Any]]]:
    pairs = []
    for entry in results:
        gen = entry.get("generator_result") if isinstance(entry, Mapping) else None
        if isinstance(gen, Mapping):
            pairs.append((entry.get("repetition"), gen))
    return pairs


def _written_by_binary(pairs: Sequence[tuple[Any, Mapping[str, Any]]]) -> set[Path]:
    """Files the binary itself reported writing (its ``artifacts``), resolved."""
    paths: set[Path] = set()
    for _, gen in pairs:
        for artifact in gen.get("artifacts") or []:
            if isinstance(artifact, str) and artifact:
                paths.add(Path(artifact).expanduser().resolve())
    return paths


def metrics_cell(value: Any) -> str:
    """A metrics CSV cell: Python's ``str`` (floats at full precision, as
    ``repr``), as lb's plugin and the binary write them; None empty."""
    return "" if value is None else str(value)


def _write_csv_atomically(
    path: Path,
    header: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    delimiter: str = ",",
    cell: Callable[[Any], str] = csv_cell,
) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        known = set(header)
        for row in rows:
            extra = sorted(set(row) - known)
            if extra:
                logger.warning("lb-dfaas export: %s: dropping unknown columns %s", path.name, extra)
            writer.writerow([cell(row.get(column)) for column in header])
    os.replace(tmp, path)


def _entries_with_id(gen: Mapping[str, Any], key: str, *required: str) -> list[Mapping[str, Any]]:
    """The well-formed entries of ``gen[key]`` (a ``config_id`` plus ``required``)."""
    good = []
    for entry in gen.get(key) or []:
        fields = ("config_id", *required)
        if isinstance(entry, Mapping) and all(entry.get(field) is not None for field in fields):
            good.append(entry)
        else:
            logger.warning("lb-dfaas export: skipping a malformed %s entry", key)
    return good


def export_dfaas_csv(results: Sequence[Mapping[str, Any]], output_dir: Path) -> list[Path]:
    """Write results.csv, skipped.csv, index.csv, summaries/, metrics/ (with
    the query windows the binary reports) and k6_scripts/ from lb's
    per-repetition entries, as lb's dfaas plugin does.

    Cells are formatted as the binary formats them and lines end in ``\n``
    as the binary's do (lb's built-in plugin ends them in ``\r\n``; pandas
    and the binary read both).

    The binary already wrote these files, durably and row by row, into the
    output directory it was given, which is normally this same directory.
    A file the binary reported in ``artifacts`` is left as it is: it holds
    every row of these results, plus rows of an interrupted earlier attempt
    of the same run that a rewrite from lb's results would lose.
    """
    pairs = _generator_results(results)
    functions = sorted({name for _, gen in pairs for name in gen.get("dfaas_functions") or []})
    if not functions:
        return []
    output_dir.mkdir(parents=True, exist_ok=True)
    by_binary = _written_by_binary(pairs)
    paths: list[Path] = []

    def claim(path: Path) -> bool:
        """True when this export should write ``path``."""
        if path.resolve() in by_binary and path.exists():
            logger.info("lb-dfaas export: keeping %s written by lb-dfaas", path)
            return False
        return True

    results_path = output_dir / "results.csv"
    if claim(results_path):
        rows = [row for _, gen in pairs for row in gen.get("dfaas_results") or []]
        _write_csv_atomically(results_path, results_header(functions), rows)
        paths.append(results_path)

    skipped_path = output_dir / "skipped.csv"
    if claim(skipped_path):
        rows = [row for _, gen in pairs for row in gen.get("dfaas_skipped") or []]
        _write_csv_atomically(skipped_path, skipped_header(functions), rows)
        paths.append(skipped_path)

    index_path = output_dir / "index.csv"
    if claim(index_path):
        seen: set[tuple[tuple[str, ...], tuple[Any, ...]]] = set()
        index_rows = []
        for _, gen in pairs:
            for entry in gen.get("dfaas_index") or []:
                key = (tuple(entry.get("functions", [])), tuple(entry.get("rates", [])))
                if key in seen:
                    continue
                seen.add(key)
                index_rows.append(
                    {
                        "functions": str(list(key[0])),
                        "rates": str(list(key[1])),
                        "results_file": entry.get("results_file") or "results.csv",
                    }
                )
        _write_csv_atomically(
            index_path, ["functions", "rates", "results_file"], index_rows, delimiter=";"
        )
        paths.append(index_path)

    for rep, gen in pairs:
        for summary in _entries_with_id(gen, "dfaas_summaries", "iteration"):
            name = f"summary-{summary['config_id']}-iter{summary['iteration']}-rep{rep}.json"
            path = output_dir / "summaries" / name
            if claim(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(summary.get("summary"), indent=2), encoding="utf-8")
                paths.append(path)
        for metric in _entries_with_id(gen, "dfaas_metrics", "iteration"):
            name = f"metrics-{metric['config_id']}-iter{metric['iteration']}-rep{rep}.csv"
            path = output_dir / "metrics" / name
            if claim(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                row = metrics_row(metric.get("metrics") or {})
                _write_csv_atomically(path, metrics_header(functions), [row], cell=metrics_cell)
                paths.append(path)
            window = (metric.get("metrics") or {}).get("window")
            window_path = output_dir / "metrics" / (
                f"window-{metric['config_id']}-iter{metric['iteration']}-rep{rep}.json"
            )
            if isinstance(window, dict) and claim(window_path):
                window_path.parent.mkdir(parents=True, exist_ok=True)
                window_path.write_text(json.dumps(window, indent=2) + "\n", encoding="utf-8")
                paths.append(window_path)
        for script in _entries_with_id(gen, "dfaas_scripts"):
            path = output_dir / "k6_scripts" / f"config-{script['config_id']}.js"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(str(script.get("script") or ""), encoding="utf-8")
                paths.append(path)
    return paths


# --------------------------------------------------------------------------
# The plugin


def lb_builtin_ansible_dir(package: str = "lb_plugins") -> Path | None:
    """The directory of lb's built-in dfaas playbooks, when the importable lb
    ships its target set-up (``setup_target.yml``, which loads
    ``vars/target.yml`` and runs the same tasks as its
    ``tasks/setup_target_tasks.yml``); None otherwise. Looked up without
    importing lb."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or []:
        candidate = Path(location) / "plugins" / "dfaas" / "ansible"
        if (candidate / "setup_target.yml").is_file():
            return candidate.resolve()
    return None


class DfaasConfig(_ConfigBase):
    """lb's view of the dfaas config: every field is accepted and passed to
    the binary, which validates it (``lb-dfaas describe`` has the schema)."""

    model_config = ConfigDict(extra="allow")


class DfaasPlugin(_PluginBase):
    """The ``dfaas`` workload, executed by the ``lb-dfaas`` binary.

    ``environ`` is passed to the generators (see :class:`DfaasGenerator`).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._manifests: dict[str, dict[str, Any] | None] = {}

    @property
    def name(self) -> str:
        return "dfaas"

    @property
    def description(self) -> str:
        return "DFaaS sampling campaigns (k6 over SSH + OpenFaaS + Prometheus) run by lb-dfaas"

    @property
    def config_cls(self) -> type[DfaasConfig]:
        return DfaasConfig

    def create_generator(self, config: Any) -> DfaasGenerator:
        if not isinstance(config, BaseModel):
            config = DfaasConfig(**dict(config or {}))
        return DfaasGenerator(config, environ=self._environ)

    def manifest(self) -> dict[str, Any] | None:
        """``lb-dfaas describe``, cached per binary; None (logged) when unavailable.

        lb asks every plugin for its playbooks when it loads a benchmark
        config, so a missing binary must not raise here.
        """
        try:
            binary = find_binary(os.environ if self._environ is None else self._environ)
        except BinaryNotFound as exc:
            key = "<missing>"
            if key not in self._manifests:
                logger.warning("lb-dfaas: %s", exc)
                self._manifests[key] = None
            return None
        key = str(binary)
        if key not in self._manifests:
            try:
                self._manifests[key] = describe(binary, self._environ)
            except LbDfaasError as exc:
                logger.warning("lb-dfaas: %s", exc)
                self._manifests[key] = None
        return self._manifests[key]

    def playbook(self, key: str) -> Path | None:
        """Path of a bundled playbook from the manifest, if it exists."""
        manifest = self.manifest() or {}
        playbooks = manifest.get("playbooks")
        raw = playbooks.get(key) if isinstance(playbooks, Mapping) else None
        if not isinstance(raw, str) or not raw:
            return None
        path = Path(raw).expanduser()
        if path.exists():
            return path
        logger.warning("lb-dfaas: playbook %s (%s) does not exist", key, path)
        return None

    def get_ansible_setup_path(self) -> Path | None:
        return self.playbook("setup_global")

    def get_ansible_collect_pre_path(self) -> Path | None:
        return self.playbook("collect_pre")

    def get_ansible_collect_post_path(self) -> Path | None:
        return self.playbook("collect_post")

    def get_ansible_teardown_path(self) -> Path | None:
        return self.playbook("teardown")

    def settings_extravars(self) -> dict[str, Any]:
        """What every bundled playbook needs: the plugin_settings section
        holding this plugin's fields (the plugin's name)."""
        return {"dfaas_settings_section": self.name}

    def get_ansible_setup_extravars(self) -> dict[str, Any]:
        """Extra vars of setup_global.yml: the settings section, lb's own dfaas
        target set-up when lb ships it (run on every target unless
        ``provision_targets`` is false), and this binary's version (compared
        with the one each target runs). Never raises: lb calls it whenever it
        loads a benchmark config."""
        extravars = self.settings_extravars()
        lb_dir = lb_builtin_ansible_dir()
        if lb_dir is not None:
            extravars["dfaas_lb_builtin_ansible_dir"] = str(lb_dir)
        else:
            logger.info(
                "lb-dfaas: lb's built-in dfaas playbooks were not found; "
                "the set-up cannot provision the targets"
            )
        version = (self.manifest() or {}).get("version")
        if isinstance(version, str) and version:
            extravars["dfaas_binary_version"] = version
        return extravars

    def get_ansible_teardown_extravars(self) -> dict[str, Any]:
        return self.settings_extravars()

    def get_ansible_collect_pre_extravars(self) -> dict[str, Any]:
        return self.settings_extravars()

    def get_ansible_collect_post_extravars(self) -> dict[str, Any]:
        return self.settings_extravars()

    def get_grafana_assets(self) -> Any:
        return None

    def export_results_to_csv(
        self,
        results: list[dict[str, Any]],
        output_dir: Path,
        run_id: str,
        test_name: str,
    ) -> list[Path]:
        return export_dfaas_csv(results, Path(output_dir))


PLUGIN = DfaasPlugin()
