"""Benchmark the read API through the real Flask app, on a database of realistic runs.

    .venv/bin/python bench/api.py [--runs N] [--database-url URL] [--repeat K] [--reuse] [--json]

The database at URL (default ``training_db_bench_api``, apart from bench/query.py's) is dropped,
recreated, migrated and loaded with N generated runs, as bench/query.py does; with --reuse a
database that already holds N runs is kept. Each request goes through the app's test client
(routing, authentication, the store, serialisation: everything but the socket) and is timed K
times after a warm-up. The same run times the bare driver's primary-key lookup and
``GET /api/runs/<id>`` as baselines, and the issue's MLflow figures are divided by ours. On
PostgreSQL it also times the floor of each whole-run answer: the bare driver fetching the matching
runs' stored documents as text, which no server can undercut.

With --cpu (PostgreSQL) each request is then made K times more with parallel workers off, and
the CPU they cost is read from /proc: this process's, and that of every PostgreSQL backend of
the database. On a shared machine CPU moves less with the load than the clock does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import store  # noqa: E402
from bench.query import load, raw_baselines, recreate_database, time_call, vacuum_analyze  # noqa: E402
from ingest import create_app  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from store import normalize_url, read_transaction  # noqa: E402
from store.models import TrainingRun  # noqa: E402
from testkit.factory import generate_runs  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench_api"
TOKEN = "bench-token"
QUERY_1 = "gradient_method = 'mgda' and batch_size = 64 and status = 'completed'"
QUERY_2 = "objective.COMT_activity.raw_mean > 0.8 and objective.DRD5_activity.raw_mean > 0.7"
# name -> (path and query, target median in ms or None, MLflow 3.17's time in ms for the same question)
REQUESTS: dict[str, tuple[str, float | None, float | None]] = {
    "/api/runs first page with total": ("/api/runs?limit=50", 100, None),
    "/api/runs filtered on a JSON path and an objective": (
        "/api/runs?limit=50&filter=config.training.gradient_accumulation_steps > 4"
        " and objective.DRD5_activity.raw_mean > 0.7",
        150,
        None,
    ),
    "/api/compare with quartiles (methods on DRD5)": ("/api/compare?objective=DRD5_activity", 50, 25_800),
    "/api/pareto, 3 objectives, all runs": ("/api/pareto?objectives=COMT_activity,DRD5_activity,QED", 300, None),
    "/api/stats crash rate by method (query 4)": ("/api/stats?by=gradient_method", 84.2, 84_200),
    "/api/runs jsonl, query 1 whole runs": (f"/api/runs?format=jsonl&filter={QUERY_1}", 120, 2_378),
    "/api/runs jsonl, query 1 run_id,status,batch_size": (
        f"/api/runs?format=jsonl&fields=run_id,status,batch_size&filter={QUERY_1}",
        23.78,
        2_378,
    ),
    "/api/runs jsonl, query 2 whole runs": (f"/api/runs?format=jsonl&filter={QUERY_2}", 35.05, 701),
}


# The least any server can do for a whole-run answer: the bare driver fetching the matching
# runs' two stored documents as text (what writing them out costs PostgreSQL), nothing else.
DOCUMENTS_AS_TEXT = "SELECT r.config_json::text, r.final_metrics_json::text FROM training_runs r"
FLOORS = {
    "floor: query 1's documents as text (bare driver)": DOCUMENTS_AS_TEXT
    + " WHERE r.gradient_method = 'mgda' AND r.batch_size = 64 AND r.status = 'completed'",
    "floor: query 2's documents as text (bare driver)": DOCUMENTS_AS_TEXT
    + " JOIN run_objectives a ON a.run_id = r.run_id AND a.objective_name = 'COMT_activity'"
    " AND a.raw_mean > 0.8"
    " JOIN run_objectives b ON b.run_id = r.run_id AND b.objective_name = 'DRD5_activity'"
    " AND b.raw_mean > 0.7",
}


def floors(url: str) -> dict[str, Any]:
    """The whole-run floors (PostgreSQL): each fetches every matching run's documents as text."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = psycopg.connect(conninfo, autocommit=True)
    return {name: lambda sql=sql: connection.execute(sql).fetchall() for name, sql in FLOORS.items()}


def count_runs() -> int:
    with read_transaction() as session:
        return session.scalar(select(func.count()).select_from(TrainingRun)) or 0


def without_parallel_workers(engine: Engine) -> None:
    """Have every connection of ``engine`` from now on run its queries in its own backend only."""

    def serial(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("SET max_parallel_workers_per_gather = 0")
        dbapi_connection.commit()

    event.listen(engine, "connect", serial)
    engine.dispose()


def backends_cpu_seconds(monitor: Any, database: str, seen: dict[int, float]) -> float:
    """CPU seconds spent so far by every backend of ``database`` but ``monitor``'s, from /proc.

    ``seen`` keeps each backend's last reading, so one that has exited still counts.
    """
    tick = os.sysconf("SC_CLK_TCK")
    query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    for (pid,) in monitor.execute(query, (database,)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        seen[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return sum(seen.values())


def cpu_per_call(call: Any, repeat: int, monitor: Any, database: str) -> dict[str, float]:
    """Milliseconds of this process's and of the database's backends' CPU per call."""
    call()
    seen: dict[int, float] = {}
    backends_before, client_before = backends_cpu_seconds(monitor, database, seen), time.process_time()
    for _ in range(repeat):
        call()
    backends = backends_cpu_seconds(monitor, database, seen) - backends_before
    client = time.process_time() - client_before
    return {"postgresql_cpu_ms": backends * 1000 / repeat, "client_cpu_ms": client * 1000 / repeat}


def run_ids_in_store(limit: int) -> list[str]:
    with read_transaction() as session:
        return list(session.scalars(select(TrainingRun.run_id).limit(limit)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs to generate (default 100000)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="database to DROP, recreate and fill")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per endpoint (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated runs and sampled ids")
    parser.add_argument("--reuse", action="store_true", help="keep a database that already holds --runs runs")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON on stdout")
    parser.add_argument(
        "--cpu", action="store_true", help="also measure CPU per request, parallel workers off (PostgreSQL)"
    )
    args = parser.parse_args(argv)
    console = Console(stderr=args.json)
    if not console.is_terminal:
        console.width = 160

    url = normalize_url(args.database_url)
    engine = None
    if args.reuse:
        try:
            engine = store.configure(url)
            if not store.schema_is_current() or count_runs() != args.runs:
                engine = None
        except store.DatabaseUnavailable:
            engine = None
    if engine is None:
        recreate_database(url)
        engine = store.configure(url)
        store.upgrade_schema(engine)
        load(generate_runs(args.runs, seed=args.seed), args.runs, console)
        vacuum_analyze(engine.dialect.name)
    backend = engine.dialect.name

    rng = random.Random(args.seed)
    run_ids = run_ids_in_store(10_000)
    app = create_app(Settings(database_url=url, read_api_token=TOKEN))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def request(path: str) -> Any:
        response = client.get(path, headers=headers)
        response.get_data()  # a stream is timed to its last line
        if response.status_code != 200:
            raise SystemExit(f"{path}: HTTP {response.status_code} {response.get_data(as_text=True)[:300]}")
        return response

    def answer_size(path: str) -> str:
        response = request(path)
        if response.mimetype == "application/x-ndjson":
            lines = response.get_data().count(b"\n")
            return f"{lines:,} lines"
        body = response.get_json()
        for key in ("total", "considered"):
            if key in body:
                return f"{key} {body[key]:,}"
        return f"{len(body.get('groups', []))} groups"

    pk = raw_baselines(url, run_ids, rng)["primary-key lookup"]
    results: dict[str, Any] = {
        "backend": backend,
        "runs": count_runs(),
        "repeat": args.repeat,
        "baselines": {
            "primary-key lookup (bare driver)": time_call(pk, args.repeat),
            "GET /api/runs/<id>": time_call(lambda: request(f"/api/runs/{rng.choice(run_ids)}"), args.repeat),
            **(
                {name: time_call(call, args.repeat) for name, call in floors(url).items()}
                if backend == "postgresql"
                else {}
            ),
        },
        "requests": {},
    }
    for name, (path, target, mlflow_ms) in REQUESTS.items():
        console.print(f"timing {name}...", style="dim")
        timing = time_call(lambda path=path: request(path), args.repeat)
        timing.update(path=path, target_ms=target, mlflow_ms=mlflow_ms, answer=answer_size(path))
        results["requests"][name] = timing
    report(results, console)
    if args.cpu and backend == "postgresql":
        serving = store.get_engine()  # the app's, which create_app configured anew
        without_parallel_workers(serving)
        database = serving.url.database or ""
        monitor = psycopg.connect(serving.url.set(drivername="postgresql").render_as_string(False), autocommit=True)
        with monitor:
            for name, (path, _target, _mlflow) in REQUESTS.items():
                console.print(f"measuring the CPU of {name}...", style="dim")
                results["requests"][name].update(
                    cpu_per_call(lambda path=path: request(path), args.repeat, monitor, database)
                )
        report_cpu(results, console)
    if args.json:
        print(json.dumps(results, indent=2))


def report(results: dict[str, Any], console: Console) -> None:
    baseline = results["baselines"]["primary-key lookup (bare driver)"]["median_ms"]
    table = Table(title=f"{results['runs']:,} runs on {results['backend']} ({results['repeat']} requests each)")
    for heading in ("request", "median ms", "p95 ms", "× PK lookup", "answer", "target", "met", "MLflow ÷ ours"):
        table.add_column(heading, justify="left" if heading in ("request", "answer", "met") else "right")
    rows = [*results["baselines"].items(), *results["requests"].items()]
    for name, timing in rows:
        target = timing.get("target_ms")
        mlflow = timing.get("mlflow_ms")
        table.add_row(
            name,
            f"{timing['median_ms']:.2f}",
            f"{timing['p95_ms']:.2f}",
            f"{timing['median_ms'] / baseline:.1f}",
            timing.get("answer", ""),
            "" if target is None else f"< {target:g} ms",
            "" if target is None else ("yes" if timing["median_ms"] < target else "NO"),
            "" if mlflow is None else f"{mlflow / timing['median_ms']:,.0f}x",
        )
    console.print(table)


def report_cpu(results: dict[str, Any], console: Console) -> None:
    table = Table(title=f"CPU per request, parallel workers off ({results['repeat']} requests each)")
    for heading in ("request", "PostgreSQL CPU ms", "client CPU ms"):
        table.add_column(heading, justify="left" if heading == "request" else "right")
    for name, timing in results["requests"].items():
        table.add_row(name, f"{timing['postgresql_cpu_ms']:.1f}", f"{timing['client_cpu_ms']:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
