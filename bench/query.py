"""Benchmark the query API on a database of realistic runs, against the design's targets.

    .venv/bin/python bench/query.py [--runs N] [--runs-file FILE.jsonl]
        [--database-url URL] [--repeat K] [--json] [--reuse]

The database at URL is dropped, recreated, migrated and loaded with N generated
runs (or the records of FILE.jsonl) through store.load_runs. Each query is
then timed K times after a warm-up. Shared machines are noisy, so the same run
also times two baselines with the bare driver, a ``SELECT 1`` round trip and a
primary-key lookup, and every query is reported as a multiple of them too. The design
document's queries 1 to 4 (issue 17) are also reported as a multiple of MLflow's figures.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import store  # noqa: E402
from store import (
    load_runs,  # noqa: E402
    normalize_url,  # noqa: E402
)
from testkit.factory import generate_runs, read_runs_file, runs_file  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench"
WARM_UP = 3
MS = 1e3
# query -> the design's target for its median, in milliseconds
TARGETS_MS = {
    "get_run": 2,
    "query_runs, config JSON path": 300,
    "query_runs, summary JSON path": 300,
    "query_runs_by_objectives, 2 thresholds": 50,
    "compare_gradient_methods": 50,
}
TARGET_BYTES_PER_RUN = 5000
# The design document's queries 1 to 4 as issue 17 states them: every match, whole runs, and also
# with only the columns a user needs. MLflow 3.17's figures at 10,000 of the same generated runs
# (seed 7, PostgreSQL, same kind of machine), and the multiple of them each must beat.
QUERY_1 = "gradient_method = 'mgda' and batch_size = 64 and status = 'completed'"
QUERY_2 = "objective.COMT_activity.raw_mean > 0.8 and objective.DRD5_activity.raw_mean > 0.7"
MLFLOW_MS = {"query 1": 2378, "query 2": 701, "query 3": 25_800, "query 4": 84_200}
DESIGN_TARGETS = {
    "query 1, whole runs": ("query 1", 20),
    "query 1, projection": ("query 1", 100),
    "query 2, whole runs": ("query 2", 20),
    "query 2, projection": ("query 2", 100),
    "query 3, compare methods on DRD5": ("query 3", 1000),
    "query 4, crash rate by method": ("query 4", 1000),
}


def recreate_database(url: str) -> None:
    """Drop and create the benchmark database, empty."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    # The name is the operator's own argument, quoted; it cannot be a bound parameter.
    name = parsed.database.replace('"', '""')
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        sys.exit(f"cannot recreate {parsed.render_as_string()}: {str(error.orig).strip().splitlines()[0]}")
    finally:
        admin.dispose()


def load(records: Iterator[dict[str, Any]], total: int | None, console: Console) -> tuple[list[str], float]:
    """Load records with the bulk loader behind a progress bar; return their run ids and the seconds taken."""
    run_ids: list[str] = []

    def tracked() -> Iterator[dict[str, Any]]:
        for record in records:
            run_ids.append(record["run_id"])
            yield record

    columns = (TextColumn("loading runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    started = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("load", total=total)
        load_runs(tracked(), progress=lambda count: progress.advance(task, count))
    return run_ids, time.perf_counter() - started


def vacuum_analyze(backend: str) -> None:
    # VACUUM as well as ANALYZE: a freshly loaded table has no visibility map yet, so the
    # objective indexes could not serve index-only scans until autovacuum's first pass.
    engine = store.get_engine()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if backend == "postgresql":
            connection.execute(text("VACUUM (ANALYZE) training_runs, run_objectives"))
        else:
            connection.execute(text("ANALYZE"))


def storage(backend: str, runs: int) -> dict[str, Any]:
    """Return the bytes the runs take: tables, TOAST and indexes (the whole file on SQLite)."""
    with store.get_engine().connect() as connection:
        if backend == "postgresql":
            sizes = {
                name: dict(
                    connection.execute(
                        text(
                            "SELECT pg_table_size(CAST(:name AS regclass)) AS table_and_toast,"
                            " pg_indexes_size(CAST(:name AS regclass)) AS indexes"
                        ),
                        {"name": name},
                    )
                    .one()
                    ._mapping
                )
                for name in ("training_runs", "run_objectives")
            }
            total = sum(sum(parts.values()) for parts in sizes.values())
        else:
            pages = connection.execute(text("PRAGMA page_count")).scalar_one()
            total = pages * connection.execute(text("PRAGMA page_size")).scalar_one()
            sizes = {}
    return {"total_bytes": total, "bytes_per_run": total / runs, "breakdown": sizes}


def raw_baselines(url: str, run_ids: list[str], rng: random.Random) -> dict[str, Callable[[], Any]]:
    """Return the two baselines, run on a bare driver connection with no SQLAlchemy in between."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        connection: Any = psycopg.connect(conninfo, autocommit=True)
        lookup = "SELECT * FROM training_runs WHERE run_id = %s"
    else:
        connection = sqlite3.connect(parsed.database, isolation_level=None)
        lookup = "SELECT * FROM training_runs WHERE run_id = ?"

    def select_one() -> Any:
        return connection.execute("SELECT 1").fetchone()

    def primary_key_lookup() -> Any:
        return connection.execute(lookup, (rng.choice(run_ids),)).fetchone()

    return {"SELECT 1": select_one, "primary-key lookup": primary_key_lookup}


def api_queries(run_ids: list[str], rng: random.Random) -> dict[str, Callable[[], Any]]:
    """Return the API calls to time, by name."""
    return {
        "get_run": lambda: store.get_run(rng.choice(run_ids)),
        "query_runs, typed columns": lambda: store.query_runs({"gradient_method": "mgda", "batch_size": 64}),
        "query_runs, config JSON path": lambda: store.query_runs(
            {"config.training.gradient_accumulation_steps": {"gt": 4}, "status": "completed"}
        ),
        "query_runs, summary JSON path": lambda: store.query_runs({"summary.train/loss": {"lt": 0.5}}),
        "query_runs_by_objectives, 2 thresholds": lambda: store.query_runs_by_objectives(
            {"COMT_activity": {"min": 0.8}, "DRD5_activity": {"min": 0.7}}, status="completed"
        ),
        "compare_gradient_methods": lambda: store.compare_gradient_methods("DRD5_activity"),
        "get_objective_statistics": lambda: store.get_objective_statistics("COMT_activity"),
        "get_stats": store.get_stats,
    }


def design_queries() -> dict[str, Callable[[], Any]]:
    """Return the design document's queries 1 to 4, by name."""
    return {
        "query 1, whole runs": lambda: store.query_runs(where=QUERY_1, limit=None),
        "query 1, projection": lambda: store.query_runs(
            where=QUERY_1, limit=None, columns=["run_id", "run_name", "learning_rate", "final_loss"]
        ),
        "query 2, whole runs": lambda: store.query_runs(where=QUERY_2, limit=None),
        "query 2, projection": lambda: store.query_runs(
            where=QUERY_2,
            limit=None,
            columns=[
                "run_id",
                "gradient_method",
                "objective.COMT_activity.raw_mean",
                "objective.DRD5_activity.raw_mean",
            ],
        ),
        "query 3, compare methods on DRD5": lambda: store.compare_gradient_methods("DRD5_activity"),
        "query 4, crash rate by method": lambda: store.get_stats()["crash_rate_by_gradient_method"],
    }


def time_call(call: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """Time ``call`` ``repeat`` times after a warm-up; return median, p95 and the result's size."""
    for _ in range(WARM_UP):
        result = call()
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    p95 = seconds[math.ceil(0.95 * len(seconds)) - 1]  # nearest rank
    return {
        "median_ms": statistics.median(seconds) * MS,
        "p95_ms": p95 * MS,
        "rows": len(result) if isinstance(result, list | dict) else None,
    }


def report(results: dict[str, Any], console: Console) -> None:
    baselines = results["baselines"]
    select_one, pk = baselines["SELECT 1"]["median_ms"], baselines["primary-key lookup"]["median_ms"]
    table = Table(title=f"{results['runs']:,} runs on {results['backend']} ({results['repeat']} repetitions)")
    for heading in ("query", "median ms", "p95 ms", "× SELECT 1", "× PK lookup", "rows", "target", "met"):
        table.add_column(heading, justify="left" if heading in ("query", "met") else "right", no_wrap=True)
    for name, timing in [*baselines.items(), *results["queries"].items()]:
        target = TARGETS_MS.get(name)
        met = "" if target is None else ("yes" if timing["median_ms"] < target else "NO")
        table.add_row(
            name,
            f"{timing['median_ms']:.2f}",
            f"{timing['p95_ms']:.2f}",
            f"{timing['median_ms'] / select_one:.1f}",
            f"{timing['median_ms'] / pk:.1f}",
            "" if timing["rows"] is None else str(timing["rows"]),
            "" if target is None else f"< {target} ms",
            met,
        )
    design = Table(title="the design document's queries 1 to 4 (issue 17), against MLflow at 10,000 runs")
    for heading in (
        "query",
        "median ms",
        "p95 ms",
        "× PK lookup",
        "rows",
        "MLflow ms",
        "× faster",
        "target",
        "met",
    ):
        design.add_column(heading, justify="left" if heading in ("query", "met") else "right", no_wrap=True)
    for name, timing in results["design_queries"].items():
        mlflow, multiple = DESIGN_TARGETS[name]
        faster = MLFLOW_MS[mlflow] / timing["median_ms"]
        design.add_row(
            name,
            f"{timing['median_ms']:.2f}",
            f"{timing['p95_ms']:.2f}",
            f"{timing['median_ms'] / pk:.1f}",
            "" if timing["rows"] is None else str(timing["rows"]),
            f"{MLFLOW_MS[mlflow]:,}",
            f"{faster:,.0f}",
            f">= {multiple:,}×",
            "yes" if faster >= multiple else "NO",
        )
    per_run = results["storage"]["bytes_per_run"]
    table.add_section()
    table.add_row(
        "storage per run",
        *[""] * 5,
        f"< {TARGET_BYTES_PER_RUN} B",
        f"{'yes' if per_run < TARGET_BYTES_PER_RUN else 'NO'} ({per_run:,.0f} B)",
    )
    console.print(table)
    console.print(design)
    load = results["load"]
    if load is not None:
        console.print(f"loaded in {load['seconds']:.1f} s ({load['runs_per_second']:,.0f} runs/s)")
    for name, parts in results["storage"]["breakdown"].items():
        console.print(
            f"{name}: " + ", ".join(f"{part} {size / 2**20:,.1f} MiB" for part, size in parts.items())
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs to generate (default 100000)")
    parser.add_argument("--runs-file", type=runs_file, help="load these JSONL records instead of generating runs")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="database to DROP, recreate and fill")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per query (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated runs and sampled ids")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON on stdout")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the database as an earlier run loaded it, without reloading",
    )
    args = parser.parse_args(argv)
    # With --json, stdout carries only the JSON document.
    console = Console(stderr=args.json)
    if not console.is_terminal:
        console.width = 140  # rich's default of 80 columns would wrap the table when piped

    url = normalize_url(args.database_url)
    if args.reuse:
        engine = store.configure(url)
        with engine.connect() as connection:
            run_ids = list(connection.execute(text("SELECT run_id FROM training_runs")).scalars())
        seconds = None
    else:
        recreate_database(url)
        engine = store.configure(url)
        store.upgrade_schema(engine)
        if args.runs_file:
            with open(args.runs_file, encoding="utf-8") as lines:
                total = sum(1 for line in lines if line.strip())
            try:
                run_ids, seconds = load(read_runs_file(args.runs_file), total, console)
            except ValueError as error:
                sys.exit(f"bench/query.py: {error}")
        else:
            run_ids, seconds = load(generate_runs(args.runs, seed=args.seed), args.runs, console)
    backend = engine.dialect.name
    vacuum_analyze(backend)

    rng = random.Random(args.seed)
    baselines = raw_baselines(url, run_ids, rng)
    results: dict[str, Any] = {
        "backend": backend,
        "runs": len(run_ids),
        "repeat": args.repeat,
        "targets": {"median_ms": TARGETS_MS, "bytes_per_run": TARGET_BYTES_PER_RUN},
        "load": None if seconds is None else {"seconds": seconds, "runs_per_second": len(run_ids) / seconds},
        "storage": storage(backend, len(run_ids)),
        "baselines": {name: time_call(call, args.repeat) for name, call in baselines.items()},
        "queries": {},
        "design_queries": {},
        "mlflow_ms_at_10000_runs": MLFLOW_MS,
    }
    for name, call in api_queries(run_ids, rng).items():
        console.print(f"timing {name}...", style="dim")
        results["queries"][name] = time_call(call, args.repeat)
    for name, call in design_queries().items():
        console.print(f"timing {name}...", style="dim")
        results["design_queries"][name] = time_call(call, args.repeat)
    report(results, console)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
