"""Inbox archiving benchmark: what the inbox holds per run before and after archiving, and what archiving costs.

Stores ``--runs`` runs' signed run.launched and run.finished deliveries as the web process does,
drains them with one ``Worker``, then archives every one of them to a folder with the worker's
``Archiver``, as ``training-db inbox archive --older-than 0`` does. Reports the inbox's size
(table, indexes and TOAST) per run before, after archiving and VACUUM, and after VACUUM FULL;
the archive's size per run; and the archiver's wall time and CPU (its own and every PostgreSQL
process's) per 1,000 deliveries. The baseline, in the same run: the least an archiver can do,
moving the same rows from a copy of the inbox, a batch per transaction (DELETE ... RETURNING,
the bodies gzip-compressed to a file, fsync), no JSON, no lock, no pending file.

    .venv/bin/python bench/inbox_archive.py                # 2,000 runs (4,000 deliveries)
    .venv/bin/python bench/inbox_archive.py --runs 10000
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drain import store_for_worker, worker_draining  # noqa: E402
from bench.ingest import Events, libpq, postgres_pids, tree_cpu_seconds  # noqa: E402
from testkit.factory import generate_runs  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench_archive"


def size(connection: psycopg.Connection, relation: str) -> int:
    row = connection.execute("SELECT pg_total_relation_size(%s::regclass)", (relation,)).fetchone()
    assert row is not None
    return int(row[0])


def measured(work: Callable[[], int]) -> tuple[int, float, float, float]:
    """Run ``work``; return what it returned, its wall seconds, its own and PostgreSQL's CPU seconds."""
    postgres, own, wall = tree_cpu_seconds(postgres_pids()), time.process_time(), time.monotonic()
    done = work()
    wall, own = time.monotonic() - wall, time.process_time() - own
    return done, wall, own, tree_cpu_seconds(postgres_pids()) - postgres


def baseline(connection: psycopg.Connection, folder: Path, batch: int) -> int:
    """Move every row of inbox_copy to gzip files, a batch per transaction; return how many."""
    moved = 0
    while True:
        with connection.transaction():
            rows = connection.execute(
                "DELETE FROM inbox_copy WHERE id IN (SELECT id FROM inbox_copy ORDER BY id LIMIT %s)"
                " RETURNING id, body",
                (batch,),
            ).fetchall()
            if not rows:
                return moved
            path = folder / f"baseline-{rows[0][0]}.gz"
            with path.open("wb") as file:
                file.write(gzip.compress(b"\n".join(bytes(body) for _, body in rows), compresslevel=6))
                file.flush()
                os.fsync(file.fileno())
            moved += len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs, two deliveries each (default 2000)")
    parser.add_argument("--batch", type=int, default=1000, help="deliveries per archive file (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated runs")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="database to DROP and recreate")
    args = parser.parse_args(argv)

    events = list(Events(list(generate_runs(args.runs, args.seed))).take(2 * args.runs, "archive"))
    store_for_worker(args.database_url, events)
    warm_up, rest = worker_draining(args.database_url, 100)
    warm_up()
    rest()

    import store
    from ingest.archive import Archived, Archiver

    connection = psycopg.connect(libpq(args.database_url), autocommit=True)
    connection.execute("VACUUM ANALYZE")
    sizes = {"inbox, processed": size(connection, "inbox_events")}
    runs_bytes = size(connection, "training_runs") + size(connection, "run_objectives")
    connection.execute("CREATE TABLE inbox_copy AS SELECT * FROM inbox_events")
    connection.execute("ALTER TABLE inbox_copy ADD PRIMARY KEY (id)")
    connection.execute("VACUUM ANALYZE inbox_copy")

    with tempfile.TemporaryDirectory(prefix="inbox-archive-") as folder:
        base = measured(lambda: baseline(connection, Path(folder), args.batch))
        archiver = Archiver(str(Path(folder) / "archive"), args.batch)
        # Connections and imports first: nothing is received before the epoch.
        archiver.archive(datetime(1970, 1, 1, tzinfo=UTC))
        archived = Archived()

        def archive() -> int:
            archived.__dict__.update(archiver.archive(store.utcnow()).__dict__)
            return archived.deliveries

        timing = measured(archive)
    connection.execute("VACUUM ANALYZE inbox_events")
    sizes["inbox, archived, after VACUUM"] = size(connection, "inbox_events")
    connection.execute("VACUUM FULL inbox_events")
    sizes["inbox, archived, after VACUUM FULL"] = size(connection, "inbox_events")
    connection.close()

    console = Console(width=110)
    table = Table(title=f"Inbox bytes per run, {args.runs:,} runs ({2 * args.runs:,} deliveries)")
    table.add_column("")
    table.add_column("bytes per run", justify="right")
    for name, total in sizes.items():
        table.add_row(name, f"{total / args.runs:,.0f}")
    table.add_row("runs and objectives (for comparison)", f"{runs_bytes / args.runs:,.0f}")
    table.add_row("the archive, gzip-compressed JSON lines", f"{archived.compressed_bytes / args.runs:,.0f}")
    console.print(table)

    table = Table(title=f"Archiving, per 1,000 deliveries, files of {args.batch:,}")
    for column in ("", "deliveries", "wall ms", "own CPU ms", "PostgreSQL CPU ms", "ratio (CPU)"):
        table.add_column(column, justify="right")
    for name, (count, wall, own, postgres) in (("baseline", base), ("training-db archiver", timing)):
        per = 1000 / count * 1e3
        ratio = (own + postgres) / (base[2] + base[3])
        cells = (
            f"{count:,}",
            f"{wall * per:,.0f}",
            f"{own * per:,.0f}",
            f"{postgres * per:,.0f}",
            f"{ratio:.2f}",
        )
        table.add_row(name, *cells)
    console.print(table)


if __name__ == "__main__":
    main()
