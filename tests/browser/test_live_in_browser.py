"""Live curves in real headless Chromium: a point sent after the run page opened appears without
a reload, and the compare page overlays one key's curves coloured by gradient method."""

from __future__ import annotations

import json
import math
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

import store
from ingest.settings import Settings
from ingest.worker import Worker
from tests.browser.conftest import Site, Watch, log_in, open_page, screenshot, serve
from tests.conftest import PIPELINE_SECRET
from tests.webhooks import pipeline_headers

METHODS = ("mgda", "pcgrad", "nash_mtl")


def send(site: Site, kind: str, data: dict[str, Any]) -> None:
    """Post one pipeline event to the served app, signed as the pipeline signs it; expect 202."""
    raw = json.dumps({"type": kind, "timestamp": "2026-11-20T10:00:00Z", "data": data}).encode()
    headers = pipeline_headers(raw, f"msg_{uuid.uuid4().hex}")
    request = urllib.request.Request(
        f"{site.url}/webhooks/pipeline", data=raw, headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def drain(site: Site) -> None:
    """Apply every stored event, as the service's worker does."""
    store.configure(site.database_url)
    worker = Worker(Settings(database_url=site.database_url, pipeline_webhook_secret=PIPELINE_SECRET))
    while worker.run_once():
        pass


def y_tick_labels(page: Any, chart: str) -> list[str]:
    """The labels a chart shows on its y axis, bottom up."""
    return page.locator(f"{chart} .ytick text").all_text_contents()


def loss(step: int, method: str) -> float:
    return 2.0 * math.exp(-step / (150 + 60 * METHODS.index(method))) + 0.05


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A site of its own, so that the runs sent here change no other test's pages."""
    with serve(tmp_path_factory.mktemp("live"), seeded=False) as served:
        yield served


@pytest.fixture
def page(browser: Any, site: Site, watch: Watch) -> Iterator[Any]:
    """A desktop-sized page on this module's site, logged in."""
    opened = open_page(browser, site, watch)
    log_in(opened, site)
    yield opened
    opened.context.close()


@pytest.fixture(scope="module")
def training(site: Site) -> list[str]:
    """Nine running runs, three per gradient method, with 40 points of loss and reward each."""
    run_ids = []
    for index in range(9):
        method = METHODS[index % 3]
        run_id = f"live-{method}-{index}"
        run_ids.append(run_id)
        send(site, "run.launched", {"run_id": run_id, "config": {"training": {"gradient_method": method}}})
        send(site, "run.started", {"run_id": run_id})
        for step in range(10, 410, 10):
            metrics = {"train/loss": loss(step, method) * (1 + index / 40), "train/reward_mean": step / 500}
            send(site, "run.progress", {"run_id": run_id, "step": step, "metrics": metrics})
    drain(site)
    return run_ids


def test_a_point_sent_after_the_run_page_opened_appears_without_a_reload(
    page: Any, site: Site, watch: Watch, training: list[str]
) -> None:
    run_id = training[0]
    page.goto(f"{site.url}/runs/{run_id}")
    charts = page.locator("#curve-charts")
    page.locator("#curve-charts[data-last-step='400']").wait_for()
    page.locator(".curve[data-key='train/loss'][data-drawn='true']").wait_for()
    assert page.locator(".curve[data-key='train/loss']").get_attribute("data-points") == "40"
    loads = []
    page.on("load", lambda _: loads.append(page.url))

    send(site, "run.progress", {"run_id": run_id, "step": 410, "metrics": {"train/loss": 0.01}})
    acknowledged = time.monotonic()
    drain(site)
    page.locator("#curve-charts[data-last-step='410']").wait_for(timeout=2000)
    shown_after = time.monotonic() - acknowledged

    assert shown_after < 2.0
    assert loads == []
    assert charts.get_attribute("data-points") == "41"
    page.locator(".curve[data-key='train/loss'][data-points='41']").wait_for()
    assert page.locator("#live-step").inner_text() == "410"
    # One stream, opened after the step the page was drawn with; no poll.
    streams = [url for url in watch.requests if "/history" in url]
    assert streams == [f"{site.url}/api/runs/{quote(run_id, safe='')}/history/stream?since_step=400"]


def test_log_scale_smoothing_and_keys_are_chosen_and_kept_in_the_url(
    page: Any, site: Site, watch: Watch, training: list[str]
) -> None:
    run_id = training[1]
    page.goto(f"{site.url}/runs/{run_id}")
    page.locator(".curve[data-key='train/loss'][data-drawn='true']").wait_for()

    page.get_by_label("Log scale").check()
    page.locator("#curve-smoothing").fill("0.6")
    page.wait_for_function("document.querySelector(\".curve[data-key='train/loss']\").data.length === 2")

    layout_type = page.evaluate("document.querySelector(\".curve[data-key='train/loss']\").layout.yaxis.type")
    assert layout_type == "log"
    assert "log=1" in page.url and "smoothing=0.6" in page.url
    # The reward climbs from 0.02 to 0.8: every label says its whole value, not a bare digit.
    assert y_tick_labels(page, ".curve[data-key='train/reward_mean']") == ["0.02", "0.05", "0.1", "0.2", "0.5"]
    screenshot(page, "run-curves")

    page.get_by_role("checkbox", name="train/loss").uncheck()
    assert page.locator(".curve[data-key='train/loss']").count() == 0
    page.reload()
    page.locator(".curve[data-key='train/reward_mean'][data-drawn='true']").wait_for()
    # Reloading aborts the open stream: the browser's doing, not a fault.
    watch.problems[:] = [p for p in watch.problems if not ("/history/stream" in p and "ERR_ABORTED" in p)]
    assert page.locator(".curve[data-key='train/loss']").count() == 0
    assert page.get_by_label("Log scale").is_checked()


def test_the_compare_page_overlays_one_key_coloured_by_gradient_method(
    page: Any, site: Site, training: list[str]
) -> None:
    picked = "&".join(f"run={run_id}" for run_id in training)
    page.goto(f"{site.url}/compare?curve_key=train/loss&{picked}")
    chart = page.locator("#overlay-chart[data-drawn='true']")
    chart.wait_for()
    assert chart.get_attribute("data-points") == str(len(training))
    legend = page.locator("#overlay-chart .legend .legendtext").all_text_contents()
    assert sorted(legend) == sorted(METHODS)
    colours = page.evaluate(
        "Array.from(document.getElementById('overlay-chart').data, (t) => [t.name, t.line.color])"
    )
    by_method: dict[str, set[str]] = {}
    for method, colour in colours:
        by_method.setdefault(method, set()).add(colour)
    assert all(len(c) == 1 for c in by_method.values())
    assert len({c for cs in by_method.values() for c in cs}) == len(METHODS)
    page.locator("#overlay").scroll_into_view_if_needed()
    screenshot(page, "compare-curves")

    page.goto(f"{site.url}/compare?curve_key=train/loss&curve_log=1&{picked}")
    chart.wait_for()
    # The nine losses run from about 2.1 down to about 0.3 (0.01 at one run's last point, when the
    # first test has sent it): whole values at 1, 2 and 5 of each decade, in order.
    labels = y_tick_labels(page, "#overlay-chart")
    assert {"0.5", "1", "2"} <= set(labels)
    assert [float(label) for label in labels] == sorted(float(label) for label in labels)
    assert {label.lstrip("0.")[0] for label in labels} <= {"1", "2", "5"}


def test_the_run_page_follows_its_run_to_its_end_from_its_stream(
    page: Any, site: Site, watch: Watch, training: list[str]
) -> None:
    run_id = training[-1]
    page.goto(f"{site.url}/runs/{run_id}")
    page.locator("#curve-charts[data-last-step='400']").wait_for()
    assert page.locator("#run-status").inner_text() == "running"

    send(site, "run.finished", {"run_id": run_id})
    acknowledged = time.monotonic()
    drain(site)
    page.locator("#run-status.status-completed").wait_for(timeout=2000)
    shown_after = time.monotonic() - acknowledged

    assert shown_after < 2.0
    assert page.locator("#run-status").inner_text() == "completed"
    # Its status came with the history: the page never read the whole run again.
    assert not any(url.endswith(f"/api/runs/{run_id}") for url in watch.requests)
    # A run that has ended reports no more: the page closed its one stream and opened no other.
    page.wait_for_timeout(2500)
    assert len([url for url in watch.requests if "/history" in url]) == 1
    # Closed by the page as the run ended: the browser reports the stream as aborted.
    watch.problems[:] = [p for p in watch.problems if not ("/history/stream" in p and "ERR_ABORTED" in p)]


def test_a_log_scale_over_many_decades_or_with_nothing_positive_draws_without_errors(
    page: Any, site: Site, training: list[str]
) -> None:
    run_id = "live-log-edges"
    send(site, "run.launched", {"run_id": run_id, "config": {"training": {"gradient_method": "mgda"}}})
    send(site, "run.started", {"run_id": run_id})
    for step in range(10, 410, 10):
        metrics = {"train/grad_norm": 10 ** (step / 50 - 4), "train/advantage": -step / 400}
        send(site, "run.progress", {"run_id": run_id, "step": step, "metrics": metrics})
    drain(site)

    page.goto(f"{site.url}/runs/{run_id}?keys=train/grad_norm,train/advantage&log=1")
    page.locator(".curve[data-key='train/grad_norm'][data-drawn='true']").wait_for()
    page.locator(".curve[data-key='train/advantage'][data-drawn='true']").wait_for()

    # From 10^-3.8 to 10^4, with plotly's margin: one label a decade, each its whole value, and
    # under 0.001 in exponent form.
    labels = y_tick_labels(page, ".curve[data-key='train/grad_norm']")
    assert labels == ["1e-4", "0.001", "0.01", "0.1", "1", "10", "100", "1000", "10000"]
    # A key with no positive value has nothing to draw on a log scale: plotly's own axis, no error
    # (the watch fixture fails the test on any console error).
    axis = page.evaluate("document.querySelector(\".curve[data-key='train/advantage']\").layout.yaxis")
    assert axis["type"] == "log" and "tickvals" not in axis
