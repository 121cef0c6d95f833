"""Benchmark the ingester against the least a webhook receiver can do on the same machine.

    .venv/bin/python bench/ingest.py [--runs N] [--runs-file FILE.jsonl]
        [--concurrency 8,16,32] [--duration S] [--workers K] [--memory-events N]
        [--progress-share 0.8] [--molecules-every 50] [--open-pages 50 [--page-path PATH]]
        [--floor] [--beside-default] [--database-url URL] [--json]

Two servers run on PostgreSQL under gunicorn with the Procfile's command and settings
(``gunicorn --config ingest/gunicorn_conf.py``): the ingester, and a baseline
(bench/baseline_app.py) whose one endpoint inserts the raw body into a one-table
database. wrk posts both the same signed run.launched and run.finished events, built
from generated runs, at each concurrency. Then, with K event workers (``training-db
worker``) running: the end-to-end rate and the workers' catch-up time at the best
concurrency (the median of --repeat loads, fresh workers and empty tables each, each compared
with the baseline loaded just before and just after it), the delay from acknowledgement to a
queryable run at half the peak rate, and the workers' memory while they drain a backlog of N
events.

The mix of events is launch and finish by default. ``--progress-share`` puts ``run.progress``
events between them (that share of all events, and their points' freshness is measured too),
``--molecules-every N`` one signed ``run.molecules`` batch after every N other events, and
``--open-pages N`` keeps N run pages open on the ingester during its loads, each following a run
that trains on through them: holding its history stream open, as the run page does, or with
``--page-path`` polling another path every second. Every mix is held to the same targets. ``--floor`` follows each end-to-end
load with one whose workers (bench/floor_worker.py) claim the events and mark them done without
applying them: what the web, the inbox and the claims leave of the baseline's rate, against which
the cost of applying the events is read. ``--beside-default`` pairs each end-to-end load of a mix of
events (``--progress-share``, ``--molecules-every``) with one of the default mix, in alternating
order, and reports what the mix's events cost against the default's measured in the same rounds.

Shared machines are noisy: throughput targets are ratios to the baseline measured in
the same run, and the freshness load is derived from the peak measured in it; every load
starts right after a CHECKPOINT, so that none of them pays for the WAL of the others. Each load
also reports the CPU it cost per request or event, read from /proc: the server's gunicorn
processes, the event workers, and every PostgreSQL process on the machine.
The databases at URL and URL_baseline are dropped and recreated.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from itertools import cycle, islice
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import psycopg
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.client import sign  # noqa: E402
from testkit.factory import generate_runs, molecule_batches, read_runs_file, runs_file  # noqa: E402
from testkit.processes import free_port, running  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench_ingest"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
READ_TOKEN = "bench-read-token"
BIN = Path(sys.executable).parent
LUA = Path(__file__).with_name("ingest.lua")
FLOOR_WORKER = Path(__file__).with_name("floor_worker.py")
PATH = "/webhooks/pipeline"
RUN_ID_MARK = "@RUN_ID@"
UNFINISHED = ("pending", "processing", "failed")
# A run that may still report: an open page follows only these (web/live.py).
LIVE_STATUSES = ("launched", "running")
MEDIANS = ("accepted_per_s", "p50_ms", "p99_ms", "cpu_web_ms", "cpu_postgres_ms")
BASELINE_TABLE = "CREATE TABLE deliveries (id bigserial PRIMARY KEY, body bytea NOT NULL)"
TARGETS = {
    "ack_ratio": 0.80,
    "e2e_ratio": 0.50,
    "ack_p99_ms": 50,
    "fresh_p50_ms": 100,
    "fresh_p99_ms": 1000,
    "memory_events": 100_000,
    "memory_growth": 0.10,
}


# --- the events: signed run.launched and run.finished built from run records ------------


class Events:
    """Endless pipeline events from run records, each run under a new id on every pass.

    By default each run is launched and finished. ``progress_share`` adds ``run.progress`` events
    between the two, that share of all events; ``molecules_every`` N adds, after every N other
    events, one ``run.molecules`` batch for the run of the event before it, taken in turn from
    ``molecule_batches`` (each batch's molecules, under that run and a batch id of its own).
    """

    def __init__(
        self,
        records: list[dict[str, Any]],
        progress_share: float = 0.0,
        molecules_every: int = 0,
        molecule_batches: list[dict[str, Any]] | None = None,
    ) -> None:
        timestamp = datetime.now(UTC).isoformat()
        # Per run, k progress events among k + 2: k / (k + 2) = share.
        progress = round(2 * progress_share / (1 - progress_share)) if progress_share else 0
        # Serialized once with a placeholder id: dumping 3-8 KB per request would take
        # longer than sending it.
        self.templates: list[tuple[str, str, str]] = []
        for record in records:
            self.templates.append(
                (
                    "run.launched",
                    record["run_id"],
                    json.dumps(event("run.launched", RUN_ID_MARK, record, timestamp)),
                )
            )
            for step in range(1, progress + 1):
                body = progress_event(RUN_ID_MARK, record, step, progress, timestamp)
                self.templates.append(("run.progress", record["run_id"], json.dumps(body)))
            self.templates.append(
                (
                    "run.finished",
                    record["run_id"],
                    json.dumps(event("run.finished", RUN_ID_MARK, record, timestamp)),
                )
            )
        if molecules_every:
            batches = cycle(molecule_batches or [])
            mixed = []
            for index, template in enumerate(self.templates):
                mixed.append(template)
                if (index + 1) % molecules_every == 0:
                    batch = next(batches)
                    data = {**batch, "run_id": RUN_ID_MARK, "batch_id": f"batch-{index}"}
                    body = {"type": "run.molecules", "timestamp": timestamp, "data": data}
                    mixed.append(("run.molecules", template[1], json.dumps(body)))
            self.templates = mixed

    def take(self, count: int, tag: str) -> Iterator[tuple[str, str, str, bytes]]:
        """Yield ``count`` events as (webhook-id, kind, run id, body); ``tag`` keeps ids unique."""
        per_pass = len(self.templates)
        for index, (kind, run_id, template) in enumerate(islice(cycle(self.templates), count)):
            new_id = f"{run_id}.{tag}.{index // per_pass}"
            body = template.replace(f'"{RUN_ID_MARK}"', json.dumps(new_id), 1)
            yield f"msg_{tag}_{index}", kind, new_id, body.encode()

    def mean_size(self) -> float:
        return statistics.fmean(len(template) for _, _, template in self.templates)

    def kinds(self) -> dict[str, int]:
        """How many events of each kind one pass holds."""
        counts: dict[str, int] = defaultdict(int)
        for kind, _, _ in self.templates:
            counts[kind] += 1
        return dict(counts)


def event(kind: str, run_id: str, record: dict[str, Any], timestamp: str) -> dict[str, Any]:
    """Build the event the training pipeline sends for ``record``."""
    if kind == "run.launched":
        data = {
            "run_id": run_id,
            "config": record["config"],
            "wandb_run_id": record["wandb_run_id"],
            "wandb_entity": record["entity"],
            "wandb_project": record["project"],
            "chain_of_custody_id": record["chain_of_custody_id"],
        }
    else:
        data = {"run_id": run_id, "summary": record["summary"]}
    return {"type": kind, "timestamp": timestamp, "data": data}


def progress_event(
    run_id: str, record: dict[str, Any], step: int, steps: int, timestamp: str
) -> dict[str, Any]:
    """Build the ``run.progress`` event a run sends at ``step`` of ``steps``: its scalar metrics then."""
    done = step / steps
    # The numbers a run logs, as its final summary has them, moving towards those values.
    metrics = {
        name: round(value * (0.5 + 0.5 * done), 6)
        for name, value in (record.get("summary") or {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool) and not name.startswith("_")
    }
    data = {"run_id": run_id, "step": step * 100, "metrics": metrics}
    return {"type": "run.progress", "timestamp": timestamp, "data": data}


def write_requests(path: Path, events: Iterator[tuple[str, str, str, bytes]]) -> None:
    """Sign each event now and write it in bench/ingest.lua's format."""
    with path.open("wb") as out:
        for webhook_id, _, _, body in events:
            headers = sign(SECRET, webhook_id, body.decode())
            out.write(
                f"{webhook_id} {headers['webhook-timestamp']} {headers['webhook-signature']} {len(body)}\n".encode()
            )
            out.write(body)


# --- processes and databases ----------------------------------------------------------------


def with_driver(url: str, driver: str, database: str | None = None) -> str:
    """Return ``url`` for ``driver`` (and ``database``), its password kept."""
    parsed = make_url(url).set(drivername=driver)
    return parsed.set(database=database or parsed.database).render_as_string(hide_password=False)


def libpq(url: str) -> str:
    return with_driver(url, "postgresql")


def callgrind_instructions(arguments: list[str], what: str, env: dict[str, str] | None = None) -> int:
    """Run ``python arguments`` under callgrind; return the instructions it executed."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *arguments]
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    match = re.search(r"Collected : (\d+)", finished.stderr)
    if finished.returncode or match is None:
        sys.exit(f"valgrind failed for the {what}:\n{finished.stderr[-2000:]}")
    return int(match.group(1))


def recreate_database(url: str) -> None:
    """Drop and create the database at ``url``, empty."""
    name = make_url(url).database
    assert name
    try:
        with psycopg.connect(with_driver(url, "postgresql", "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        sys.exit(f"cannot recreate {make_url(url).render_as_string()}: {str(error).strip().splitlines()[0]}")


def wait_for_http(port: int, timeout: float = 60.0) -> None:
    """Wait until a gunicorn worker answers on ``port`` (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        finally:
            connection.close()


def wait_for_log(log: Path, line: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count(line) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{log} never showed {count} x {line!r}")
        time.sleep(0.1)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU time used so far by processes and the children they reaped (gunicorn's restarted workers)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            # The process ended between listing and reading.
            continue
        # utime, stime, cutime, cstime
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its live descendants."""
    tree = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            tree += process_tree(int(child))
    return tree


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on the machine: the server is shared, its CPU is counted whole."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


class CpuMeter:
    """CPU milliseconds that groups of processes spend per unit of work, over a block."""

    def __init__(self, groups: dict[str, Any]) -> None:
        # Each group is a function returning its pids, called at both ends of the block.
        self.groups = groups

    def __enter__(self) -> CpuMeter:
        self.start = {name: tree_cpu_seconds(pids()) for name, pids in self.groups.items()}
        return self

    def __exit__(self, *_: object) -> None:
        self.used = {name: tree_cpu_seconds(pids()) - self.start[name] for name, pids in self.groups.items()}

    def per(self, units: float) -> dict[str, float]:
        return {name: 1e3 * seconds / max(units, 1) for name, seconds in self.used.items()}


class Inbox:
    """Read the ingester's inbox and runs with the bare driver."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(libpq(url), autocommit=True)

    def close(self) -> None:
        self.connection.close()

    def unfinished(self) -> int:
        row = self.connection.execute(
            "SELECT count(*) FROM inbox_events WHERE status = ANY(%s)", (list(UNFINISHED),)
        ).fetchone()
        assert row is not None
        return int(row[0])

    def statuses(self) -> dict[str, int]:
        rows = self.connection.execute("SELECT status, count(*) FROM inbox_events GROUP BY status")
        return {status: int(count) for status, count in rows}

    def wait_drained(self, timeout: float) -> float:
        """Wait until no event waits for a worker; return the monotonic time it happened."""
        deadline = time.monotonic() + timeout
        while self.unfinished():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not catch up within {timeout:.0f} s")
            time.sleep(0.02)
        return time.monotonic()

    def truncate(self) -> None:
        # CASCADE: the runs' molecule tables refer to training_runs.
        self.connection.execute(
            "TRUNCATE inbox_events, run_objectives, training_runs, s3_objects RESTART IDENTITY CASCADE"
        )

    def count(self, table: str) -> int:
        row = self.connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        assert row is not None
        return int(row[0])

    def keeps_commit_times(self) -> bool:
        row = self.connection.execute("SHOW track_commit_timestamp").fetchone()
        return row is not None and row[0] == "on"

    def committed_at(self, run_ids: list[str]) -> dict[str, float]:
        """When the transaction that last wrote each run committed (track_commit_timestamp)."""
        rows = self.connection.execute(
            "SELECT run_id, pg_xact_commit_timestamp(xmin) FROM training_runs WHERE run_id = ANY(%s)",
            (run_ids,),
        )
        return {run_id: committed.timestamp() for run_id, committed in rows}

    def preload(self, events: Iterator[tuple[str, str, str, bytes]]) -> None:
        """Store events as pending deliveries, as the web process would, in one COPY."""
        now = datetime.now(UTC)
        with self.connection.cursor() as cursor:
            columns = (
                "source, kind, dedupe_key, received_at, body, headers, status, attempts, next_attempt_at"
            )
            with cursor.copy(f"COPY inbox_events ({columns}) FROM STDIN") as copy:
                for webhook_id, kind, _, body in events:
                    headers = Jsonb({"content-type": "application/json", "webhook-id": webhook_id})
                    copy.write_row(
                        ("pipeline", kind, f"webhook:{webhook_id}", now, body, headers, "pending", 0, now)
                    )


# --- load: wrk, all out for throughput, paced for freshness -----------------------------------


def wrk(
    port: int, concurrency: int, duration: float, requests_file: Path, rate: float | None = None
) -> dict[str, Any]:
    """Run wrk against ``port`` and return its counts and latencies.

    With ``rate``, wrk sends each request of ``requests_file`` once, at ``rate`` per second, and
    the result also maps each acknowledged event's id to the wall-clock time its answer arrived.
    """
    # One wrk thread drives 32 connections at thousands of requests per second and
    # leaves the second core to the servers.
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--timeout", "10s"]
    command += ["-s", str(LUA), f"http://127.0.0.1:{port}{PATH}", "--", str(requests_file)]
    if rate is not None:
        command.append(f"{rate:g}")
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode:
        raise RuntimeError(f"wrk failed: {finished.stderr or finished.stdout}")
    lines = finished.stdout.splitlines()
    line = next(line for line in lines if line.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    seconds = raw["duration_us"] / 1e6
    statuses = {int(status): count for status, count in raw["statuses"].items()}
    # 202 only: a 200 is a duplicate, which wrk sends when it runs out of distinct requests.
    accepted = statuses.get(202, 0)
    acked = {
        int(event_id): float(at) for _, event_id, at in (x.split() for x in lines if x.startswith("ACKED "))
    }
    return {
        "concurrency": concurrency,
        "requests": raw["requests"],
        "accepted_per_s": accepted / seconds,
        "p50_ms": raw["p50_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "errors": raw["requests"] - accepted + raw["socket_errors"] + raw["timeouts"],
        "statuses": statuses,
        "resent": raw["wrapped"],
        # time.monotonic() reads the same clock as the script's CLOCK_MONOTONIC.
        "first_sent": raw["first_sent"] if raw["first_sent"] >= 0 else None,
        **({"acked": acked} if rate is not None else {}),
    }


# What a freshness load waits for: a run completed (its run.finished), or a run's latest
# step at or past a step (its run.progress).
Awaited = tuple[str, int | None]


class Queryable:
    """Watch runs until a query finds each awaited state; note when it first did.

    Every 10 ms one query asks for the runs still awaited: those whose event has had its slot
    in the paced load's schedule. A state is noted at the start of the query that found it,
    when its snapshot was taken: at most one interval after it became queryable, never before.
    A stamp the worker writes would come too early: a batch commits after all of its events are
    applied.
    """

    INTERVAL = 0.01

    def __init__(self, url: str, schedule: list[tuple[float, Awaited]]) -> None:
        """``schedule``: each awaited state, by the second its event is due after the load starts."""
        self.connection = psycopg.connect(libpq(url), autocommit=True)
        self.schedule = sorted(schedule, key=lambda slot: slot[0])
        self.expected = {awaited for _, awaited in schedule}
        self.found: dict[Awaited, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._watch)
        self.thread.start()

    def _watch(self) -> None:
        due, awaited = 0, set()
        while not self.stop.is_set():
            started = time.time()
            while due < len(self.schedule) and self.schedule[due][0] <= time.monotonic() - self.started:
                awaited.add(self.schedule[due][1])
                due += 1
            with self.lock:
                awaited &= self.expected
                if self.expected <= self.found.keys():
                    return
            if awaited:
                rows = self.connection.execute(
                    "SELECT run_id, status, last_step FROM training_runs WHERE run_id = ANY(%s)",
                    (list({run_id for run_id, _ in awaited}),),
                ).fetchall()
                states = {run_id: (status, last_step) for run_id, status, last_step in rows}
                for key in list(awaited):
                    run_id, step = key
                    if run_id not in states:
                        continue
                    status, last_step = states[run_id]
                    reached = (
                        status == "completed" if step is None else last_step is not None and last_step >= step
                    )
                    if reached:
                        awaited.discard(key)
                        self.found[key] = started
            time.sleep(max(0.0, started + self.INTERVAL - time.time()))

    def wait(self, acknowledged: list[Awaited], timeout: float) -> dict[Awaited, float]:
        """Wait until each acknowledged state is found; return when each was."""
        with self.lock:
            self.expected = set(acknowledged)
        self.thread.join(timeout)
        self.stop.set()
        self.thread.join()
        self.connection.close()
        missing = self.expected - self.found.keys()
        if missing:
            raise RuntimeError(
                f"{len(missing)} acknowledged events were not queryable within {timeout:.0f} s"
            )
        return self.found


def page_request(template: str, run_id: str, last_step: int | None) -> str:
    """The request an open page makes: ``template`` filled in, without the parameters a page
    leaves out until it knows a step (as web/static/curves.js does)."""
    path, _, query = template.format(
        run_id=quote(run_id, safe=""), last_step="" if last_step is None else last_step
    ).partition("?")
    given = [(name, value) for name, value in parse_qsl(query, keep_blank_values=True) if value]
    return f"{path}?{urlencode(given)}" if given else path


class Pages:
    """Open run pages, each following its run while a load runs.

    ``path`` names the request, with ``{run_id}`` and ``{last_step}`` (the latest step an answer
    gave, so that a page asks only for what is new). A path to a run's history stream is held
    open, as web/static/curves.js holds it, and its events read; any other is polled once a
    second. A 404 is a page whose run the workers have not stored yet, not an error: a stream
    is then asked for again a second later.
    """

    def __init__(self, port: int, run_ids: list[str], path: str, token: str, interval: float = 1.0) -> None:
        self.port, self.run_ids, self.path, self.interval = port, run_ids, path, interval
        self.headers = {"Authorization": f"Bearer {token}"}
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = defaultdict(int)
        self.failures = 0
        self.events = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.open: list[http.client.HTTPConnection] = []
        self.streams = "/stream" in path.partition("?")[0]
        # Released once by each stream at its first event.
        self.followed = threading.Semaphore(0)
        follow = self._stream if self.streams else self._poll
        self.threads = [
            threading.Thread(target=follow, args=(run_id, index * interval / len(run_ids)))
            for index, run_id in enumerate(run_ids)
        ]

    def __enter__(self) -> Pages:
        """Open the pages; streams are open, each past its first event, when this returns.

        What a measurement inside measures is pages held open, not pages being opened: fifty
        openings in every five-second load would be every page reloaded every five seconds, where
        a run page's stream lasts five minutes (web/live.py).
        """
        for thread in self.threads:
            thread.start()
        if self.streams:
            deadline = time.monotonic() + 10
            for _ in self.run_ids:
                if not self.followed.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    break
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        with self.lock:
            # A stream's reader waits for the server's next event: closing its socket wakes it.
            for connection in self.open:
                if connection.sock is not None:
                    connection.sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join()

    def _poll(self, run_id: str, offset: float) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        last_step: int | None = None
        due = time.monotonic() + offset
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            due += self.interval
            path = page_request(self.path, run_id, last_step)
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=self.headers)
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                with self.lock:
                    self.failures += 1
                continue
            elapsed = time.perf_counter() - started
            if response.status == 200 and "{last_step}" in self.path:
                last_step = json.loads(body).get("last_step", last_step)
            with self.lock:
                self.latencies.append(elapsed * 1e3)
                self.statuses[response.status] += 1
        connection.close()

    def _stream(self, run_id: str, offset: float) -> None:
        """Hold the run's stream open, reading its events, as a browser's EventSource does."""
        last_event_id: str | None = None
        ended = followed = False
        due = time.monotonic() + offset
        # The page closes its stream once the run has ended, and opens no other.
        while not ended and not self.stop.wait(max(0.0, due - time.monotonic())):
            due = time.monotonic() + self.interval
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            with self.lock:
                self.open.append(connection)
            headers = {**self.headers, "Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            started = time.perf_counter()
            try:
                connection.request("GET", page_request(self.path, run_id, None), headers=headers)
                response = connection.getresponse()
                with self.lock:
                    self.statuses[response.status] += 1
                if response.status != 200:
                    response.read()
                    continue
                first = True
                while chunk := response.read1(65536):
                    if first:
                        first = False
                        with self.lock:
                            self.latencies.append((time.perf_counter() - started) * 1e3)
                    for line in chunk.split(b"\n"):
                        if line.startswith(b"id: "):
                            last_event_id = line[4:].decode()
                        elif line.startswith(b"data: "):
                            with self.lock:
                                self.events += 1
                            if not followed:
                                followed = True
                                self.followed.release()
                            ended = json.loads(line[6:])["status"] not in LIVE_STATUSES
            except (OSError, http.client.HTTPException):
                if not self.stop.is_set():
                    with self.lock:
                        self.failures += 1
            finally:
                connection.close()
                with self.lock:
                    self.open.remove(connection)

    def summary(self) -> dict[str, Any]:
        answered = sum(self.statuses.values())
        return {
            "pages": len(self.run_ids),
            "page_requests": answered + self.failures,
            "page_events": self.events,
            "page_statuses": dict(self.statuses),
            "page_errors": self.failures + answered - self.statuses[200] - self.statuses[404],
            "page_p50_ms": percentile(self.latencies, 0.50) if self.latencies else None,
            "page_p99_ms": percentile(self.latencies, 0.99) if self.latencies else None,
        }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine repeated measurements: the median of each rate and latency, the sum of errors."""
    combined = {name: statistics.median(run[name] for run in runs) for name in MEDIANS}
    # An open page's failed reads are errors of the load it was open for.
    sums = {
        name: sum(run.get(name, 0) for run in runs)
        for name in ("requests", "errors", "resent", "page_errors")
    }
    return {"concurrency": runs[0]["concurrency"], "runs": len(runs), **combined, **sums}


def median_end_to_end(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median end-to-end rate, with every run's rate and ratio to the mean of the
    baseline loads just before and after it, their median ratio, and the errors of all."""
    median = sorted(runs, key=lambda run: run["processed_per_s"])[len(runs) // 2]
    not_done: dict[str, int] = defaultdict(int)
    for run in runs:
        for status, count in run["not_done"].items():
            not_done[status] += count
    ratios = [run["processed_per_s"] / statistics.fmean(run["baselines_per_s"]) for run in runs]
    return {
        **median,
        "rates": [run["processed_per_s"] for run in runs],
        "baselines": [run["baselines_per_s"] for run in runs],
        "ratios": ratios,
        "ratio": statistics.median(ratios),
        "loads": runs,
        "errors": sum(run["errors"] for run in runs),
        "not_done": dict(not_done),
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the phases ------------------------------------------------------------------------------


class Bench:
    """The servers, workers and databases of one benchmark run."""

    def __init__(self, args: argparse.Namespace, events: Events, scratch: Path, console: Console) -> None:
        self.args, self.events, self.scratch, self.console = args, events, scratch, console
        self.url = with_driver(args.database_url, "postgresql+psycopg")
        self.baseline_url = with_driver(
            self.url, "postgresql+psycopg", f"{make_url(self.url).database}_baseline"
        )
        self.ports = {"baseline": free_port(), "ingester": free_port()}
        self.checkpoint_refused = False
        self.batch = 0
        self.watched = [f"watched-{index}" for index in range(args.open_pages)]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.url,
            "PIPELINE_WEBHOOK_SECRET": SECRET,
            "READ_API_TOKEN": READ_TOKEN,
            **extra,
        }

    def prepare(self) -> None:
        recreate_database(self.url)
        recreate_database(self.baseline_url)
        subprocess.run([str(BIN / "training-db"), "migrate"], env=self.env(), check=True, capture_output=True)
        with psycopg.connect(libpq(self.baseline_url), autocommit=True) as connection:
            connection.execute(BASELINE_TABLE)
        self.inbox = Inbox(self.url)
        self.start_watched_runs()

    def servers(self, stack: ExitStack) -> None:
        """Start both servers with the Procfile's gunicorn command, on loopback."""
        gunicorn = [str(BIN / "gunicorn"), "--config", str(ROOT / "ingest" / "gunicorn_conf.py")]
        commands = {
            "ingester": gunicorn,
            "baseline": [*gunicorn, "bench.baseline_app:app"],
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        for name, command in commands.items():
            env = self.env(HOST="127.0.0.1", PORT=str(self.ports[name]))
            env["BASELINE_DATABASE_URL"] = libpq(self.baseline_url)
            self.processes[name] = stack.enter_context(running(command, env, self.scratch / f"{name}.log"))
        for port in self.ports.values():
            wait_for_http(port)

    def workers(self, stack: ExitStack, floor: bool = False) -> list[subprocess.Popen[bytes]]:
        """Start the event workers as the Procfile's worker line does, or, with ``floor``,
        bench/floor_worker.py's, which claim events and mark them done without applying them."""
        log = self.scratch / f"workers-{self.batch}.log"
        self.batch += 1
        command = [sys.executable, str(FLOOR_WORKER)] if floor else [str(BIN / "training-db"), "worker"]
        started = [
            stack.enter_context(running(command, self.env(), log)) for _ in range(self.args.workers)
        ]
        wait_for_log(log, "worker.started", self.args.workers)
        self.worker_processes = started
        return started

    def reset(self) -> None:
        self.inbox.truncate()
        with psycopg.connect(libpq(self.baseline_url), autocommit=True) as connection:
            connection.execute("TRUNCATE deliveries")
        self.start_watched_runs()

    def requests_file(self, count: int, events: Events | None = None) -> tuple[Path, list[str]]:
        """Write ``count`` fresh events, signed now, for wrk; return the file and their run ids."""
        self.batch += 1
        path = self.scratch / "requests.bin"
        run_ids: list[str] = []

        def noted(events: Iterator[tuple[str, str, str, bytes]]) -> Iterator[tuple[str, str, str, bytes]]:
            for sent in events:
                run_ids.append(sent[2])
                yield sent

        write_requests(path, noted((events or self.events).take(count, f"b{self.batch}")))
        return path, run_ids

    def start_watched_runs(self) -> None:
        """Store the --open-pages runs the pages follow: running, each with a few points of history.

        They train on through every load, as the runs people watch do; the loads' own runs are
        launched and finished within milliseconds, and a page stops following a run once it ends.
        """
        if not self.args.open_pages:
            return
        import store

        store.configure(self.url)
        for run_id in self.watched:
            store.insert_run(run_id, status="running")
            for step in (100, 200, 300):
                store.record_progress(run_id, step, {"train/loss": 1 / step, "train/reward_mean": step / 1000})

    @contextmanager
    def pages(self, server: str) -> Iterator[dict[str, Any]]:
        """Keep --open-pages run pages open on the ingester for the block; then add what they saw."""
        stats: dict[str, Any] = {}
        if server != "ingester" or not self.args.open_pages:
            yield stats
            return
        with Pages(self.ports["ingester"], self.watched, self.args.page_path, READ_TOKEN) as pages:
            yield stats
        stats.update(pages.summary())

    def checkpoint(self) -> None:
        """Start a measurement right after a checkpoint, as every other one starts.

        A checkpoint PostgreSQL requests once a GB of WAL is written would otherwise land in
        whichever measurement crosses that line, and full-page images follow it.
        """
        try:
            with psycopg.connect(libpq(self.url), autocommit=True) as connection:
                connection.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            if not self.checkpoint_refused:
                self.console.print("CHECKPOINT refused (needs superuser or pg_checkpoint): measuring without")
            self.checkpoint_refused = True

    def load(self, server: str, concurrency: int, duration: float, count: int) -> dict[str, Any]:
        """Post at most ``count`` fresh signed events to ``server`` with wrk; add the CPU it took."""
        requests_file, run_ids = self.requests_file(count)
        self.checkpoint()
        with (
            self.pages(server) as pages,
            CpuMeter(
                {"web": lambda: process_tree(self.processes[server].pid), "postgres": postgres_pids}
            ) as cpu,
        ):
            result = wrk(self.ports[server], concurrency, duration, requests_file)
        accepted = result["accepted_per_s"] * duration
        return {**result, **{f"cpu_{name}_ms": ms for name, ms in cpu.per(accepted).items()}, **pages}

    def acknowledgement(self) -> dict[str, list[dict[str, Any]]]:
        """Measure both servers at each concurrency, --repeat times, alternating which goes first."""
        duration = self.args.duration
        counts = {}
        for server in ("baseline", "ingester"):
            self.console.print(f"warming up the {server}...")
            warm = self.load(server, max(self.args.concurrency), 3, 20_000)
            # Enough distinct requests for one measurement at three times the warm-up rate.
            counts[server] = int(warm["accepted_per_s"] * duration * 3) + 2000
        runs: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        for round_ in range(self.args.repeat):
            for index, concurrency in enumerate(self.args.concurrency):
                servers = ("baseline", "ingester") if (round_ + index) % 2 == 0 else ("ingester", "baseline")
                for server in servers:
                    self.reset()
                    self.console.print(
                        f"round {round_ + 1}/{self.args.repeat}, {server}: {concurrency} connections..."
                    )
                    runs[server, concurrency].append(self.load(server, concurrency, duration, counts[server]))
        return {
            server: [median_run(runs[server, concurrency]) for concurrency in self.args.concurrency]
            for server in ("baseline", "ingester")
        }

    def end_to_end(self, concurrency: int, count: int, events: Events | None = None) -> dict[str, Any]:
        """Load the ingester with workers running; time until every event is in the runs."""
        inbox = self.inbox
        self.console.print(f"end to end: {concurrency} connections, {self.args.workers} workers...")
        requests_file, run_ids = self.requests_file(count, events)
        # A cache the resets keep, as a deployed service keeps it (store/analyses.py).
        analyses = inbox.count("molecule_analyses") if self.args.molecules_every else None
        self.checkpoint()
        groups = {
            "web": lambda: process_tree(self.processes["ingester"].pid),
            "workers": lambda: [pid for w in self.worker_processes for pid in process_tree(w.pid)],
            "postgres": postgres_pids,
        }
        # The pages stay open until the workers have caught up: they read while they write.
        with self.pages("ingester") as pages:
            with CpuMeter(groups) as cpu:
                spawned = time.monotonic()
                result = wrk(self.ports["ingester"], concurrency, self.args.duration, requests_file)
                load_ended = time.monotonic()
                drained = inbox.wait_drained(timeout=1800)
        statuses = inbox.statuses()
        done = statuses.get("done", 0)
        # From the first request sent, as the baseline's rate is: wrk spends a few tenths of a
        # second reading its requests file before, which counted here until 2026-12-07.
        started = result["first_sent"] or spawned
        return {
            **result,
            **{f"cpu_{name}_ms": ms for name, ms in cpu.per(done).items()},
            "processed": done,
            "processed_per_s": done / (drained - started),
            "catch_up_s": drained - load_ended,
            "wrk_start_s": started - spawned,
            "not_done": {status: n for status, n in statuses.items() if status != "done"},
            "runs": inbox.count("training_runs"),
            "analyses_at_start": analyses,
            "objectives": inbox.count("run_objectives"),
            **pages,
        }

    def freshness(self, rate: float) -> dict[str, Any]:
        """Send at ``rate`` per second; time from each run.finished's (and run.progress's)
        acknowledgement to its run completed (its step reached)."""
        inbox = self.inbox
        self.console.print(f"freshness: {rate:.0f} events/s for {self.args.duration:g} s...")
        self.batch += 1
        events = list(self.events.take(int(rate * self.args.duration), f"f{self.batch}"))
        requests_file = self.scratch / "paced.bin"
        write_requests(requests_file, iter(events))
        watched: dict[str, Awaited] = {}
        schedule: list[tuple[float, Awaited]] = []
        for index, (webhook_id, kind, run_id, body) in enumerate(events):
            if kind in ("run.finished", "run.progress"):
                step = json.loads(body)["data"]["step"] if kind == "run.progress" else None
                watched[f"webhook:{webhook_id}"] = (run_id, step)
                schedule.append((index / rate, (run_id, step)))
        self.checkpoint()
        # Exact when PostgreSQL keeps commit timestamps; else watched, at a cost in CPU that a
        # load close to saturation feels. A run's commit timestamp is its last write's only, so
        # progress points are always watched.
        exact = inbox.keeps_commit_times() and all(step is None for _, step in watched.values())
        queryable = None if exact else Queryable(self.url, schedule)
        # Connections enough that a slow answer seldom holds up the next request's slot, and half
        # the load's time again for a server that falls behind the schedule (wrk runs all of it).
        with self.pages("ingester") as pages:
            result = wrk(
                self.ports["ingester"], 32, math.ceil(1.5 * self.args.duration) + 1, requests_file, rate
            )
        inbox.wait_drained(timeout=600)
        acked = result.pop("acked")
        keys = dict(
            inbox.connection.execute(
                "SELECT id, dedupe_key FROM inbox_events WHERE id = ANY(%s)", (list(acked),)
            ).fetchall()
        )
        acked_states = {
            watched[keys[event_id]]: at for event_id, at in acked.items() if keys[event_id] in watched
        }
        if queryable is None:
            committed = inbox.committed_at([run_id for run_id, _ in acked_states])
            found = {key: committed[key[0]] for key in acked_states}
        else:
            found = queryable.wait(list(acked_states), timeout=600)
        # A state can be queryable before its acknowledgement reached the client: that counts as 0.
        delays = {key: max(0.0, found[key] - at) * 1e3 for key, at in acked_states.items()}
        finished = [delay for (_, step), delay in delays.items() if step is None]
        progress = [delay for (_, step), delay in delays.items() if step is not None]
        return {
            "rate": rate,
            "sent": result["requests"],
            # Not sent in time counts too.
            "errors": result["errors"] + max(0, len(events) - result["requests"]),
            "ack_p50_ms": result["p50_ms"],
            "ack_p99_ms": result["p99_ms"],
            "fresh_p50_ms": percentile(finished, 0.50),
            "fresh_p99_ms": percentile(finished, 0.99),
            **(
                {"progress_p50_ms": percentile(progress, 0.50), "progress_p99_ms": percentile(progress, 0.99)}
                if progress
                else {}
            ),
            "fresh_method": "commit timestamps"
            if exact
            else f"polled every {Queryable.INTERVAL * 1e3:.0f} ms",
            **pages,
        }

    def memory(self, count: int) -> dict[str, Any]:
        """Drain a backlog of ``count`` events with fresh workers, sampling their memory."""
        self.reset()
        inbox = self.inbox
        self.console.print(f"memory: storing {count:,} pending events...")
        self.batch += 1
        inbox.preload(self.events.take(count, f"m{self.batch}"))
        samples: list[tuple[int, list[float]]] = []
        with ExitStack() as stack:
            workers = self.workers(stack)
            started = time.monotonic()
            self.console.print(f"memory: {self.args.workers} workers draining...")
            while True:
                left = inbox.unfinished()
                samples.append((count - left, [rss_mib(w.pid) for w in workers]))
                if not left:
                    break
                time.sleep(0.5)
            elapsed = time.monotonic() - started
        # Memory after the first tenth of the events, once imports and caches have settled.
        early = next(rss for done, rss in samples if done >= count / 10)
        late = samples[-1][1]
        return {
            "events": count,
            "drain_s": elapsed,
            "processed_per_s": count / elapsed,
            "rss_early_mib": early,
            "rss_end_mib": late,
            "rss_max_mib": [max(rss[i] for _, rss in samples) for i in range(len(workers))],
            "growth": max((end - start) / start for start, end in zip(early, late, strict=True)),
            "not_done": {s: n for s, n in inbox.statuses().items() if s != "done"},
        }


# --- report ----------------------------------------------------------------------------------


def met(ok: bool) -> str:
    return "yes" if ok else "NO"


def report(results: dict[str, Any], console: Console) -> None:
    ack = results["acknowledgement"]
    table = Table(title="Acknowledged requests per second, by concurrency")
    columns = ("connections", "server", "accepted/s", "p50 ms", "p99 ms", "errors", "ratio", "CPU ms")
    for column in columns:
        table.add_column(column, justify="right")
    for base, ours in zip(ack["baseline"], ack["ingester"], strict=True):
        ratio = ours["accepted_per_s"] / base["accepted_per_s"]
        for name, row in (("baseline", base), ("ingester", ours)):
            table.add_row(
                str(row["concurrency"]),
                name,
                f"{row['accepted_per_s']:,.0f}",
                f"{row['p50_ms']:.1f}",
                f"{row['p99_ms']:.1f}",
                str(row["errors"]),
                f"{ratio:.2f}" if name == "ingester" else "",
                f"{row['cpu_web_ms']:.2f}+{row['cpu_postgres_ms']:.2f}",
                end_section=name == "ingester",
            )
    console.print(table)
    console.print("CPU ms: per accepted request, the server's gunicorn processes + every PostgreSQL process")

    best_base = max(ack["baseline"], key=lambda r: r["accepted_per_s"])
    best = max(ack["ingester"], key=lambda r: r["accepted_per_s"])
    e2e, fresh, memory = results["end_to_end"], results["freshness"], results.get("memory")
    sustained = results["freshness_sustained"]
    errors = sum(r["errors"] for r in ack["ingester"]) + e2e["errors"] + fresh["errors"] + sustained["errors"]
    errors += sum(e2e["not_done"].values())
    # The default mix's loads beside the mix's (--beside-default) are the ingester's loads too.
    default = results.get("end_to_end_default")
    if default:
        errors += default["errors"] + sum(default["not_done"].values())
    # The open pages' failed reads, in every load they were open for.
    loads = [*ack["ingester"], *e2e["loads"], *(default["loads"] if default else []), fresh, sustained]
    page_errors = sum(load.get("page_errors", 0) for load in loads)
    errors += page_errors
    targets = Table(title="Targets")
    for column in ("target", "measured", "met"):
        targets.add_column(column)
    ack_ratio = best["accepted_per_s"] / best_base["accepted_per_s"]
    e2e_ratio = e2e["ratio"]
    rows = [
        (
            "acknowledged/s >= 80% of baseline",
            f"{best['accepted_per_s']:,.0f}/s vs {best_base['accepted_per_s']:,.0f}/s = {ack_ratio:.0%}",
            ack_ratio >= TARGETS["ack_ratio"],
        ),
        (
            f"end to end, {results['workers']} workers, >= 50% of baseline",
            f"{e2e_ratio:.0%}, median of "
            + ", ".join(f"{ratio:.0%}" for ratio in sorted(e2e["ratios"]))
            + " of the baseline around each; "
            + f"{e2e['processed_per_s']:,.0f}/s = {e2e['processed_per_s'] / best_base['accepted_per_s']:.0%}"
            + f" of the best above (catch-up {e2e['catch_up_s']:.1f} s; counted from the first request,"
            + f" after wrk's {e2e['wrk_start_s']:.1f} s reading its requests)",
            e2e_ratio >= TARGETS["e2e_ratio"],
        ),
        (
            "p99 acknowledgement < 50 ms at best",
            f"{best['p99_ms']:.1f} ms at {best['concurrency']} connections",
            best["p99_ms"] < TARGETS["ack_p99_ms"],
        ),
        (
            "ack to queryable run p50 < 100 ms",
            f"{fresh['fresh_p50_ms']:.0f} ms at {fresh['rate']:,.0f} events/s",
            fresh["fresh_p50_ms"] < TARGETS["fresh_p50_ms"],
        ),
        (
            "ack to queryable run p99 < 1 s",
            f"{fresh['fresh_p99_ms']:.0f} ms at {fresh['rate']:,.0f} events/s",
            fresh["fresh_p99_ms"] < TARGETS["fresh_p99_ms"],
        ),
        (
            "  same at half the end-to-end rate",
            f"p50 {sustained['fresh_p50_ms']:.0f} ms, p99 {sustained['fresh_p99_ms']:.0f} ms "
            f"at {sustained['rate']:,.0f} events/s",
            sustained["fresh_p50_ms"] < TARGETS["fresh_p50_ms"]
            and sustained["fresh_p99_ms"] < TARGETS["fresh_p99_ms"],
        ),
        ("zero errors", f"{errors} (non-2xx, socket errors, not done, failed page reads)", errors == 0),
    ]
    if "progress_p50_ms" in sustained:
        rows.insert(
            -1,
            (
                "run.progress point queryable p50 < 100 ms at half the end-to-end rate",
                f"p50 {sustained['progress_p50_ms']:.0f} ms, p99 {sustained['progress_p99_ms']:.0f} ms "
                f"at {sustained['rate']:,.0f} events/s (at half the acknowledged peak: p50 "
                f"{fresh['progress_p50_ms']:.0f} ms, p99 {fresh['progress_p99_ms']:.0f} ms)",
                sustained["progress_p50_ms"] < TARGETS["fresh_p50_ms"],
            ),
        )
    if memory:
        rss = ", ".join(
            f"{a:.0f}->{b:.0f} MiB"
            for a, b in zip(memory["rss_early_mib"], memory["rss_end_mib"], strict=True)
        )
        rows.append(
            (
                "worker memory flat over 100,000 events",
                f"{memory['events']:,} events: {rss} ({memory['growth']:+.1%})",
                memory["events"] >= TARGETS["memory_events"] and memory["growth"] < TARGETS["memory_growth"],
            )
        )
    for name, measured, ok in rows:
        targets.add_row(name, measured, met(ok))
    console.print(targets)
    mix = results["mix"]
    console.print("events per pass: " + ", ".join(f"{n:,} {kind}" for kind, n in mix["kinds"].items()))
    if mix["molecules_every"]:
        console.print(
            f"molecules: a batch of {mix['molecules']:,} after every {mix['molecules_every']} other events, "
            f"{mix['molecule_batches']} distinct batches in turn; molecule analyses in the database when "
            "each end-to-end load started, with its ratio: "
            + ", ".join(
                f"{load['analyses_at_start']:,} ({ratio:.0%})"
                for load, ratio in zip(e2e["loads"], e2e["ratios"], strict=True)
            )
        )
    if mix["open_pages"]:
        page_loads = [load for load in loads if "pages" in load]
        streamed = any(load.get("page_events") for load in page_loads)
        held = "held open" if streamed else "polled every second"
        console.print(
            f"open pages: {mix['open_pages']} following running runs, {mix['page_path']} {held}, during the "
            f"ingester's loads; {sum(load['page_requests'] for load in page_loads):,} requests "
            + (f"({sum(load['page_events'] for load in page_loads):,} events) " if streamed else "")
            + f"{page_errors} failed; p99 per load "
            + ", ".join(
                f"{load['page_p99_ms']:.0f}" for load in page_loads if load["page_p99_ms"] is not None
            )
            + " ms"
            + (" (to the first event)" if streamed else "")
        )
    machine = results["machine"]
    console.print(
        f"{machine['cpus']} CPUs ({machine['cpu']}), {machine['postgresql']}, Python {machine['python']}; "
        f"{results['web_workers']} gunicorn workers per server; events of {results['event_bytes']:,.0f} B "
        f"on average; medians of {results['repeat']} measurements of {results['duration']:g} s"
    )
    console.print(
        f"end to end, CPU per processed event: web {e2e['cpu_web_ms']:.2f} ms, event workers "
        f"{e2e['cpu_workers_ms']:.2f} ms, PostgreSQL {e2e['cpu_postgres_ms']:.2f} ms"
    )
    if floor := results.get("end_to_end_floor"):
        console.print(
            f"end to end with workers that apply nothing (--floor): {floor['ratio']:.0%} of the baseline, "
            "median of "
            + ", ".join(f"{ratio:.0%}" for ratio in sorted(floor["ratios"]))
            + f"; CPU per event: web {floor['cpu_web_ms']:.2f} ms, workers {floor['cpu_workers_ms']:.2f} ms, "
            f"PostgreSQL {floor['cpu_postgres_ms']:.2f} ms. Applying the events costs the difference."
        )
    if default:
        # The same round's two loads, each against the baseline loaded around it.
        differences = sorted(
            (mix - plain) * 100 for mix, plain in zip(e2e["ratios"], default["ratios"], strict=True)
        )
        console.print(
            f"the default mix end to end in the same rounds (--beside-default): {default['ratio']:.0%} of the "
            "baseline, median of "
            + ", ".join(f"{ratio:.0%}" for ratio in sorted(default["ratios"]))
            + f"; this mix against it, round by round: {statistics.median(differences):+.1f} points (median of "
            + ", ".join(f"{difference:+.1f}" for difference in differences)
            + f"); CPU per event: web {default['cpu_web_ms']:.2f} ms, workers {default['cpu_workers_ms']:.2f} ms, "
            f"PostgreSQL {default['cpu_postgres_ms']:.2f} ms"
        )
    console.print(
        f"acknowledgement to queryable run: {fresh['fresh_method']}"
        + (
            ""
            if fresh["fresh_method"] == "commit timestamps"
            else " (track_commit_timestamp = on makes it exact)"
        )
    )
    if memory:
        console.print(
            f"memory run: {memory['events']:,} events drained in {memory['drain_s']:.0f} s "
            f"({memory['processed_per_s']:,.0f}/s); not done: {memory['not_done'] or 'none'}"
        )
    resent = sum(r["resent"] for rows in ack.values() for r in rows)
    if resent:
        console.print(f"[red]wrk ran out of distinct requests and resent {resent}: counted as errors[/red]")


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs to generate events from (default 1000)")
    parser.add_argument("--runs-file", type=runs_file, help="build the events from these JSONL records instead")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated runs")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[8, 16, 32],
        help="wrk connections, comma-separated (default 8,16,32)",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="measurements per server and concurrency, and of end to end; medians reported (default 3)",
    )
    parser.add_argument("--workers", type=int, default=2, help="event workers (default 2)")
    parser.add_argument(
        "--memory-events",
        type=int,
        default=100_000,
        help="backlog the workers drain while their memory is sampled; 0 skips it (default 100000)",
    )
    parser.add_argument(
        "--progress-share",
        type=float,
        default=0.0,
        help="share of run.progress events, e.g. 0.8: that many per run between launch and finish (default 0)",
    )
    parser.add_argument(
        "--molecules-every",
        type=int,
        default=0,
        help="one run.molecules batch after every N other events (default 0: none)",
    )
    parser.add_argument("--molecules", type=int, default=1000, help="molecules per batch (default 1000)")
    parser.add_argument(
        "--molecule-batches",
        type=int,
        default=20,
        help="distinct batches generated (RDKit, about a second each), sent in turn (default 20)",
    )
    parser.add_argument(
        "--open-pages",
        type=int,
        default=0,
        help="run pages open on the ingester while it is loaded, each following a running run (default 0)",
    )
    parser.add_argument(
        "--page-path",
        default="/api/runs/{run_id}/history/stream",
        help="what an open page holds open (a history stream, as the run page does) or else polls every "
        "second, with {run_id} and {last_step} (default /api/runs/{run_id}/history/stream)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="after each end-to-end load, one whose workers only mark events done (bench/floor_worker.py)",
    )
    parser.add_argument(
        "--beside-default",
        action="store_true",
        help="pair each end-to-end load of the mix with one of the default mix (launch and finish), "
        "alternating which goes first",
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help="database to DROP and recreate")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON on stdout")
    args = parser.parse_args(argv)
    # With --json, stdout carries only the JSON document.
    console = Console(stderr=args.json, width=110)
    if shutil.which("wrk") is None:
        sys.exit(
            "bench/ingest.py needs wrk: apt-get install -y wrk (Debian, Ubuntu) or brew install wrk (macOS)"
        )

    if not 0 <= args.progress_share < 1:
        parser.error("--progress-share must be at least 0 and below 1")
    if args.beside_default and not (args.progress_share or args.molecules_every):
        parser.error(
            "--beside-default compares a mix of events with the default: add --progress-share or --molecules-every"
        )
    if args.molecules_every < 0 or args.molecules < 1 or args.molecule_batches < 1:
        parser.error("--molecules-every must be 0 or more, --molecules and --molecule-batches 1 or more")
    try:
        records = list(read_runs_file(args.runs_file) if args.runs_file else generate_runs(args.runs, args.seed))
    except ValueError as error:
        parser.error(str(error))
    batches = []
    if args.molecules_every:
        from rdkit import RDLogger

        # The factory's invalid SMILES would each print a line.
        RDLogger.DisableLog("rdApp.*")
        console.print(f"generating {args.molecule_batches} batches of {args.molecules} molecules...")
        batches = [
            next(molecule_batches(f"bench-molecules-{index}", 1, size=args.molecules, seed=args.seed))
            for index in range(args.molecule_batches)
        ]
    events = Events(records, args.progress_share, args.molecules_every, batches)
    default_events = Events(records) if args.beside_default else None
    results: dict[str, Any] = {
        "mix": {
            "kinds": events.kinds(),
            "progress_share": args.progress_share,
            "molecules_every": args.molecules_every,
            "molecules": args.molecules if args.molecules_every else 0,
            "molecule_batches": len(batches),
            "open_pages": args.open_pages,
            "page_path": args.page_path if args.open_pages else None,
        },
        "machine": machine(),
        "runs": len(records),
        "event_bytes": events.mean_size(),
        "duration": args.duration,
        "repeat": args.repeat,
        "workers": args.workers,
        "web_workers": int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) * 2 + 1)),
    }
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch, ExitStack() as stack:
        bench = Bench(args, events, Path(scratch), console)
        bench.prepare()
        stack.callback(bench.inbox.close)
        with psycopg.connect(libpq(bench.url)) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            results["machine"]["postgresql"] = f"PostgreSQL {row[0] if row else '?'}"
        bench.servers(stack)
        results["acknowledgement"] = bench.acknowledgement()
        best = max(results["acknowledgement"]["ingester"], key=lambda r: r["accepted_per_s"])
        best_base = max(results["acknowledgement"]["baseline"], key=lambda r: r["accepted_per_s"])
        bench.reset()
        count = int(best["accepted_per_s"] * args.duration * 3) + 2000
        base_count = int(best_base["accepted_per_s"] * args.duration * 3) + 2000

        def baseline_load() -> float:
            console.print(f"baseline: {best_base['concurrency']} connections...")
            load = bench.load("baseline", best_base["concurrency"], args.duration, base_count)
            return load["accepted_per_s"]

        # The baseline again, at its best concurrency, before and after each end-to-end load: the
        # machine's speed drifts over minutes, and each load is compared with the mean of the
        # two baseline loads around it, which takes out a drift that is steady over the three.
        # With --floor, each end-to-end load is followed by one whose workers apply nothing; with
        # --beside-default, paired with one of the default mix, the two in turn going first.
        kinds = ["end_to_end"]
        if args.floor:
            kinds.append("end_to_end_floor")
        if args.beside_default:
            kinds.append("end_to_end_default")
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        before = baseline_load()
        for round_ in range(args.repeat):
            for kind in kinds[::-1] if args.beside_default and round_ % 2 else kinds:
                # Emptied before the workers start: TRUNCATE would deadlock with their transactions.
                bench.reset()
                with ExitStack() as workers:
                    bench.workers(workers, floor=kind == "end_to_end_floor")
                    loaded = default_events if kind == "end_to_end_default" else events
                    run = bench.end_to_end(best["concurrency"], count, loaded)
                bench.reset()
                after = baseline_load()
                runs[kind].append({**run, "baselines_per_s": [before, after]})
                before = after
        for kind in kinds:
            results[kind] = median_end_to_end(runs[kind])
        with ExitStack() as workers:
            bench.workers(workers)
            # The target's load, half the peak acknowledged rate; and half the rate the workers
            # sustain, which separates their delay from the backlog an excess rate builds.
            results["freshness"] = bench.freshness(best["accepted_per_s"] / 2)
            results["freshness_sustained"] = bench.freshness(results["end_to_end"]["processed_per_s"] / 2)
        if args.memory_events:
            results["memory"] = bench.memory(args.memory_events)
    report(results, console)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
