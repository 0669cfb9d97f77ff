"""Drives lb's own ``peva_faas`` memory code (the vendored lb source) with
Python's ``duckdb``, for the compatibility tests in ``tests/memory.rs``.

Only ``services/memory_store.py``, ``memory_checkpoint.py`` and
``contracts.py`` are loaded, as modules of a stand-in package, so that
lb's heavier imports (pydantic models, k6 runner) are not needed.

Usage: python3 peva_faas_memory.py LB_SOURCE COMMAND ARGS...
  create DB                write DB with peva_faas's store and one event
  read DB                  open DB with peva_faas's store; print what it sees
  describe DB              print the tables, columns and constraints of DB
  export DB CORE DEBUG     peva_faas's Parquet export of DB
  preload DB DIR           new DB from peva_faas's store, then its core preload
Prints one JSON document on stdout.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import duckdb

SCHEMA = "peva_faas_mem_v1"


def peva_services(lb_source: Path) -> types.ModuleType:
    services = lb_source / "lb_plugins" / "plugins" / "peva_faas" / "services"
    if not (services / "memory_store.py").is_file():
        raise SystemExit(f"no peva_faas memory store under {services}")
    package = types.ModuleType("peva_memory")
    package.__path__ = [str(services)]  # type: ignore[attr-defined]
    sys.modules["peva_memory"] = package
    return package


def store_module():
    return importlib.import_module("peva_memory.memory_store")


def checkpoint_module():
    return importlib.import_module("peva_memory.memory_checkpoint")


def create(db: Path) -> dict:
    contracts = importlib.import_module("peva_memory.contracts")
    store = store_module().DuckDBMemoryStore(db, SCHEMA)
    store.startup()
    pairs = [("env", 20), ("figlet", 10)]
    store.insert_execution_event(
        contracts.ExecutionEvent(
            run_id="peva-run",
            config_id="peva00000001",
            iteration=1,
            repetition=1,
            config_pairs=pairs,
            config_key=(("env", "figlet"), (20, 10)),
            started_at=1_700_000_000.0,
            ended_at=1_700_000_030.0,
            result_row={"function_env": "env", "overloaded_node": 1},
            metrics={"cpu_usage_node": 12.5},
            summary={"metrics": {}},
            output_dir=db.parent,
        )
    )
    count = store.count_execution_events()
    store.close()
    return {"events": count}


def read(db: Path) -> dict:
    store = store_module().DuckDBMemoryStore(db, SCHEMA)
    store.startup()
    seen = sorted([list(functions), list(rates)] for functions, rates in store.load_seen_keys())
    result = {
        "schema_version": store.schema_version(),
        "events": store.count_execution_events(),
        "seen": seen,
    }
    store.close()
    return result


def describe(db: Path) -> dict:
    with duckdb.connect(str(db), read_only=True) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable "
            "FROM duckdb_columns() WHERE schema_name = 'main' AND NOT internal "
            "ORDER BY table_name, column_index"
        ).fetchall()
        constraints = conn.execute(
            "SELECT table_name, constraint_type, constraint_column_names "
            "FROM duckdb_constraints() WHERE schema_name = 'main' "
            "ORDER BY ALL"
        ).fetchall()
        version = conn.execute("SELECT schema_version FROM memory_schema_meta").fetchall()
    tables: dict[str, list] = {}
    for table, column, data_type, nullable in columns:
        tables.setdefault(table, []).append([column, data_type, bool(nullable)])
    return {
        "duckdb": duckdb.__version__,
        "tables": tables,
        "constraints": [[t, k, list(c)] for t, k, c in constraints],
        "schema_versions": [row[0] for row in version],
    }


def export(db: Path, core: Path, debug: Path) -> dict:
    checkpoint_module().ParquetCheckpoint(db, SCHEMA).export_all(core_dir=core, debug_dir=debug)
    return {"core": sorted(p.name for p in core.iterdir()), "debug": sorted(p.name for p in debug.iterdir())}


def preload(db: Path, directory: Path) -> dict:
    store = store_module().DuckDBMemoryStore(db, SCHEMA)
    store.startup()
    store.close()
    checkpoint_module().ParquetCheckpoint(db, SCHEMA).preload_core(directory)
    return read(db)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    peva_services(Path(argv[0]))
    command, args = argv[1], [Path(a) for a in argv[2:]]
    commands = {"create": create, "read": read, "describe": describe, "export": export, "preload": preload}
    if command not in commands:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    print(json.dumps(commands[command](*args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
