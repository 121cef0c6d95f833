"""Benchmark the web pages on a database of realistic runs: server-side HTML, then in a real browser.

    .venv/bin/python bench/pages.py [--runs N] [--database-url URL] [--reuse] [--repeat K]
        [--browser] [--json]

The database at URL (its own, so that bench/query.py's can be used at the same time) is
dropped, recreated and loaded with N generated runs, as bench/query.py does; with --reuse a
database that already holds N runs is kept. Each page is then rendered K times in-process
through the Flask test client with a bearer token, after a warm-up: the median is the
server-side time, the page's API calls and the template included. The same run times a raw
primary-key lookup and the test client's round trip of /healthz as baselines, and reports
each page as a multiple of them.

With --browser, gunicorn serves the app on loopback (as the Procfile's web line does) and
headless Chromium (Debian's /usr/bin/chromium) opens each page in a fresh context, five
times: "usable" is the time from navigation until the page's table is on screen, or, for a
chart page, until its chart has been drawn over every run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Python puts bench/ first on the path, where bench/ingest.py would hide the ingest package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != BENCH), str(BENCH)]

from query import load, raw_baselines, recreate_database, vacuum_analyze  # noqa: E402

import store  # noqa: E402
from ingest import create_app  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from store import normalize_url  # noqa: E402
from store.models import TrainingRun  # noqa: E402
from testkit.factory import generate_runs  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/training_db_bench_pages"
TOKEN = "bench-token"
WARM_UP = 3
MS = 1e3
# page -> the target for its server-side median, in milliseconds
TARGETS_MS = {"/ (first page, with the total)": 100, "/runs/<id>": 100}
BROWSER_TARGET_MS = 1000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pages(run_ids: list[str], rng: random.Random) -> dict[str, Callable[[], str]]:
    """Return the pages to time, by name: each call gives the path to fetch."""
    return {
        "/ (first page, with the total)": lambda: "/",
        "/ filtered on a JSON path and an objective": lambda: (
            "/?filter=config.training.gradient_accumulation_steps+%3E+4+and+"
            "objective.DRD5_activity.raw_mean+%3E+0.7&columns=config.training.gradient_accumulation_steps,"
            "objective.DRD5_activity.raw_mean"
        ),
        "/runs/<id>": lambda: f"/runs/{rng.choice(run_ids)}",
        "/compare (DRD5_activity by method)": lambda: "/compare?objective=DRD5_activity",
        "/pareto (3 objectives, HTML only)": lambda: "/pareto?objectives=COMT_activity,DRD5_activity,QED",
        "/stats": lambda: "/stats",
    }


# page -> (path, what shows that it is usable)
BROWSER_PAGES = {
    "/": ("/", "table.runs tbody tr"),
    "/runs/<id>": (None, "#summary-table tr"),
    "/compare": ("/compare?objective=DRD5_activity", "#box-chart[data-drawn='true']"),
    "/pareto (2 objectives)": (
        "/pareto?objectives=COMT_activity,DRD5_activity",
        "#pareto-chart[data-drawn='true']",
    ),
    "/pareto (3 objectives)": (
        "/pareto?objectives=COMT_activity,DRD5_activity,QED",
        "#pareto-chart[data-drawn='true']",
    ),
    "/stats": ("/stats", "#day-chart[data-drawn='true']"),
}


def time_get(client: Any, path: Callable[[], str], repeat: int) -> dict[str, Any]:
    """GET a page ``repeat`` times after a warm-up; return median and p95, failing on any non-200."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(WARM_UP):
        response = client.get(path(), headers=headers)
        if response.status_code != 200:
            raise SystemExit(
                f"{path()} answered {response.status_code}: {response.get_data(as_text=True)[:300]}"
            )
    seconds = []
    size = 0
    for _ in range(repeat):
        target = path()
        started = time.perf_counter()
        response = client.get(target, headers=headers)
        size = len(response.get_data())
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{target} answered {response.status_code}")
    return summarise(seconds) | {"bytes": size}


def summarise(seconds: list[float]) -> dict[str, float]:
    seconds = sorted(seconds)
    return {
        "median_ms": statistics.median(seconds) * MS,
        "p95_ms": seconds[math.ceil(0.95 * len(seconds)) - 1] * MS,
    }


def time_call(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    for _ in range(WARM_UP):
        call()
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return summarise(seconds)


@contextmanager
def served(url: str) -> Iterator[str]:
    """Serve the app with gunicorn on a free loopback port; yield its base URL."""
    from ingest.cli.service import GUNICORN_CONFIG
    from testkit.processes import BIN, WebServer, free_port, running

    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=url,
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        READ_API_TOKEN=TOKEN,
        SECRET_KEY="bench-secret",
        GUNICORN_ACCESS_LOG="/dev/null",
    )
    with tempfile.TemporaryDirectory() as logs:
        command = [str(BIN / "gunicorn"), "--config", str(GUNICORN_CONFIG)]
        with running(command, env, Path(logs) / "gunicorn.log") as process:
            server = WebServer(process, port, 2)
            server.wait_until_up()
            yield server.url


def browser_timings(url: str, run_ids: list[str], rng: random.Random, repeat: int) -> dict[str, Any]:
    """Open each page in headless Chromium ``repeat`` times; return the median time until usable."""
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {}
    with served(url) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{base}/login")
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/")
        for name, (path, ready) in BROWSER_PAGES.items():
            first: list[float] = []
            seconds = []
            for attempt in range(repeat + 1):
                target = path or f"/runs/{rng.choice(run_ids)}"
                started = time.perf_counter()
                page.goto(base + target, wait_until="commit")
                page.locator(ready).first.wait_for(state="attached")
                # The first visit also fills the browser's cache with plotly.js; it is timed apart.
                (seconds if attempt else first).append(time.perf_counter() - started)
            results[name] = summarise(seconds) | {"first_visit_ms": first[0] * MS}
        browser.close()
    return results


def report(results: dict[str, Any], console: Console) -> None:
    baselines = results["baselines"]
    pk = baselines["primary-key lookup"]["median_ms"]
    health = baselines["GET /healthz (test client)"]["median_ms"]
    table = Table(
        title=f"pages at {results['runs']:,} runs on {results['backend']} ({results['repeat']} repetitions)"
    )
    for heading in ("page", "median ms", "p95 ms", "× PK lookup", "× /healthz", "KiB", "target", "met"):
        table.add_column(heading, justify="left" if heading in ("page", "met") else "right", no_wrap=True)
    for name, timing in [*baselines.items(), *results["pages"].items()]:
        target = TARGETS_MS.get(name)
        table.add_row(
            name,
            f"{timing['median_ms']:.1f}",
            f"{timing['p95_ms']:.1f}",
            f"{timing['median_ms'] / pk:.0f}",
            f"{timing['median_ms'] / health:.1f}",
            f"{timing['bytes'] / 1024:.0f}" if "bytes" in timing else "",
            "" if target is None else f"< {target} ms",
            "" if target is None else ("yes" if timing["median_ms"] < target else "NO"),
        )
    console.print(table)
    if results.get("browser"):
        browser = Table(title="usable in headless Chromium (navigation to table or chart drawn)")
        for heading in ("page", "median ms", "p95 ms", "first visit ms", "target", "met"):
            browser.add_column(heading, justify="left" if heading in ("page", "met") else "right")
        for name, timing in results["browser"].items():
            met = "yes" if timing["median_ms"] < BROWSER_TARGET_MS else "NO"
            browser.add_row(
                name,
                f"{timing['median_ms']:.0f}",
                f"{timing['p95_ms']:.0f}",
                f"{timing['first_visit_ms']:.0f}",
                f"< {BROWSER_TARGET_MS}",
                met,
            )
        console.print(browser)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs to generate (default 100000)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="database to DROP, recreate and fill")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database if it already holds --runs runs"
    )
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page (default 30)")
    parser.add_argument("--browser", action="store_true", help="also time each page in headless Chromium")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated runs and sampled ids")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON on stdout")
    args = parser.parse_args(argv)
    console = Console(stderr=args.json)
    if not console.is_terminal:
        console.width = 140

    url = normalize_url(args.database_url)
    engine = store.configure(url)
    run_ids: list[str] = []
    if args.reuse:
        try:
            with engine.connect() as connection:
                run_ids = list(connection.execute(select(TrainingRun.run_id)).scalars())
        except Exception:  # noqa: BLE001 - no database or no schema yet: load one
            run_ids = []
    if len(run_ids) != args.runs:
        engine.dispose()
        recreate_database(url)
        engine = store.configure(url)
        store.upgrade_schema(engine)
        run_ids, _ = load(generate_runs(args.runs, seed=args.seed), args.runs, console)
        vacuum_analyze(engine.dialect.name)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(TrainingRun)).scalar_one() == len(run_ids)

    rng = random.Random(args.seed)
    app = create_app(Settings(database_url=url, read_api_token=TOKEN, secret_key="bench-secret"))
    client = app.test_client()
    baselines = raw_baselines(url, run_ids, rng)
    results: dict[str, Any] = {
        "backend": engine.dialect.name,
        "runs": len(run_ids),
        "repeat": args.repeat,
        "targets": {"server_median_ms": TARGETS_MS, "browser_usable_ms": BROWSER_TARGET_MS},
        "baselines": {
            "primary-key lookup": time_call(baselines["primary-key lookup"], args.repeat),
            "GET /healthz (test client)": time_call(lambda: client.get("/healthz"), args.repeat),
        },
        "pages": {},
    }
    for name, path in pages(run_ids, rng).items():
        console.print(f"timing {name}...", style="dim")
        results["pages"][name] = time_get(client, path, args.repeat)
    if args.browser:
        console.print("timing the pages in headless Chromium...", style="dim")
        results["browser"] = browser_timings(url, run_ids, rng, repeat=5)
    report(results, console)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
