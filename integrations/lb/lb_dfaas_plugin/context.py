"""The request the binary reads on stdin: the config, the plugin it belongs
to (``dfaas`` or ``peva_faas``) and the run context.

lb hands a generator only its config; this module reconstructs the rest of
the request ``context`` (run id, host, repetition, output directory, stop
file) from what lb leaves around a running workload, and adapts the config
to the machine it runs on (the target's copies of the k6 SSH keys). It does
not validate or interpret the config: the binary does, naming the field at
fault.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel

logger = logging.getLogger("lb_dfaas_plugin")

#: Where the set-up (setup_global.yml, like lb's built-in dfaas set-up)
#: copies the controller's k6 SSH key on a target, below the home directory.
TARGET_K6_KEY = Path(".ssh") / "dfaas_k6_key"


def target_k6_key_of(index: int) -> Path:
    """Where the set-up copies the key of generator ``index`` of
    ``k6_hosts`` on a target, below the home directory."""
    return Path(".ssh") / f"dfaas_k6_key_{index}"


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


def build_request(config: Any, context: RunContext, plugin: str = "dfaas") -> dict[str, Any]:
    """The request document ``lb-dfaas`` reads on stdin. ``plugin`` names
    the lb plugin whose config ``config`` is: the binary reads its fields
    and defaults as that plugin's (``peva_faas``: k6 on this machine unless
    ``k6_host`` names another)."""
    return {"config": config_payload(config), "context": context.as_json(), "plugin": plugin}


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


def lb_stop_file() -> str | None:
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


@dataclass(frozen=True)
class EntryKeyFallback:
    """The target's copy of one ``k6_hosts`` entry's key, used instead of
    the configured one: entry ``index``, its effective key as configured
    (``field`` names where it comes from: the entry's ``ssh_key`` or
    ``k6_ssh_key``) and the copy."""

    index: int
    field: str
    key: str
    copy: Path


def k6_hosts_key_fallbacks(config: Mapping[str, Any], home: Path) -> list[EntryKeyFallback]:
    """The ``k6_hosts`` entries whose key is not here but the set-up's copy is.

    An entry's effective key is its own ``ssh_key``, else ``k6_ssh_key``.
    When that file does not exist on this machine and the set-up's copy of
    the entry's key, ``~/.ssh/dfaas_k6_key_<i>``, does, the entry is listed
    with that copy. An entry that inherits ``k6_ssh_key`` and has no copy of
    its own is not listed: it inherits whatever :func:`k6_ssh_key_fallback`
    makes of ``k6_ssh_key``. Nothing is listed for an entry without a key,
    with a key that exists, or with no copy (the binary then reports the
    missing key), nor for a ``k6_hosts`` that is not a list of mappings
    (the binary reports that too).
    """
    entries = config.get("k6_hosts")
    if not isinstance(entries, list):
        return []
    fallbacks = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            continue
        if "ssh_key" in entry:
            field, key = "ssh_key", entry["ssh_key"]
        else:
            field, key = "k6_ssh_key", config.get("k6_ssh_key")
        if not isinstance(key, str) or not key.strip():
            continue
        if _expand_home(key.strip(), home).exists():
            continue
        copy = home / target_k6_key_of(index)
        if copy.is_file():
            fallbacks.append(EntryKeyFallback(index=index, field=field, key=key, copy=copy))
    return fallbacks


def _expand_home(path: str, home: Path) -> Path:
    if path == "~":
        return home
    if path.startswith("~/"):
        return home / path[2:]
    return Path(path).expanduser()
