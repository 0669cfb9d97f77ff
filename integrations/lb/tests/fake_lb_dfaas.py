"""A stand-in for the ``lb-dfaas`` executable, for the plugin's process mechanics.

Used only by the unit tests (the end-to-end tests run the real binary). Its
behaviour is steered by ``config.fake`` in the request, which the plugin
passes through like any other field:

- ``mode``: ``ok`` (print a result, exit 0), ``fail`` (result with an error
  object, exit 1), ``garbage`` (non-JSON stdout), ``hang`` (wait for
  SIGTERM, then print an interrupted result and exit 130), ``deaf`` (ignore
  SIGTERM and sleep);
- ``record``: file to write the request into;
- ``ready``: file created once signal handlers are installed;
- ``events``: how many ``LB_EVENT`` lines to print on stderr (interleaved
  with ordinary log lines);
- ``raw_stderr``: lines printed on stderr as they are, before those events.

``describe`` prints a manifest whose playbooks live in ``$FAKE_PLAYBOOK_DIR``
and counts its calls in ``$FAKE_DESCRIBE_COUNT``; ``validate`` rejects a
config without ``functions``; ``plan`` requires ``--limit N`` and prints
counts and a runtime bound for ``$FAKE_PLAN_ENTRIES`` configurations,
listing at most N.
"""

import json
import os
import signal
import sys
import time


def emit(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def describe() -> int:
    count_file = os.environ.get("FAKE_DESCRIBE_COUNT")
    if count_file:
        with open(count_file, "a") as handle:
            handle.write("x")
    base = os.environ.get("FAKE_PLAYBOOK_DIR", "/nonexistent")
    playbooks = {
        "setup_global": f"{base}/setup_global.yml",
        "setup_k6": f"{base}/setup_k6.yml",
        "collect_pre": f"{base}/collect/pre.yml",
        "collect_post": f"{base}/collect/post.yml",
        "teardown": f"{base}/teardown_k6.yml",
    }
    print(json.dumps({"name": "dfaas", "version": "0.0.0-fake", "playbooks": playbooks}))
    return 0


def validate(request: dict) -> int:
    if request.get("config", {}).get("functions"):
        print(json.dumps({"ok": True}))
        return 0
    print(
        json.dumps(
            {
                "ok": False,
                "error": {
                    "type": "invalid_input",
                    "message": "invalid configuration: functions: at least one function is required",
                    "context": {
                        "errors": [
                            {"field": "functions", "reason": "at least one function is required"}
                        ]
                    },
                },
            }
        )
    )
    return 2


def plan(request: dict, args: list) -> int:
    entries = int(os.environ.get("FAKE_PLAN_ENTRIES", "3"))
    if "--limit" not in args:
        emit("fake: plan must be called with --limit")
        return 2
    listed = min(entries, int(args[args.index("--limit") + 1]))
    head = {
        "functions": ["env", "figlet"],
        "rates": [0, 10],
        "iterations": 2,
        "duration": "5s",
        "count": entries,
        "to_run": entries,
        "already_indexed": 0,
        "estimated_runtime_seconds": entries * 2 * 5,
        "runtime_upper_bound_seconds": entries * 2 * 5 + 7,
    }
    out = sys.stdout
    out.write(json.dumps(head)[:-1] + ',"configurations":[\n')
    try:
        for index in range(listed):
            sep = "," if index + 1 < listed else ""
            out.write(
                json.dumps(
                    {"index": index, "config_id": f"{index:012x}", "pairs": [], "skip": None}
                )
                + sep
                + "\n"
            )
        out.write('],"truncated":false}\n')
        out.flush()
    except BrokenPipeError:
        return 0
    return 0


def result(returncode: int, interrupted: bool, error: object = None) -> dict:
    return {
        "returncode": returncode,
        "success": returncode == 0,
        "interrupted": interrupted,
        "dfaas_functions": ["figlet"],
        "dfaas_results": [{"function_figlet": "figlet", "rate_function_figlet": 10}],
        "dfaas_skipped": [],
        "dfaas_index": [{"functions": ["figlet"], "rates": [10], "results_file": "results.csv"}],
        "dfaas_summaries": [],
        "dfaas_metrics": [],
        "dfaas_scripts": [],
        "artifacts": [],
        "error": error,
    }


def run(request: dict) -> int:
    fake = request.get("config", {}).get("fake", {})
    if fake.get("record"):
        with open(fake["record"], "w") as handle:
            json.dump(request, handle)
    mode = fake.get("mode", "ok")
    terminated = []
    if mode == "hang":
        signal.signal(signal.SIGTERM, lambda *_: terminated.append(True))
    elif mode == "deaf":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for raw in fake.get("raw_stderr", []):
        emit(raw)
    for index in range(int(fake.get("events", 0))):
        emit(f"2026-01-01T00:00:00Z INFO ordinary log line {index}")
        emit(
            "LB_EVENT "
            + json.dumps({"status": "running", "type": "status", "message": f"event {index}"})
        )
    if fake.get("ready"):
        with open(fake["ready"], "w") as handle:
            handle.write(str(os.getpid()))
    if mode == "ok":
        print(json.dumps(result(0, False)))
        return 0
    if mode == "fail":
        error = {
            "type": "configuration_failed",
            "message": "1 configuration failed",
            "context": {"failed": 1},
        }
        print(json.dumps(result(1, False, error)))
        return 1
    if mode == "garbage":
        emit("fatal: something broke")
        print("this is not json")
        return 0
    deadline = time.monotonic() + 60
    while not terminated and time.monotonic() < deadline:
        time.sleep(0.02)
    if mode == "hang" and terminated:
        error = {"type": "interrupted", "message": "interrupted by SIGTERM", "context": {}}
        print(json.dumps(result(130, True, error)))
        return 130
    return 99


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "describe":
        return describe()
    request = json.loads(sys.stdin.read() or "{}")
    if command == "validate":
        return validate(request)
    if command == "plan":
        return plan(request, sys.argv[2:])
    if command == "run":
        return run(request)
    emit(f"unknown command {command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
