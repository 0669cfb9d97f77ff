"""Finding and calling the ``lb-dfaas`` executable.

Everything the plugin asks the binary: ``describe`` (the manifest: version,
playbooks), ``validate`` (the field errors), ``plan`` (the runtime bound lb
is given), ``export`` (the dataset files from lb's results), and the reading
of ``run``'s result document (``run`` itself is driven by the generator).

The binary owns the rules: the config's validation, the CSV formats, the
runtime estimate. This module passes documents and turns failures into
errors that say what happened; it computes none of them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

logger = logging.getLogger("lb_dfaas_plugin")

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
#: ``export`` writes (and syncs) one file per iteration it did not keep.
EXPORT_TIMEOUT_S = 600.0


class BinaryNotFound(FileNotFoundError):
    """No usable ``lb-dfaas`` executable; the message names every place looked at."""


class LbDfaasError(RuntimeError):
    """A short ``lb-dfaas`` subcommand failed (timeout, no JSON, bad exit)."""


# --------------------------------------------------------------------------
# Finding the binary


def plugin_dir() -> Path:
    """The directory holding this package: ``_user/lb_dfaas_plugin/`` when
    installed by ``lb-dfaas lb-install``, ``integrations/lb/`` in the repository."""
    return Path(__file__).resolve().parent.parent


def find_binary(
    environ: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> Path:
    """Locate the ``lb-dfaas`` executable.

    Order: ``$LB_DFAAS_BIN`` (an explicit setting that does not point at an
    executable is an error, never silently skipped); in the plugin
    directory (``directory``, default :func:`plugin_dir`), ``bin/lb-dfaas``;
    the repository build the plugin directory sits in,
    ``../../target/{release,debug}/lb-dfaas`` (the newer of the two); then
    ``PATH``.
    """
    env = os.environ if environ is None else environ
    here = directory if directory is not None else plugin_dir()

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
        f"(2) in the plugin directory: {beside}, or a repository build: "
        f"{builds[0]} / {builds[1]}; (3) PATH. "
        f"Build it with `cargo build --release --bin {BINARY_NAME}` and set "
        f"{BINARY_ENV}, or copy it to {beside}."
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


# --------------------------------------------------------------------------
# Short subcommands: describe, validate, plan, export


def run_short(
    binary: Path,
    args: Sequence[str],
    request: Any | None,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs ``binary args`` with ``request`` as JSON on stdin (none: no
    stdin), bounded by ``timeout_s``; the process's output, whatever its exit."""
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


def _json_object(binary: Path, command: str, proc: subprocess.CompletedProcess[str]) -> dict:
    """The one JSON object a subcommand printed on success."""
    if proc.returncode != 0:
        raise LbDfaasError(
            f"{binary} {command} exited with {proc.returncode}: {_failure(proc)}"
        )
    try:
        doc = json.loads(proc.stdout)
    except ValueError as exc:
        raise LbDfaasError(f"{binary} {command} printed no JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise LbDfaasError(f"{binary} {command} printed a JSON {type(doc).__name__}, not an object")
    return doc


def _failure(proc: subprocess.CompletedProcess[str]) -> str:
    """Why a subcommand failed: the message of its error document, else the
    last stderr line."""
    try:
        error = json.loads(proc.stdout).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return _last_line(proc.stderr)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def describe(binary: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``lb-dfaas describe``: the manifest (name, version, schema, playbooks)."""
    proc = run_short(binary, ["describe"], None, DESCRIBE_TIMEOUT_S, env)
    return _json_object(binary, "describe", proc)


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


def read_plan_head(
    binary: Path, request: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The counts of ``lb-dfaas plan`` (``--limit 0``: no listing, exact counts)."""
    proc = run_short(binary, ["plan", "--limit", "0"], request, PLAN_TIMEOUT_S, env)
    return _json_object(binary, "plan", proc)


def runtime_upper_bound_s(plan_head: Mapping[str, Any]) -> int:
    """The plan's ``runtime_upper_bound_seconds``: k6 time, cooldown waits and
    per-iteration overheads of the configurations still to run."""
    bound = plan_head.get("runtime_upper_bound_seconds")
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 0:
        raise LbDfaasError(
            "lb-dfaas plan gave no runtime_upper_bound_seconds (a binary older than this plugin?)"
        )
    return bound


def export(
    binary: Path,
    results: Iterable[Any],
    output_dir: Path,
    env: Mapping[str, str] | None = None,
) -> list[Path]:
    """``lb-dfaas export --out output_dir`` of lb's per-repetition entries:
    the files it wrote (those the binary wrote during the run are kept).

    Only each entry's ``repetition`` and ``generator_result`` are sent, as
    JSON (see :func:`_json_safe`).
    """
    entries = [
        {"repetition": entry.get("repetition"), "generator_result": entry["generator_result"]}
        for entry in results
        if isinstance(entry, Mapping) and isinstance(entry.get("generator_result"), Mapping)
    ]
    proc = run_short(
        binary, ["export", "--out", str(output_dir)], _json_safe(entries), EXPORT_TIMEOUT_S, env
    )
    report = _json_object(binary, "export", proc)
    for warning in report.get("warnings") or []:
        logger.warning("lb-dfaas export: %s", warning)
    for path in report.get("kept") or []:
        logger.info("lb-dfaas export: keeping %s", path)
    return [Path(path) for path in report.get("written") or []]


def _json_safe(value: Any) -> Any:
    """``value`` as data JSON can carry: a float JSON has no number for (NaN,
    infinities) as the text Python prints for it, which is how the binary
    spells those values; any other object as its ``str``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return str(value)


# --------------------------------------------------------------------------
# The result of ``run``


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
