"""The curves on the run page and the compare page, through the real app on both databases."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient

from ingest.worker import Worker
from tests.live import report, start_run
from tests.web.conftest import READ


@pytest.fixture
def training(client: FlaskClient, worker: Worker) -> None:
    """Two mgda runs and a pcgrad one, each with three points of loss, reward and grad norm."""
    for run_id, method in (("run-1", "mgda"), ("run-2", "pcgrad"), ("run-3", "mgda")):
        start_run(client, worker, run_id, method)
        for step in (100, 200, 300):
            metrics = {"train/loss": 3 / step, "train/reward_mean": step / 1000, "train/grad_norm": 1.0}
            report(client, run_id, step, metrics)
    worker.run_once()


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path, headers=READ)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return unescape(response.get_data(as_text=True))


def embedded(html: str, element_id: str) -> Any:
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert found, f"no #{element_id}"
    return json.loads(found.group(1))


def checked_keys(html: str) -> list[str]:
    return re.findall(r'<input type="checkbox" name="keys" value="([^"]+)" checked>', html)


def test_the_run_page_carries_the_history_and_follows_a_running_run(
    client: FlaskClient, training: None
) -> None:
    html = page(client, "/runs/run-1")
    history = embedded(html, "history-data")
    assert history["steps"] == [100, 200, 300]
    assert history["series"]["train/loss"] == [0.03, 0.015, 0.01]
    assert sorted(checked_keys(html)) == ["train/grad_norm", "train/loss", "train/reward_mean"]
    assert 'data-status="running"' in html
    assert "3 points, steps 100 to 300." in html
    assert "/assets/curves.js" in html and "/assets/vendor/plotly-" in html


def test_the_chosen_keys_log_scale_and_smoothing_come_from_the_address(
    client: FlaskClient, training: None
) -> None:
    html = page(client, "/runs/run-1?keys=train/grad_norm,nonsense&log=1&smoothing=0.8")
    assert checked_keys(html) == ["train/grad_norm"]
    assert re.search(r'id="curve-log" name="log" value="1" checked', html)
    assert 'value="0.8"' in html
    assert 'value="5"' not in page(client, "/runs/run-1?smoothing=5")


def test_a_run_without_history_says_so(client: FlaskClient, worker: Worker) -> None:
    start_run(client, worker, "quiet")
    html = page(client, "/runs/quiet")
    assert embedded(html, "history-data")["steps"] == []
    assert "No metric history recorded yet: curves appear as the run reports progress." in html


def test_the_compare_page_overlays_one_key_for_the_picked_runs(client: FlaskClient, training: None) -> None:
    overlay = embedded(
        page(client, "/compare?curve_key=train/reward_mean&run=run-1&run=run-2"), "overlay-data"
    )
    assert overlay["key"] == "train/reward_mean"
    assert {run["run_id"]: run["gradient_method"] for run in overlay["runs"]} == {
        "run-1": "mgda",
        "run-2": "pcgrad",
    }
    assert all(run["values"] == [0.1, 0.2, 0.3] for run in overlay["runs"])


def test_without_picked_runs_the_overlay_takes_the_newest_matching_runs(
    client: FlaskClient, training: None
) -> None:
    html = page(client, "/compare?filter=gradient_method = 'mgda'")
    overlay = embedded(html, "overlay-data")
    assert overlay["key"] == "train/loss"
    assert sorted(run["run_id"] for run in overlay["runs"]) == ["run-1", "run-3"]


def test_more_than_twenty_picked_runs_are_refused_on_the_page(client: FlaskClient, training: None) -> None:
    picked = "&".join(f"run=r{i}" for i in range(21))
    response = client.get(f"/compare?{picked}", headers=READ)
    assert "Pick at most 20 runs to overlay their curves (21 picked)." in unescape(
        response.get_data(as_text=True)
    )
