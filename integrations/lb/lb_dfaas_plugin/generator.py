"""The generator lb runs for a ``dfaas`` or ``peva_faas`` workload: one
``lb-dfaas run`` per repetition.

It spawns ``lb-dfaas run``, writes the request (``{"config", "context",
"plugin"}``, see :mod:`.context`) on its stdin, forwards the binary's ``LB_EVENT`` lines
to stdout where lb's event pipeline reads them (never with a status that
would end lb's repetition early), turns ``stop()`` into SIGTERM, and hands
lb the parsed result document. It runs no part of the campaign itself.

lb is optional at import time: when its bases are importable the generator
subclasses lb's ``BaseGenerator`` and raises lb's ``WorkloadError``;
otherwise stand-ins with the same attributes are used.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping

from .binary import (
    EXIT_INTERRUPTED,
    VALIDATE_TIMEOUT_S,
    BinaryNotFound,
    LbDfaasError,
    describe_exit,
    find_binary,
    map_run_result,
    read_plan_head,
    run_short,
    runtime_upper_bound_s,
    validation_reasons,
)
from .context import (
    RunContext,
    build_request,
    config_payload,
    discover_context,
    k6_hosts_key_fallbacks,
    k6_ssh_key_fallback,
    lb_stop_file,
)

try:  # lb present: subclass its base so isinstance checks in lb hold.
    from lb_common.api import WorkloadError
    from lb_plugins.base_generator import BaseGenerator as _GeneratorBase
except ImportError:  # lb absent (tests, CI): duck-typed stand-ins.

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

    class _GeneratorBase:  # type: ignore[no-redef]
        """Stand-in for lb's ``BaseGenerator``; the generator overrides it all."""


logger = logging.getLogger("lb_dfaas_plugin")

#: After SIGTERM the binary signals the remote k6, flushes and prints its
#: result; past this bound it gets SIGKILL.
DEFAULT_STOP_TIMEOUT_S = 30.0

#: stderr lines kept (non-event) for error messages, and their max length.
STDERR_TAIL_LINES = 50
STDERR_LINE_MAX_CHARS = 2000

EVENT_PREFIX = "LB_EVENT "

#: Event statuses lb's workload runner takes as the end of a repetition
#: (lb_controller/ansible/roles/workload_runner/tasks/stream_events_step.yml):
#: it stops polling at the first one and reads the runner's status file. Only
#: lb's runner itself may end a repetition, after the generator returned.
TERMINAL_EVENT_STATUSES = frozenset({"done", "failed", "stopped"})

_EVENT_WRITE_LOCK = threading.Lock()


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
    gets; ``event_writer`` receives each forwarded ``LB_EVENT`` line;
    ``plugin`` is the lb plugin whose config ``config`` is (the request's
    ``plugin``).
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
        plugin: str = "dfaas",
    ) -> None:
        # lb's BaseGenerator.__init__ sets exactly these; set them here so the
        # stand-in base behaves the same.
        self.name = name
        self._is_running = False
        self._thread: threading.Thread | None = None
        self._result: Any = None
        self._error: Any = None

        self.config = config
        self._plugin = plugin
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
                self._expected_runtime_s = runtime_upper_bound_s(head)
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
                stop_file=lb_stop_file(),
            )
        return self._context

    def request(self) -> dict[str, Any]:
        """The request for the binary; on a target, with the set-up's copies
        of the k6 SSH keys when the configured ones are not there
        (``k6_ssh_key``, and each ``k6_hosts`` entry's ``ssh_key``). Only the
        request changes, never ``self.config``."""
        request = build_request(self.config, self.context(), self._plugin)
        config = request["config"]
        home = self._home()
        # Both rules read the keys as configured, before either rewrites.
        fallback = k6_ssh_key_fallback(config, home)
        entry_fallbacks = k6_hosts_key_fallbacks(config, home)
        log = not self._key_fallback_logged
        if fallback is not None:
            if log:
                logger.info(
                    "lb-dfaas: k6_ssh_key %s not found here, using %s",
                    config["k6_ssh_key"],
                    fallback,
                )
                self._key_fallback_logged = True
            config["k6_ssh_key"] = str(fallback)
        if entry_fallbacks:
            entries = list(config["k6_hosts"])
            for entry in entry_fallbacks:
                if log:
                    logger.info(
                        "lb-dfaas: k6_hosts[%d]: %s %s not found here, using %s",
                        entry.index,
                        entry.field,
                        entry.key,
                        entry.copy,
                    )
                entries[entry.index] = {**entries[entry.index], "ssh_key": str(entry.copy)}
            config["k6_hosts"] = entries
            self._key_fallback_logged = True
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
            logger.error("lb-dfaas: invalid %s config: %s", self._plugin, reason)
        return not reasons

    def _validate_environment(self) -> bool:
        return self.check_prerequisites()

    def validate(self) -> list[str]:
        """Reasons ``lb-dfaas validate`` gives against the request (empty: valid)."""
        proc = run_short(
            self.binary(), ["validate"], self.request(), VALIDATE_TIMEOUT_S, self._environ
        )
        reasons = validation_reasons(proc.returncode, proc.stdout)
        if not reasons:
            for warning in json.loads(proc.stdout).get("warnings") or []:
                logger.warning("lb-dfaas: %s config: %s", self._plugin, warning)
        return reasons

    def start(self) -> None:
        """Validate, then run the campaign in a worker thread."""
        if self._is_running:
            logger.warning("%s generator is already running", self.name)
            return
        try:
            reasons = self.validate()
        except (BinaryNotFound, LbDfaasError) as exc:
            raise WorkloadError(str(exc), context={"workload": self._plugin}) from exc
        if reasons:
            raise WorkloadError(
                f"invalid {self._plugin} config: " + "; ".join(reasons),
                context={"workload": self._plugin, "errors": reasons},
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
