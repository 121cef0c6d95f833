"""Benchmark per-scaffold tracking: molecules applied end to end, and the scaffold queries at scale.

    .venv/bin/python bench/scaffolds.py [--database-url URL] [--batches N] [--batch-size M]
        [--runs R] [--scaffolds S] [--repeat K] [--skip-throughput] [--skip-queries] [--json]

Throughput: the ingester (gunicorn, as the Procfile serves it) and one ``training-db worker``
on PostgreSQL get N signed ``run.molecules`` batches of M molecules (testkit/factory.py: RL-like
runs that repeat molecules); the rate is molecules from the first request sent to the last
batch committed. The baseline, in this process before and after, is bare RDKit on the same
SMILES: parse, canonical SMILES, Murcko scaffold, no cache. The same is done again with every
SMILES distinct, where the worker's cache cannot help.

Queries: R runs (store.load_runs) whose molecules hold S distinct scaffolds, recorded with
store.record_molecules, then each scaffold query timed K times; the baseline is a primary-key
lookup of a run_scaffolds row on the bare driver.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import requests
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import store  # noqa: E402
from bench.ingest import SECRET, free_port, libpq, wait_for_http, wait_for_log  # noqa: E402
from bench.query import recreate_database, time_call  # noqa: E402
from ingest.client import sign  # noqa: E402
from store import normalize_url  # noqa: E402
from testkit.factory import generate_runs, generate_scaffolds, molecule_batches  # noqa: E402
from testkit.processes import running  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench_scaffolds"
BIN = Path(sys.executable).parent
TARGET_RATIO = 0.70
TARGETS_MS = {
    "get_run_scaffolds": 10,
    "query_scaffolds, top 50": 100,
    "scaffold_diversity": 100,
    "find_runs_with_scaffold, substructure": 500,
    "find_runs_with_scaffold, exact": 10,
}
PATTERNS = (
    "c1ccccc1",
    "c1ccncc1",
    "C1CCNCC1",
    "c1ccsc1",
    "C(=O)N",
    "c1ccc2ccccc2c1",
    "c1cn[nH]c1",
    "[#7]1~[#6]~[#8]~[#6]~[#6]~1",
)
POSTERS = 4


def bare_rdkit_rate(smiles: list[str]) -> float:
    """Molecules per second of parse, canonical SMILES and Murcko scaffold, one process, no cache."""
    started = time.perf_counter()
    for text_ in smiles:
        molecule = Chem.MolFromSmiles(text_)
        if molecule is None:
            continue
        Chem.MolToSmiles(molecule)
        Chem.MolToSmiles(MurckoScaffold.GetScaffoldForMol(molecule), isomericSmiles=False)
    return len(smiles) / (time.perf_counter() - started)


def batches_of(count: int, size: int, distinct: bool) -> list[dict[str, Any]]:
    """Return ``count`` batches of ``size`` molecules over eight runs; with ``distinct``, no SMILES twice."""
    pool = generate_scaffolds(2_000, seed=11)
    per_run = -(-count // 8)
    seen: set[str] = set()
    batches = []
    for run in range(8):
        for batch in molecule_batches(f"bench-run-{run}", per_run * (3 if distinct else 1), size, 21, pool):
            if distinct:
                kept = []
                for molecule in batch["molecules"]:
                    if molecule["smiles"] not in seen:
                        seen.add(molecule["smiles"])
                        kept.append(molecule)
                batch["molecules"] = kept
            batches.append(batch)
    if distinct:
        # Refill batches to ``size`` from the distinct molecules, in order.
        molecules = [m for batch in batches for m in batch["molecules"]]
        batches = [
            {**batches[i], "batch_id": f"distinct-{i}", "molecules": molecules[i * size : (i + 1) * size]}
            for i in range(min(count, len(molecules) // size))
        ]
    return batches[:count]


def committed(url: str, batches: int, log: Path) -> None:
    """Wait until ``batches`` batches are committed; raise if any event failed."""
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        while connection.execute("SELECT count(*) FROM run_molecule_batches").fetchone()[0] < batches:
            failed = connection.execute(
                "SELECT count(*) FROM inbox_events WHERE status IN ('failed', 'dead', 'invalid')"
            ).fetchone()[0]
            if failed:
                raise RuntimeError(f"{failed} batch(es) failed: see {log}")
            time.sleep(0.02)


def end_to_end(
    url: str, warm_up: dict[str, Any], batches: list[dict[str, Any]], scratch: Path
) -> dict[str, Any]:
    """Post the batches to a served ingester with one worker; return the rate until the last commit."""
    recreate_database(url)
    environment = {**os.environ, "DATABASE_URL": url, "PIPELINE_WEBHOOK_SECRET": SECRET}
    subprocess.run([str(BIN / "training-db"), "migrate"], env=environment, check=True, capture_output=True)
    port = free_port()
    bodies = [
        json.dumps({"type": "run.molecules", "timestamp": "2026-12-06T10:00:00Z", "data": batch})
        for batch in batches
    ]
    molecules = sum(len(batch["molecules"]) for batch in batches)
    with ExitStack() as stack:
        gunicorn = [str(BIN / "gunicorn"), "--config", "python:ingest.gunicorn_conf"]
        web_env = {**environment, "HOST": "127.0.0.1", "PORT": str(port)}
        stack.enter_context(running(gunicorn, web_env, scratch / "web.log"))
        wait_for_http(port)
        log = scratch / "worker.log"
        stack.enter_context(running([str(BIN / "training-db"), "worker"], environment, log))
        wait_for_log(log, "worker.started", 1)
        # The worker loads RDKit with its first batch: a warm-up batch pays that before the clock runs.
        body = json.dumps({"type": "run.molecules", "timestamp": "2026-12-06T10:00:00Z", "data": warm_up})
        requests.post(f"http://127.0.0.1:{port}/webhooks/pipeline", data=body.encode(),
                      headers=sign(SECRET, "msg_bench_warm_up", body), timeout=60)  # fmt: skip
        committed(url, 1, log)
        pending = list(enumerate(bodies))
        lock = threading.Lock()
        refused: list[str] = []

        def post() -> None:
            session = requests.Session()
            while True:
                with lock:
                    if not pending:
                        return
                    index, body = pending.pop(0)
                headers = sign(SECRET, f"msg_bench_{index}", body)
                answer = session.post(f"http://127.0.0.1:{port}/webhooks/pipeline", data=body.encode(),
                                      headers=headers, timeout=60)  # fmt: skip
                if answer.status_code != 202:
                    refused.append(f"{answer.status_code} {answer.text[:200]}")

        started = time.perf_counter()
        posters = [threading.Thread(target=post) for _ in range(POSTERS)]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join()
        acknowledged = time.perf_counter() - started
        if refused:
            raise RuntimeError(f"the ingester refused batches: {refused[:3]}")
        committed(url, 1 + len(batches), log)
        seconds = time.perf_counter() - started
    return {
        "batches": len(batches),
        "molecules": molecules,
        "seconds": seconds,
        "acknowledged_seconds": acknowledged,
        "molecules_per_s": molecules / seconds,
    }


def throughput(args: argparse.Namespace, scratch: Path, console: Console) -> dict[str, Any]:
    results = {}
    for name, distinct in (("RL-like, repeats", False), ("every SMILES distinct", True)):
        # One batch more, of other molecules, for the worker to warm up on.
        warm_up, *batches = batches_of(args.batches + 1, args.batch_size, distinct)
        warm_up["run_id"] = "bench-warm-up"
        smiles = [m["smiles"] for batch in batches for m in batch["molecules"]]
        console.print(f"{name}: {len(smiles):,} molecules, {len(set(smiles)):,} distinct", style="dim")
        before = bare_rdkit_rate(smiles)
        applied = end_to_end(args.database_url, warm_up, batches, scratch)
        after = bare_rdkit_rate(smiles)
        baseline = (before + after) / 2
        results[name] = {
            **applied,
            "distinct_smiles": len(set(smiles)),
            "bare_rdkit_per_s": [before, after],
            "ratio": applied["molecules_per_s"] / baseline,
        }
    return results


def load_scaffolds(args: argparse.Namespace, console: Console, resume: bool = False) -> tuple[list[str], list[str]]:
    """Load runs and their molecules: every scaffold in one run, a popular few in many.

    With ``resume``, the runs are there and only the runs without molecules get theirs.
    """
    cache = Path(tempfile.gettempdir()) / f"training-db-bench-scaffolds-{args.scaffolds}.txt"
    if cache.exists():
        pool = cache.read_text().split("\n")
    else:
        console.print(f"generating {args.scaffolds:,} distinct scaffolds (cached in {cache})...", style="dim")
        pool = generate_scaffolds(args.scaffolds, seed=5)
        cache.write_text("\n".join(pool))
    started = time.perf_counter()
    records = list(generate_runs(args.runs, seed=1))
    run_ids = [record["run_id"] for record in records]
    recorded: set[str] = set()
    if resume:
        with store.get_engine().connect() as connection:
            recorded = set(connection.execute(text("SELECT run_id FROM run_molecules")).scalars())
    else:
        store.load_runs(records)
    rng = random.Random(3)
    popularity = [1.0 / (rank + 1) for rank in range(len(pool))]
    per_unit = 50
    for start in range(0, len(run_ids), per_unit):
        unit = run_ids[start : start + per_unit]
        with store.unit_of_work(unit):
            for offset, run_id in enumerate(unit):
                if run_id in recorded:
                    continue
                index = start + offset
                own = pool[index :: len(run_ids)]
                popular = rng.choices(pool, popularity, k=args.popular)
                molecules = [
                    {"smiles": smiles, "reward": round(rng.random(), 4),
                     "scores": {"QED": round(rng.random(), 4), "SA_score": round(rng.uniform(1, 6), 3)}}
                    for smiles in own + popular
                ]  # fmt: skip
                store.record_molecules(run_id, "batch-0", 100, molecules)
        if start % 1000 == 0:
            console.print(f"  {start + len(unit):,} runs recorded", style="dim")
    seconds = time.perf_counter() - started
    with store.get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE)"))
        rows = connection.execute(text("SELECT count(*) FROM run_scaffolds")).scalar_one()
        distinct = connection.execute(text("SELECT count(*) FROM scaffolds WHERE smiles <> ''")).scalar_one()
    console.print(f"loaded {len(run_ids):,} runs, {rows:,} run scaffolds, {distinct:,} distinct in {seconds:.0f} s")
    return run_ids, pool


def queries(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    url = normalize_url(args.database_url)
    if args.reuse_database:
        store.configure(url)
        run_ids, pool = load_scaffolds(args, console, resume=True)
    else:
        recreate_database(url)
        store.upgrade_schema(store.configure(url))
        run_ids, pool = load_scaffolds(args, console)
    rng = random.Random(7)
    with store.get_engine().connect() as connection:
        rows = connection.execute(text("SELECT count(*) FROM run_scaffolds")).scalar_one()
        typical = connection.execute(
            text("SELECT smiles FROM scaffolds WHERE runs BETWEEN 2 AND 5 ORDER BY smiles LIMIT 200")
        ).scalars().all()
    lookups = psycopg.connect(libpq(url), autocommit=True)

    def primary_key_lookup() -> Any:
        run_id = rng.choice(run_ids)
        return lookups.execute(
            "SELECT * FROM run_scaffolds WHERE run_id = %s AND scaffold = %s", (run_id, rng.choice(pool))
        ).fetchone()

    started = time.perf_counter()
    store.find_runs_with_scaffold("c1ccccc1", substructure=True)
    first_search = time.perf_counter() - started
    patterns = iter(PATTERNS * (args.repeat + 10))
    calls = {
        "primary-key lookup (baseline)": primary_key_lookup,
        "get_run_scaffolds": lambda: store.get_run_scaffolds(rng.choice(run_ids)),
        "get_run_scaffolds, best_reward": lambda: store.get_run_scaffolds(rng.choice(run_ids), "best_reward"),
        "query_scaffolds, top 50": lambda: store.query_scaffolds(),
        "query_scaffolds, top 50 by best reward": lambda: store.query_scaffolds(order_by="best_reward"),
        "query_scaffolds, filter gradient_method=mgda": lambda: store.query_scaffolds({"gradient_method": "mgda"}),
        "scaffold_diversity": lambda: store.scaffold_diversity(),
        # The Pareto and compare pages' scaffold view: a front's runs in one query, against a
        # call per run, and a front as large as six objectives make at this size.
        "top_scaffolds_of_runs, 25 runs, top 3": lambda: store.top_scaffolds_of_runs(
            rng.sample(run_ids, 25), 3
        ),
        "get_run_scaffolds of 25 runs, one call each": lambda: [
            store.get_run_scaffolds(run_id, limit=3) for run_id in rng.sample(run_ids, 25)
        ],
        "top_scaffolds_of_runs, 1,000 runs, top 3": lambda: store.top_scaffolds_of_runs(
            rng.sample(run_ids, 1000), 3
        ),
        "find_runs_with_scaffold, exact": lambda: store.find_runs_with_scaffold(rng.choice(typical)),
        "find_runs_with_scaffold, substructure": lambda: store.find_runs_with_scaffold(
            next(patterns), substructure=True
        ),
    }
    timings = {}
    for name, call in calls.items():
        console.print(f"timing {name}...", style="dim")
        timings[name] = time_call(call, args.repeat)
    matches = {
        pattern: len(store.find_runs_with_scaffold(pattern, substructure=True, limit=None)) for pattern in PATTERNS
    }
    return {
        "runs": len(run_ids),
        "run_scaffolds": rows,
        "distinct_scaffolds": len(pool),
        "repeat": args.repeat,
        "library_first_build_s": first_search,
        "pattern_matches": matches,
        "timings": timings,
    }


def report(results: dict[str, Any], console: Console) -> None:
    if "throughput" in results:
        table = Table(title="molecules applied end to end (HTTP acknowledged -> rows committed), one worker")
        for heading in ("molecules", "distinct", "bare RDKit /s (before, after)", "end to end /s", "ratio", "target"):
            table.add_column(heading, justify="right")
        for name, row in results["throughput"].items():
            before, after = row["bare_rdkit_per_s"]
            table.add_row(
                f"{name}: {row['molecules']:,}",
                f"{row['distinct_smiles']:,}",
                f"{before:,.0f}, {after:,.0f}",
                f"{row['molecules_per_s']:,.0f}",
                f"{row['ratio']:.2f}",
                f">= {TARGET_RATIO:.2f}: {'met' if row['ratio'] >= TARGET_RATIO else 'MISSED'}",
            )
        console.print(table)
    if "queries" in results:
        found = results["queries"]
        table = Table(
            title=f"{found['runs']:,} runs, {found['distinct_scaffolds']:,} distinct scaffolds, "
            f"{found['run_scaffolds']:,} run scaffolds ({found['repeat']} repetitions)"
        )
        for heading in ("query", "median ms", "p95 ms", "× PK lookup", "rows", "target"):
            table.add_column(heading, justify="left" if heading == "query" else "right")
        baseline = found["timings"]["primary-key lookup (baseline)"]["median_ms"]
        for name, timing in found["timings"].items():
            target = TARGETS_MS.get(name)
            verdict = "" if target is None else f"< {target} ms: {'met' if timing['median_ms'] < target else 'MISSED'}"
            table.add_row(
                name,
                f"{timing['median_ms']:.2f}",
                f"{timing['p95_ms']:.2f}",
                f"{timing['median_ms'] / baseline:.1f}",
                "" if timing["rows"] is None else str(timing["rows"]),
                verdict,
            )
        console.print(table)
        console.print(f"substructure library built on first search in {found['library_first_build_s']:.1f} s")
        console.print(f"scaffolds matching each pattern: {found['pattern_matches']}", markup=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL database to DROP and recreate")
    parser.add_argument("--batches", type=int, default=40, help="run.molecules batches sent (default 40)")
    parser.add_argument("--batch-size", type=int, default=1000, help="molecules per batch (default 1000)")
    parser.add_argument("--runs", type=int, default=10_000, help="runs for the queries (default 10000)")
    parser.add_argument("--scaffolds", type=int, default=100_000, help="distinct scaffolds (default 100000)")
    parser.add_argument("--popular", type=int, default=20, help="popular scaffolds drawn per run (default 20)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per query (default 30)")
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help="time the queries on the database a previous run loaded (finishing its load if it was cut short)",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON on stdout")
    args = parser.parse_args(argv)
    args.database_url = normalize_url(args.database_url)
    console = Console(stderr=args.json)
    if not console.is_terminal:
        console.width = 160
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="training-db-bench-") as scratch:
        if not args.skip_throughput:
            results["throughput"] = throughput(args, Path(scratch), console)
    if not args.skip_queries:
        results["queries"] = queries(args, console)
    report(results, console)
    if args.json:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
