"""Benchmark runs' metric histories on PostgreSQL: bytes per stored value, and the two history reads.

    .venv/bin/python bench/history.py [--runs N] [--points P] [--keys K]
        [--database-url URL] [--repeat R] [--json] [--reuse]

The database at URL is dropped, recreated, migrated and loaded with N generated runs
(testkit/factory.py, through store.bulk.load_runs), each with a history of P points of K keys:
training curves with noise, packed by the store's own chunk encoding (store.history.history_rows)
and written with COPY, not sent as N x P events. Then it reports the bytes the history tables take,
indexes and TOAST included, per stored (step, key) value, and times store.get_run_history (one
run, 5 keys) and store.get_history (one key over the 20 newest runs a filter matches). Shared
machines are noisy, so the same run times a baseline, a primary-key lookup of a run on the bare
driver, and reports each read as a multiple of it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import store  # noqa: E402
from bench.query import MS, WARM_UP, load, recreate_database, time_call  # noqa: E402
from store import migrate  # noqa: E402
from store.database import normalize_url  # noqa: E402
from store.history import history_rows  # noqa: E402
from testkit.factory import GRADIENT_METHODS, generate_runs  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench_history"
TARGETS_MS = {"get_run_history, 5 keys": 20, "get_history, 20 runs": 100}
TARGET_BYTES_PER_VALUE = 12
READ_KEYS = ["train/loss", "train/reward_mean", "eval/reward_mean", "objectives/QED/raw_mean", "train/lr"]
OVERLAY_KEY = "train/loss"
OVERLAY_FILTER = "gradient_method = 'mgda'"


def key_names(count: int) -> list[str]:
    """Return ``count`` metric names, the five the reads ask for first."""
    extra = [f"train/metric_{i:02d}" for i in range(max(count - len(READ_KEYS), 0))]
    return (READ_KEYS + extra)[:count]


def curves(
    rng: random.Random, points: int, keys: list[str]
) -> tuple[list[int], list[float], dict[str, list[float]]]:
    """Return one run's steps, times and a noisy training curve per key."""
    every = rng.choice((1, 5, 10, 25))
    steps = [i * every for i in range(points)]
    started = 1_790_000_000.0 + rng.random() * 1e7
    seconds_per_step = rng.uniform(0.2, 3.0)
    times = [started + step * seconds_per_step for step in steps]
    series = {}
    for key in keys:
        level, floor, rate, noise = (
            rng.uniform(1, 10),
            rng.uniform(0, 1),
            rng.uniform(1, 8),
            rng.uniform(0.01, 0.1),
        )
        gauss = rng.gauss
        series[key] = [
            floor + level * math.exp(-rate * i / points) + gauss(0.0, noise) for i in range(points)
        ]
    return steps, times, series


def load_histories(
    url: str, run_ids: list[str], points: int, keys: list[str], seed: int, console: Console
) -> float:
    """Write every run's history with COPY, chunks encoded by the store; return the seconds taken."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    rng = random.Random(seed)
    columns = (TextColumn("loading histories"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    started = time.perf_counter()
    with psycopg.connect(conninfo) as connection, Progress(*columns, console=console) as progress:
        task = progress.add_task("histories", total=len(run_ids))
        with connection.cursor() as cursor:
            for first in range(0, len(run_ids), 500):
                metas, chunks = [], []
                for run_id in run_ids[first : first + 500]:
                    meta, rows = history_rows(run_id, *curves(rng, points, keys))
                    metas.append(meta)
                    chunks += rows
                with cursor.copy(
                    "COPY run_histories (run_id, keys, stride, points, last_step) FROM STDIN"
                ) as copy:
                    for meta in metas:
                        copy.write_row(
                            (
                                meta["run_id"],
                                json.dumps(meta["keys"]),
                                meta["stride"],
                                meta["points"],
                                meta["last_step"],
                            )
                        )
                statement = (
                    "COPY run_history_chunks (run_id, start, width, points, data) FROM STDIN (FORMAT BINARY)"
                )
                with cursor.copy(statement) as copy:
                    copy.set_types(["text", "int8", "int8", "int4", "bytea"])
                    for chunk in chunks:
                        copy.write_row(
                            (chunk["run_id"], chunk["start"], chunk["width"], chunk["points"], chunk["data"])
                        )
                connection.commit()
                progress.advance(task, len(metas))
    return time.perf_counter() - started


def vacuum_analyze() -> None:
    with store.get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE) training_runs, run_histories, run_history_chunks"))


def storage(values: int) -> dict[str, Any]:
    """Return the bytes the history tables take (heap, TOAST and indexes) per stored value."""
    with store.get_engine().connect() as connection:
        sizes = {
            name: dict(
                connection.execute(
                    text(
                        "SELECT pg_relation_size(CAST(:name AS regclass)) AS heap,"
                        " pg_table_size(CAST(:name AS regclass)) - pg_relation_size(CAST(:name AS regclass))"
                        " AS toast_and_maps,"
                        " pg_indexes_size(CAST(:name AS regclass)) AS indexes,"
                        " pg_total_relation_size(CAST(:name AS regclass)) AS total"
                    ),
                    {"name": name},
                )
                .one()
                ._mapping
            )
            for name in ("run_histories", "run_history_chunks")
        }
        chunks = connection.execute(text("SELECT count(*) FROM run_history_chunks")).scalar_one()
    total = sum(parts["total"] for parts in sizes.values())
    return {
        "total_bytes": total,
        "values": values,
        "bytes_per_value": total / values,
        "chunks": chunks,
        "breakdown": sizes,
    }


def progress_writes(
    keys: list[str], runs: int, steps: int, policy: store.HistoryPolicy, prefix: str
) -> dict[str, Any]:
    """Apply run.progress calls as the worker does, 100 to a unit of work, the runs interleaved,
    each step a point with every key; return the calls per second."""
    rng = random.Random(0)
    calls = [(f"{prefix}-{run:04d}", step * 10) for step in range(steps) for run in range(runs)]
    started = time.perf_counter()
    for first in range(0, len(calls), 100):
        batch = calls[first : first + 100]
        with store.unit_of_work({run_id for run_id, _ in batch}):
            for run_id, step in batch:
                store.record_progress(run_id, step, {key: rng.random() for key in keys}, history=policy)
    seconds = time.perf_counter() - started
    return {"calls": len(calls), "seconds": seconds, "calls_per_second": len(calls) / seconds}


def primary_key_lookup(url: str, run_ids: list[str], rng: random.Random) -> Any:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = psycopg.connect(conninfo, autocommit=True)

    def lookup() -> Any:
        return connection.execute(
            "SELECT * FROM training_runs WHERE run_id = %s", (rng.choice(run_ids),)
        ).fetchone()

    return lookup


def report(results: dict[str, Any], console: Console) -> None:
    pk = results["baseline"]["median_ms"]
    table = Table(
        title=f"{results['runs']:,} runs x {results['points']:,} points x {results['keys']} keys on PostgreSQL"
        f" ({results['repeat']} repetitions)"
    )
    for heading in ("read", "median ms", "p95 ms", "× PK lookup", "client CPU ms", "points", "target", "met"):
        table.add_column(heading, justify="left" if heading in ("read", "met") else "right", no_wrap=True)
    rows = [("primary-key lookup (baseline)", results["baseline"]), *results["reads"].items()]
    for name, timing in rows:
        target = TARGETS_MS.get(name)
        table.add_row(
            name,
            f"{timing['median_ms']:.2f}",
            f"{timing['p95_ms']:.2f}",
            f"{timing['median_ms'] / pk:.1f}",
            f"{timing['client_cpu_ms']:.2f}" if "client_cpu_ms" in timing else "",
            str(timing.get("points", "")),
            "" if target is None else f"< {target} ms",
            "" if target is None else ("yes" if timing["median_ms"] < target else "NO"),
        )
    per_value = results["storage"]["bytes_per_value"]
    table.add_section()
    table.add_row(
        "bytes per stored value",
        f"{per_value:.2f}",
        *[""] * 4,
        f"<= {TARGET_BYTES_PER_VALUE} B",
        "yes" if per_value <= TARGET_BYTES_PER_VALUE else "NO",
    )
    console.print(table)
    for name, parts in results["storage"]["breakdown"].items():
        console.print(
            f"{name}: " + ", ".join(f"{part} {size / 2**20:,.1f} MiB" for part, size in parts.items())
        )
    writes = {
        name: statistics.median(t["calls_per_second"] for t in runs)
        for name, runs in results["writes"].items()
    }
    console.print(
        f"run.progress applied 100 to a unit of work, 20 keys: {writes['with history']:,.0f}/s with history, "
        f"{writes['without history']:,.0f}/s without (same run), ratio {writes['with history'] / writes['without history']:.2f}"
    )
    console.print(f"{results['storage']['chunks']:,} chunks; load average {results['load_average']}")
    if results["load"]:
        console.print(
            f"runs loaded in {results['load']['runs_seconds']:.0f} s, histories in "
            f"{results['load']['histories_seconds']:.0f} s"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs to generate (default 10000)")
    parser.add_argument("--points", type=int, default=1000, help="history points per run (default 1000)")
    parser.add_argument("--keys", type=int, default=20, help="keys per point (default 20)")
    parser.add_argument(
        "--database-url", default=DEFAULT_URL, help="PostgreSQL database to DROP, recreate and fill"
    )
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per read (default 50)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the generated runs, curves and sampled ids"
    )
    parser.add_argument("--json", action="store_true", help="also print the results as JSON on stdout")
    parser.add_argument("--reuse", action="store_true", help="time the database an earlier run loaded")
    args = parser.parse_args(argv)
    if args.points > store.DEFAULT_HISTORY_POLICY.max_points:
        parser.error(
            f"--points must be at most {store.DEFAULT_HISTORY_POLICY.max_points}, the points a history keeps"
        )
    console = Console(stderr=args.json)
    if not console.is_terminal:
        console.width = 140

    url = normalize_url(args.database_url)
    if make_url(url).get_backend_name() != "postgresql":
        parser.error("the history benchmark runs on PostgreSQL (it loads with COPY)")
    keys = key_names(args.keys)
    loaded = None
    if args.reuse:
        engine = store.configure(url)
        with engine.connect() as connection:
            run_ids = list(connection.execute(text("SELECT run_id FROM run_histories")).scalars())
    else:
        recreate_database(url)
        engine = store.configure(url)
        migrate.upgrade(engine)
        run_ids, runs_seconds = load(generate_runs(args.runs, seed=args.seed), args.runs, console)
        histories_seconds = load_histories(url, run_ids, args.points, keys, args.seed, console)
        loaded = {"runs_seconds": runs_seconds, "histories_seconds": histories_seconds}
    vacuum_analyze()

    rng = random.Random(args.seed)
    baseline = primary_key_lookup(url, run_ids, rng)
    methods = list(GRADIENT_METHODS)
    reads = {
        "get_run_history, 5 keys": lambda: store.get_run_history(rng.choice(run_ids), keys=keys[:5]),
        # What an open run page asks every second or two: anything past the step it shows.
        "get_run_history, 5 keys, a poll with nothing new": lambda: store.get_run_history(
            rng.choice(run_ids), keys=keys[:5], since_step=2**62
        ),
        "get_history, 20 runs": lambda: store.get_history(
            f"gradient_method = '{rng.choice(methods)}'", OVERLAY_KEY
        ),
    }
    results: dict[str, Any] = {
        "runs": len(run_ids),
        "points": args.points,
        "keys": len(keys),
        "repeat": args.repeat,
        "targets": {"median_ms": TARGETS_MS, "bytes_per_value": TARGET_BYTES_PER_VALUE},
        "load": loaded,
        "storage": storage(len(run_ids) * args.points * len(keys)),
        "baseline": time_call(baseline, args.repeat),
        "reads": {},
    }
    for name, call in reads.items():
        console.print(f"timing {name}...", style="dim")
        # This process's CPU per call as well: on a loaded machine the wall clock mostly measures
        # waiting for a core.
        cpu = time.process_time()
        timing = time_call(call, args.repeat)
        timing["client_cpu_ms"] = (time.process_time() - cpu) / (args.repeat + WARM_UP) * MS
        result = call()
        timing["points"] = (
            sum(len(curve["steps"]) for curve in result) if isinstance(result, list) else len(result["steps"])
        )
        results["reads"][name] = timing
    # The cost of history on the write path: the same progress calls, with and without history
    # (no key kept), alternated, on runs of their own.
    for round_ in range(2):
        for name, policy in (
            ("without history", store.HistoryPolicy(keys=())),
            ("with history", store.DEFAULT_HISTORY_POLICY),
        ):
            console.print(f"applying progress {name}...", style="dim")
            timing = progress_writes(keys, 50, 40, policy, f"write-{round_}-{name.split()[0]}")
            results.setdefault("writes", {}).setdefault(name, []).append(timing)
    with store.get_engine().begin() as connection:
        connection.execute(text("DELETE FROM training_runs WHERE run_id LIKE 'write-%'"))
    results["load_average"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
    report(results, console)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
