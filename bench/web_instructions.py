"""Instructions the web app executes per request, the ingester's against the baseline's, counted by callgrind.

    .venv/bin/python bench/web_instructions.py [--requests N] [--database-url URL]

A shared machine's noise moves bench/ingest.py's rates (bench/RESULTS.md); instruction counts do not
move. Each app (the ingester's, as ingest/wsgi.py builds it, and bench/baseline_app.py) answers
N and N/5 signed pipeline events, called in-process through WSGI under valgrind, and the
difference of the two totals divided by the requests between them is its cost per request:
start-up cancels out. gunicorn, the network and PostgreSQL are not counted; the database calls'
client side is. Needs valgrind (apt-get install -y valgrind).

valgrind's CPU has no SHA extensions: the ingester's HMAC check counts far more instructions
here than the CPU's SHA-NI takes time (bench/RESULTS.md, "Figures from the code").
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    BASELINE_TABLE,
    BIN,
    PATH,
    SECRET,
    Events,
    callgrind_instructions,
    libpq,
    recreate_database,
    with_driver,
    write_requests,
)
from testkit.factory import generate_runs  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench_web"


def serve(app_name: str, requests_file: Path, count: int) -> None:
    """Answer the first ``count`` requests of ``requests_file`` with ``app_name``'s app (under valgrind)."""
    if app_name == "ingester":
        from ingest.wsgi import app
    else:
        from bench.baseline_app import app
    statuses = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        statuses.append(status)

    with requests_file.open("rb") as requests:
        for _ in range(count):
            webhook_id, timestamp, signature, length = requests.readline().split()
            body = requests.read(int(length))
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": PATH,
                "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "80",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr,
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_WEBHOOK_ID": webhook_id.decode(),
                "HTTP_WEBHOOK_TIMESTAMP": timestamp.decode(),
                "HTTP_WEBHOOK_SIGNATURE": signature.decode(),
            }
            b"".join(app(environ, start_response))
    refused = [status for status in statuses if not status.startswith("202")]
    if refused:
        sys.exit(f"{app_name} refused {len(refused)} of {count} requests, first: {refused[0]}")


def instructions(app_name: str, requests_file: Path, count: int, env: dict[str, str]) -> int:
    """Count the instructions of a process that answers ``count`` requests."""
    arguments = [
        __file__,
        "--serve",
        app_name,
        "--requests-file",
        str(requests_file),
        "--requests",
        str(count),
    ]
    return callgrind_instructions(arguments, f"the {app_name}", env)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per app (default 1000)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="database to DROP and recreate")
    parser.add_argument("--serve", choices=["ingester", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--requests-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.requests_file, args.requests)
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench/web_instructions.py needs valgrind: apt-get install -y valgrind")

    url = with_driver(args.database_url, "postgresql+psycopg")
    baseline_url = with_driver(url, "postgresql", f"{make_url(url).database}_baseline")
    recreate_database(url)
    recreate_database(baseline_url)
    env = {**os.environ, "DATABASE_URL": url, "PIPELINE_WEBHOOK_SECRET": SECRET}
    env["BASELINE_DATABASE_URL"] = libpq(baseline_url)
    subprocess.run([str(BIN / "training-db"), "migrate"], env=env, check=True, capture_output=True)
    with psycopg.connect(libpq(baseline_url), autocommit=True) as connection:
        connection.execute(BASELINE_TABLE)

    console = Console()
    fewer = max(args.requests // 5, 1)
    costs = {}
    with tempfile.TemporaryDirectory(prefix="bench-web-") as scratch:
        events = Events(generate_runs(200, seed=0))
        for app_name in ("baseline", "ingester"):
            # Fresh webhook-ids for each process: a second delivery of an id is a duplicate.
            totals = []
            for count in (fewer, args.requests):
                requests_file = Path(scratch) / f"{app_name}-{count}.bin"
                write_requests(requests_file, events.take(count, f"{app_name}{count}"))
                console.print(f"{app_name}: {count} requests under callgrind...")
                totals.append(instructions(app_name, requests_file, count, env))
            costs[app_name] = (totals[1] - totals[0]) / (args.requests - fewer)

    table = Table(title="Instructions per request, in-process (callgrind)")
    table.add_column("app")
    table.add_column("instructions", justify="right")
    table.add_column("ratio", justify="right")
    for app_name, cost in costs.items():
        table.add_row(app_name, f"{cost:,.0f}", f"{cost / costs['baseline']:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
