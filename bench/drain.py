"""Worker benchmark: the CPU one event worker and PostgreSQL spend per event, in-process.

Stores ``--events`` signed run.launched / run.finished deliveries as pending inbox events, then
drains them with one ``Worker`` in this process and reports the worker's CPU (process_time)
and every PostgreSQL process's CPU (/proc) per event. The baseline, in the same run: the least
a worker can do with the same events, reading each batch of bodies from a one-table database
and writing them into another table in one transaction per batch, no parsing, no processing.

    .venv/bin/python bench/drain.py                 # 4,000 events, launch and finish adjacent
    .venv/bin/python bench/drain.py --apart         # every launch first, then every finish
    .venv/bin/python bench/drain.py --batch 10      # smaller batches, as a worker that keeps up takes
    .venv/bin/python bench/drain.py --instructions  # instructions per event under callgrind (valgrind)
    .venv/bin/python bench/drain.py --molecules 40  # and run.molecules batches of 1,000, cached and not

With --molecules N the same worker, after the ordinary events, drains run.molecules batches of
``--molecule-size`` molecules under the runs it just wrote, as bench/ingest.py's
``--molecules-every`` mixes them in: first 20 distinct batches (testkit/factory.py's
``molecule_batches``, as bench/ingest.py makes them) to fill the worker's SMILES cache, then N
batches cycling through them under other runs, every SMILES served from the cache; then
``--distinct-batches`` batches in which no SMILES repeats, none of them cached. Both CPUs are
counted per batch: the worker's (process_time) and that of the PostgreSQL backends connected to
the benchmark's database (/proc), for the ordinary events too, so that a batch is compared with
50 ordinary events on one footing; ``--profile FILE`` keeps a cProfile of the cached batches.

With --apart each finish finds its run already written by an earlier batch, as in training,
where a run finishes hours after it launched. With --instructions both drains run under
callgrind instead, whose counts the machine's noise does not move (about a minute per drainer).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import (  # noqa: E402
    BIN,
    Events,
    Inbox,
    callgrind_instructions,
    libpq,
    postgres_pids,
    recreate_database,
    tree_cpu_seconds,
    with_driver,
)
from testkit.factory import generate_runs, molecule_batches  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench_drain"
Event = tuple[str, str, str, bytes]


def cpu_per_event(work, events: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Run ``work``; return its own and PostgreSQL's CPU milliseconds per event."""
    postgres, own = tree_cpu_seconds(postgres_pids()), time.process_time()
    work()
    own, postgres = time.process_time() - own, tree_cpu_seconds(postgres_pids()) - postgres
    return own / events * 1e3, postgres / events * 1e3


def store_for_worker(url: str, events: list[Event]) -> None:
    """A fresh, migrated database holding ``events`` as pending deliveries."""
    recreate_database(url)
    subprocess.run(
        [str(BIN / "training-db"), "migrate"],
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    inbox = Inbox(url)
    inbox.preload(iter(events))
    inbox.close()


def worker_draining(url: str, batch: int) -> tuple[Callable[[], int], Callable[[], None]]:
    """A Worker on ``url``: one batch to warm it up, and the rest of the drain."""
    os.environ["DATABASE_URL"] = url
    import store
    from ingest.settings import Settings
    from ingest.worker import Worker

    settings = Settings(worker_batch_size=batch)
    store.configure(settings.database_url)
    worker = Worker(settings)

    def rest() -> None:
        while worker.run_once():
            pass

    def warm_up() -> int:
        claimed = worker.run_once()
        # As Worker.run does before its first claim.
        gc.freeze()
        return claimed

    return warm_up, rest


def drain(url: str, events: list[Event], batch: int) -> tuple[float, float]:
    """Drain ``events`` with one Worker after a warm-up batch."""
    store_for_worker(url, events)
    warm_up, rest = worker_draining(url, batch)
    result = cpu_per_event(rest, len(events) - warm_up())
    inbox = Inbox(url)
    left = inbox.unfinished()
    inbox.close()
    if left:
        sys.exit(f"{left} events were not processed")
    return result


# As bench/ingest.py's --molecule-batches: the distinct batches sent in turn.
MOLECULE_TEMPLATES = 20
# A molecule batch is compared with this many ordinary events, as bench/ingest.py --molecules-every 50.
EVENTS_PER_BATCH = 50


def backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to ``url``'s database.

    Read from /proc/PID/schedstat, in nanoseconds: /proc/PID/stat counts in ticks of 10 ms,
    as much as a cached batch costs PostgreSQL.
    """
    with psycopg.connect(with_driver(url, "postgresql", "postgres"), autocommit=True) as admin:
        pids = [
            pid
            for (pid,) in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (make_url(url).database,)
            )
        ]
    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
        except (FileNotFoundError, ProcessLookupError):
            continue
    return seconds


def cpu_per_unit(url: str, work: Callable[[], object], units: int) -> tuple[float, float]:
    """Run ``work``; return its own and its database's backends' CPU milliseconds per unit."""
    backends, own = backend_cpu(url), time.process_time()
    work()
    own = time.process_time() - own
    after = backend_cpu(url)
    postgres = sum(seconds - backends.get(pid, 0.0) for pid, seconds in after.items())
    return own / units * 1e3, postgres / units * 1e3


def molecule_events(batches: list[dict[str, Any]], run_ids: list[str], tag: str) -> list[Event]:
    """One run.molecules delivery per batch, each under its own run, as the web process stores it."""
    events = []
    for index, (batch, run_id) in enumerate(zip(batches, run_ids, strict=True)):
        data = {**batch, "run_id": run_id, "batch_id": f"{tag}-{index}"}
        body = {"type": "run.molecules", "timestamp": "2026-12-07T03:00:00Z", "data": data}
        events.append((f"msg_{tag}_{index}", "run.molecules", run_id, json.dumps(body).encode()))
    return events


def molecules(
    url: str, events: list[Event], batch: int, cached: int, distinct: int, size: int, profile: str | None
) -> dict[str, tuple[float, float]]:
    """Worker and backend CPU ms per ordinary event, per cached molecule batch, per distinct batch."""
    from bench.scaffolds import batches_of

    templates = [
        next(molecule_batches(f"bench-molecules-{index}", 1, size=size)) for index in range(MOLECULE_TEMPLATES)
    ]
    distinct_batches = batches_of(distinct, size, distinct=True) if distinct else []
    run_ids = list(dict.fromkeys(run_id for _, _, run_id, _ in events))
    if len(run_ids) < MOLECULE_TEMPLATES + cached + distinct:
        sys.exit(f"--events {len(events)} holds too few runs for the molecule batches")
    store_for_worker(url, events)
    warm_up, rest = worker_draining(url, batch)
    results = {"ordinary event": cpu_per_unit(url, rest, len(events) - warm_up())}

    def pending(batches: list[dict[str, Any]], runs: list[str], tag: str) -> None:
        inbox = Inbox(url)
        inbox.preload(iter(molecule_events(batches, runs, tag)))
        inbox.close()

    # The first pass fills the worker's SMILES cache and is not counted.
    pending(templates, run_ids[:MOLECULE_TEMPLATES], "warm")
    rest()
    run_ids = run_ids[MOLECULE_TEMPLATES:]
    pending([templates[index % len(templates)] for index in range(cached)], run_ids[:cached], "cached")
    run_ids = run_ids[cached:]
    if profile:
        profiler = cProfile.Profile(time.process_time)
        results["cached batch"] = cpu_per_unit(url, lambda: profiler.runcall(rest), cached)
        profiler.dump_stats(profile)
    else:
        results["cached batch"] = cpu_per_unit(url, rest, cached)
    if distinct_batches:
        pending(distinct_batches, run_ids[: len(distinct_batches)], "distinct")
        results["distinct batch"] = cpu_per_unit(url, rest, len(distinct_batches))
    inbox = Inbox(url)
    left, statuses = inbox.unfinished(), inbox.statuses()
    inbox.close()
    if left or set(statuses) - {"done"}:
        sys.exit(f"not every event was done: {statuses}")
    return results


def store_for_baseline(url: str, events: list[Event]) -> None:
    """A fresh database whose one table holds the events' bodies."""
    recreate_database(url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE pending (id bigserial PRIMARY KEY, body bytea NOT NULL)")
        connection.execute("CREATE TABLE done (id bigint PRIMARY KEY, body bytea NOT NULL)")
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO pending (body) VALUES (%s)", [(body,) for *_, body in events])


def baseline_draining(url: str, batch: int) -> None:
    """Move the bodies from one table to another, a batch per transaction."""
    with psycopg.connect(url) as connection:
        while True:
            with connection.transaction():
                rows = connection.execute(
                    "DELETE FROM pending WHERE id IN (SELECT id FROM pending ORDER BY id LIMIT %s)"
                    " RETURNING id, body",
                    (batch,),
                ).fetchall()
                if not rows:
                    return
                connection.cursor().executemany("INSERT INTO done (id, body) VALUES (%s, %s)", rows)


def baseline(url: str, events: list[Event], batch: int) -> tuple[float, float]:
    store_for_baseline(url, events)
    return cpu_per_event(lambda: baseline_draining(url, batch), len(events))


def instructions(drainer: str, url: str, events: list[Event], batch: int) -> float:
    """Instructions per event of a process that drains ``events``, counted by callgrind.

    Two processes drain all of them and a fifth of them; the difference of their totals
    divided by the events between them leaves start-up out.
    """
    totals = []
    for some in (events[: len(events) // 5], events):
        (store_for_worker if drainer == "worker" else store_for_baseline)(url, some)
        arguments = [__file__, "--drain", drainer, "--batch", str(batch), "--database-url", url]
        totals.append(callgrind_instructions(arguments, f"the {drainer}"))
    return (totals[1] - totals[0]) / (len(events) - len(events) // 5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="events to drain (default 4000)")
    parser.add_argument("--apart", action="store_true", help="every launch first, then every finish")
    parser.add_argument(
        "--batch", type=int, default=100, help="events per batch, as WORKER_BATCH_SIZE (default 100)"
    )
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per event under callgrind instead"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated runs")
    parser.add_argument(
        "--molecules", type=int, default=0, metavar="N", help="then N cached run.molecules batches (default 0)"
    )
    parser.add_argument("--molecule-size", type=int, default=1000, help="molecules per batch (default 1000)")
    parser.add_argument(
        "--distinct-batches", type=int, default=5, help="with --molecules: batches of distinct SMILES (default 5)"
    )
    parser.add_argument("--profile", metavar="FILE", help="with --molecules: cProfile the cached batches into FILE")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="database to DROP and recreate")
    parser.add_argument("--drain", choices=["worker", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    baseline_url = with_driver(
        args.database_url, "postgresql", f"{make_url(args.database_url).database}_baseline"
    )
    if args.drain == "worker":
        warm_up, rest = worker_draining(args.database_url, args.batch)
        warm_up()
        rest()
        return
    if args.drain == "baseline":
        baseline_draining(libpq(args.database_url), args.batch)
        return

    events = list(Events(list(generate_runs(1000, args.seed))).take(args.events, "drain"))
    if args.apart:
        events = [e for e in events if e[1] == "run.launched"] + [e for e in events if e[1] != "run.launched"]
    console = Console(width=110)
    if args.molecules:
        measured = molecules(
            args.database_url,
            events,
            args.batch,
            args.molecules,
            args.distinct_batches,
            args.molecule_size,
            args.profile,
        )
        ordinary = sum(measured["ordinary event"])
        table = Table(
            title=f"CPU ms, one worker, batches of {args.batch}; PostgreSQL: the database's backends"
        )
        for column in ("", "worker", "PostgreSQL", "all", "x event", f"x {EVENTS_PER_BATCH} events"):
            table.add_column(column, justify="right")
        for name, (own, postgres) in measured.items():
            total = own + postgres
            table.add_row(
                f"{name} ({args.molecule_size:,} molecules)" if "batch" in name else name,
                f"{own:.3f}",
                f"{postgres:.3f}",
                f"{total:.3f}",
                f"{total / ordinary:.1f}",
                f"{total / ordinary / EVENTS_PER_BATCH:.2f}",
            )
        console.print(table)
        return
    if args.instructions:
        if shutil.which("valgrind") is None:
            sys.exit("--instructions needs valgrind: apt-get install -y valgrind")
        counts = {
            "baseline": instructions("baseline", baseline_url, events, args.batch),
            "training-db worker": instructions("worker", args.database_url, events, args.batch),
        }
        table = Table(
            title=f"Instructions per event, {len(events):,} events, batches of {args.batch} (callgrind)"
        )
        for column in ("", "instructions", "ratio"):
            table.add_column(column, justify="right")
        for name, count in counts.items():
            table.add_row(name, f"{count:,.0f}", f"{count / counts['baseline']:.1f}")
        console.print(table)
        return

    base = baseline(baseline_url, events, args.batch)
    worker = drain(args.database_url, events, args.batch)
    table = Table(title=f"CPU ms per event, {len(events):,} events, one worker, batches of {args.batch}")
    for column in ("", "worker", "PostgreSQL", "all", "ratio"):
        table.add_column(column, justify="right")
    for name, (own, postgres) in (("baseline", base), ("training-db worker", worker)):
        total = own + postgres
        table.add_row(name, f"{own:.3f}", f"{postgres:.3f}", f"{total:.3f}", f"{total / sum(base):.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
