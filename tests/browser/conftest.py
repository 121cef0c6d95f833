"""Real headless Chromium against the real app served by gunicorn on loopback, over a seeded database.

Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM): browsers cannot be downloaded here.
Without it these tests skip, except under CI=true, where they fail.

Every page a test opens is watched: a console error, an uncaught exception, a failed request,
an answer of 400 or more, or a request to any other host fails the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import store
from store import migrate
from store.database import make_engine
from tests.browser.seed import seed_database, seed_molecules
from tests.faults.services import BIN, GUNICORN_CONFIG, WebServer, free_port, running, service_env

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READ_TOKEN = "read-token-for-the-browser"
ADMIN_TOKEN = "admin-token-for-the-browser"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Set to a folder (docs/screenshots for the README) to keep a screenshot of each page.
SCREENSHOTS = os.environ.get("TRAINING_DB_SCREENSHOTS")


def _chromium_or_skip() -> str:
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: .ci/run installs it with apt-get")
    pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")


@dataclass
class Site:
    """The served app: its address, and the ids of the seeded failed and dead deliveries."""

    url: str
    events: dict[str, int]
    database_url: str


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Serve a seeded SQLite database with gunicorn, as the Procfile's web line does."""
    with serve(tmp_path_factory.mktemp("browser"), seeded=True) as served:
        yield served


@contextmanager
def serve(folder: Path, seeded: bool) -> Iterator[Site]:
    """Serve a new SQLite database in ``folder`` (seeded, or empty) with gunicorn."""
    _chromium_or_skip()
    database_url = f"sqlite:///{folder / 'training_runs.db'}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    engine.dispose()
    store.configure(database_url)
    events = seed_database() if seeded else {}
    if seeded:
        seed_molecules()
    store.get_engine().dispose()
    port = free_port()
    env = service_env(
        database_url,
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        READ_API_TOKEN=READ_TOKEN,
        ADMIN_API_TOKEN=ADMIN_TOKEN,
        SECRET_KEY="secret-for-the-browser",
        GUNICORN_ACCESS_LOG="/dev/null",
    )
    command = [str(BIN / "gunicorn"), "--config", str(GUNICORN_CONFIG)]
    with running(command, env, folder / "gunicorn.log") as process:
        server = WebServer(process, port, 2)
        server.wait_until_up()
        yield Site(server.url, events, database_url)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@dataclass
class Watch:
    """What went wrong on the pages of one test."""

    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    # Addresses whose 400 the test provokes on purpose (a filter with a mistake).
    expected_400: list[str] = field(default_factory=list)

    def answered(self, response: Any) -> None:
        """Note an answer of 400 or more, unless the test asked for that 400."""
        expected = response.status == 400 and any(part in response.url for part in self.expected_400)
        if response.status >= 400 and not expected:
            self.problems.append(f"answer {response.status}: {response.request.method} {response.url}")

    def logged(self, message: Any) -> None:
        """Note a console error, except Chromium's own line about an expected 400."""
        url = message.location.get("url", "")
        expected = "status of 400" in message.text and any(part in url for part in self.expected_400)
        if message.type == "error" and not expected:
            self.problems.append(f"console error: {message.text} ({url})")


def open_page(browser: Any, site: Site, watch: Watch, viewport: dict[str, int] = DESKTOP) -> Any:
    """A new page in a fresh context whose every request, answer and console line is watched."""
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    origin = site.url

    def only_this_site(route: Any) -> None:
        url = route.request.url
        if url.startswith(origin + "/") or url == origin or url.startswith("data:"):
            route.continue_()
        else:
            watch.problems.append(f"request to another host: {url}")
            route.abort()

    context.route("**/*", only_this_site)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", watch.logged)
    page.on("pageerror", lambda e: watch.problems.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: watch.problems.append(f"failed request: {r.url} {r.failure}"))
    page.on("request", lambda r: watch.requests.append(r.url))
    page.on("response", watch.answered)
    return page


@pytest.fixture
def watch() -> Iterator[Watch]:
    """Fail the test if any page it opened had a problem."""
    seen = Watch()
    yield seen
    assert seen.problems == []


def log_in(page: Any, site: Site, token: str = ADMIN_TOKEN, then: str = "/") -> None:
    """Log in through the form, as a person would."""
    page.goto(f"{site.url}/login?next={then}")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{site.url}{then}*")


@pytest.fixture
def page(browser: Any, site: Site, watch: Watch) -> Iterator[Any]:
    """A desktop-sized page logged in with the admin token."""
    opened = open_page(browser, site, watch)
    log_in(opened, site)
    yield opened
    opened.context.close()


def screenshot(page: Any, name: str, element: Any = None) -> None:
    """Keep a screenshot of the page, or of one element, when TRAINING_DB_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        (element or page).screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))
