"""Worker benchmark: the CPU one event worker and PostgreSQL spend per event, in-process.

Stores ``--events`` signed run.launched / run.finished deliveries as pending inbox events, then
drains them with one ``Worker`` in this process and reports the worker's CPU (process_time)
and every PostgreSQL process's CPU (/proc) per event. The baseline, in the same run: the least
a worker can do with the same events, reading each batch of bodies from a one-table database
and writing them into another table in one transaction per batch, no parsing, no processing.

    .venv/bin/python bench/drain.py                 # 4,000 events, launch and finish adjacent
    .venv/bin/python bench/drain.py --apart         # every launch first, then every finish

With --apart each finish finds its run already written by an earlier batch, as in training,
where a run finishes hours after it launched.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import (  # noqa: E402
    BIN,
    Events,
    Inbox,
    libpq,
    postgres_pids,
    recreate_database,
    tree_cpu_seconds,
    with_driver,
)
from tests.factory import generate_runs  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench_drain"
BATCH = 100


def cpu_per_event(work, events: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Run ``work``; return its own and PostgreSQL's CPU milliseconds per event."""
    postgres, own = tree_cpu_seconds(postgres_pids()), time.process_time()
    work()
    own, postgres = time.process_time() - own, tree_cpu_seconds(postgres_pids()) - postgres
    return own / events * 1e3, postgres / events * 1e3


def drain(url: str, events: list[tuple[str, str, str, bytes]]) -> tuple[float, float]:
    """Drain ``events`` with one Worker after a warm-up batch."""
    recreate_database(url)
    subprocess.run(
        [str(BIN / "training-db"), "migrate"],
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    inbox = Inbox(url)
    inbox.preload(iter(events))
    os.environ["DATABASE_URL"] = url
    from ingest.settings import Settings
    from ingest.worker import Worker

    worker = Worker(Settings(worker_batch_size=BATCH))
    warm = worker.run_once()

    def work() -> None:
        while worker.run_once():
            pass

    result = cpu_per_event(work, len(events) - warm)
    left = inbox.unfinished()
    inbox.close()
    if left:
        sys.exit(f"{left} events were not processed")
    return result


def baseline(url: str, events: list[tuple[str, str, str, bytes]]) -> tuple[float, float]:
    """Copy the bodies from one table to another, a batch per transaction."""
    url = libpq(url)
    recreate_database(url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE pending (id bigserial PRIMARY KEY, body bytea NOT NULL)")
        connection.execute("CREATE TABLE done (id bigint PRIMARY KEY, body bytea NOT NULL)")
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO pending (body) VALUES (%s)", [(body,) for *_, body in events])

    def work() -> None:
        with psycopg.connect(url) as connection:
            while True:
                with connection.transaction():
                    rows = connection.execute(
                        "DELETE FROM pending WHERE id IN (SELECT id FROM pending ORDER BY id LIMIT %s)"
                        " RETURNING id, body",
                        (BATCH,),
                    ).fetchall()
                    if not rows:
                        return
                    connection.cursor().executemany("INSERT INTO done (id, body) VALUES (%s, %s)", rows)

    return cpu_per_event(work, len(events))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="events to drain (default 4000)")
    parser.add_argument("--apart", action="store_true", help="every launch first, then every finish")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated runs")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="database to DROP and recreate")
    args = parser.parse_args(argv)

    events = list(Events(list(generate_runs(1000, args.seed))).take(args.events, "drain"))
    if args.apart:
        events = [e for e in events if e[1] == "run.launched"] + [e for e in events if e[1] != "run.launched"]
    base = baseline(with_driver(args.database_url, "postgresql", "training_db_bench_drain_baseline"), events)
    worker = drain(args.database_url, events)

    table = Table(title=f"CPU ms per event, {len(events):,} events, one worker, batches of {BATCH}")
    for column in ("", "worker", "PostgreSQL", "all", "ratio"):
        table.add_column(column, justify="right")
    for name, (own, postgres) in (("baseline", base), ("training-db worker", worker)):
        total = own + postgres
        table.add_row(name, f"{own:.3f}", f"{postgres:.3f}", f"{total:.3f}", f"{total / sum(base):.1f}")
    Console(width=110).print(table)


if __name__ == "__main__":
    main()
