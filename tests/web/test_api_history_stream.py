"""/api/runs/<id>/history/stream: a running run's new points as server-sent events, through the real app."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

import store
from ingest.worker import Worker
from tests.live import report, start_run
from tests.web.conftest import READ
from tests.webhooks import post_pipeline
from web import live


@pytest.fixture
def running(client: FlaskClient, worker: Worker) -> None:
    """A running run with three points of loss."""
    start_run(client, worker, "run-a")
    for step in (10, 20, 30):
        report(client, "run-a", step, {"train/loss": 1 / step})
    worker.run_once()


@pytest.fixture(autouse=True)
def quick_watcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live.watcher, "_interval", 0.05)


class Stream:
    """An open event stream, read one event at a time as a browser's EventSource reads it."""

    def __init__(self, client: FlaskClient, path: str, **headers: str) -> None:
        self.response = client.get(path, headers={**READ, **headers})
        assert self.response.status_code == 200, self.response.get_data(as_text=True)
        assert self.response.mimetype == "text/event-stream"
        assert self.response.headers["Cache-Control"] == "no-cache"
        self.chunks: Iterator[bytes] = iter(self.response.response)
        self.comments: list[str] = []

    def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event's fields, its data parsed; comments and the retry line are kept aside."""
        found: dict[str, Any] = {}
        while (chunk := self._next(timeout)) is not None:
            for line in filter(None, self._lines(chunk)):
                name, _, value = line.partition(": ")
                found[name] = json.loads(value) if name == "data" else value
            if "data" in found:
                return found
        raise AssertionError(f"the stream ended; fields read: {found}")

    def ended(self, timeout: float = 5.0) -> bool:
        """Read to the stream's end; tell whether no event came before it."""
        events = 0
        while (chunk := self._next(timeout)) is not None:
            events += any(line.startswith("data") for line in self._lines(chunk))
        return events == 0

    def _lines(self, chunk: bytes) -> list[str]:
        """The chunk's lines, but its comments, which are kept aside."""
        lines = chunk.decode().splitlines()
        self.comments += [line.removeprefix(": ") for line in lines if line.startswith(":")]
        return [line for line in lines if not line.startswith(":")]

    def _next(self, timeout: float) -> bytes | None:
        # A stream that never answers fails the test instead of hanging it.
        timer = threading.Timer(timeout, self.response.close)
        timer.start()
        try:
            return next(self.chunks, None)
        finally:
            timer.cancel()


def test_the_first_event_has_the_points_after_since_step_and_says_how_soon_to_reconnect(
    client: FlaskClient, running: None
) -> None:
    stream = Stream(client, "/api/runs/run-a/history/stream?since_step=10")
    first = next(stream.chunks)
    assert first == b"retry: 1000\n\n"
    event = stream.next_event()
    assert event["id"] == "30"
    assert event["data"]["steps"] == [20, 30]
    assert event["data"]["series"] == {"train/loss": [0.05, 1 / 30]}
    assert (event["data"]["status"], event["data"]["stalled"]) == ("running", False)


def test_a_point_applied_after_the_stream_opened_is_sent_at_once(
    client: FlaskClient, worker: Worker, running: None
) -> None:
    stream = Stream(client, "/api/runs/run-a/history/stream?since_step=30")
    assert stream.next_event()["data"]["steps"] == []
    report(client, "run-a", 40, {"train/loss": 0.025, "train/reward_mean": 0.4})
    worker.run_once()
    applied = time.monotonic()
    event = stream.next_event()
    assert time.monotonic() - applied < 1.0
    assert event["id"] == "40"
    assert event["data"]["steps"] == [40]
    assert event["data"]["series"] == {"train/loss": [0.025], "train/reward_mean": [0.4]}


def test_the_stream_ends_with_the_run_after_saying_so(
    client: FlaskClient, worker: Worker, running: None
) -> None:
    stream = Stream(client, "/api/runs/run-a/history/stream?since_step=30")
    stream.next_event()
    finished = {"type": "run.finished", "timestamp": "2026-11-20T11:00:00Z", "data": {"run_id": "run-a"}}
    assert post_pipeline(client, finished).status_code == 202
    worker.run_once()
    event = stream.next_event()
    assert (event["data"]["status"], event["data"]["steps"]) == ("completed", [])
    assert "id" not in event
    assert stream.ended()


def test_a_finished_runs_stream_sends_its_points_and_ends(
    client: FlaskClient, worker: Worker, running: None
) -> None:
    finished = {"type": "run.finished", "timestamp": "2026-11-20T11:00:00Z", "data": {"run_id": "run-a"}}
    assert post_pipeline(client, finished).status_code == 202
    worker.run_once()
    stream = Stream(client, "/api/runs/run-a/history/stream")
    assert stream.next_event()["data"]["steps"] == [10, 20, 30]
    assert stream.ended()


def test_a_reconnecting_browser_resumes_after_its_last_event(client: FlaskClient, running: None) -> None:
    stream = Stream(client, "/api/runs/run-a/history/stream?since_step=0", **{"Last-Event-ID": "20"})
    assert stream.next_event()["data"]["steps"] == [30]


def test_keys_narrow_each_event(client: FlaskClient, worker: Worker, running: None) -> None:
    stream = Stream(client, "/api/runs/run-a/history/stream?since_step=30&keys=train/reward_mean")
    stream.next_event()
    report(client, "run-a", 40, {"train/loss": 0.025, "train/reward_mean": 0.4})
    worker.run_once()
    assert stream.next_event()["data"]["series"] == {"train/reward_mean": [0.4]}


def test_an_idle_stream_sends_a_comment_now_and_then_and_ends_after_its_lifetime(
    client: FlaskClient, running: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "HEARTBEAT", 0.1)
    monkeypatch.setattr(live, "LIFETIME", 0.5)
    stream = Stream(client, "/api/runs/run-a/history/stream?since_step=30")
    stream.next_event()
    assert stream.ended()
    assert "still here" in stream.comments


def test_a_stopping_web_process_ends_its_streams(
    client: FlaskClient, running: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = threading.Event()
    serving.set()
    monkeypatch.setattr(live, "serving", serving.is_set)
    stream = Stream(client, "/api/runs/run-a/history/stream?since_step=30")
    stream.next_event()
    serving.clear()
    started = time.monotonic()
    assert stream.ended()
    assert time.monotonic() - started < 1.0


def test_one_read_per_interval_serves_every_stream_of_a_process(
    client: FlaskClient, worker: Worker, running: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[list[str]] = []
    read_states = live.watcher._read_states

    def counted(run_ids: list[str]) -> Any:
        reads.append(sorted(run_ids))
        return read_states(run_ids)

    monkeypatch.setattr(live.watcher, "_read_states", counted)
    start_run(client, worker, "run-b")
    streams = [Stream(client, f"/api/runs/{run_id}/history/stream") for run_id in ("run-a", "run-a", "run-b")]
    for stream in streams:
        stream.next_event()
    report(client, "run-b", 5, {"train/loss": 2.0})
    worker.run_once()
    assert streams[2].next_event()["data"]["steps"] == [5]
    assert reads and all(run_ids == ["run-a", "run-b"] for run_ids in reads[1:])


def test_an_unknown_run_is_a_404_in_json(client: FlaskClient, running: None) -> None:
    response = client.get("/api/runs/no-such-run/history/stream", headers=READ)
    assert response.status_code == 404
    assert response.get_json() == {"error": "not_found", "message": "run 'no-such-run' not found"}


@pytest.mark.parametrize(
    ("query", "headers", "parameter"),
    [
        ("since_step=ten", {}, "since_step"),
        ("keys=" + ",".join(f"k{i}" for i in range(65)), {}, "keys"),
        ("", {"Last-Event-ID": "not-a-step"}, "Last-Event-ID"),
        ("", {"Last-Event-ID": str(2**63)}, "Last-Event-ID"),
    ],
)
def test_bad_parameters_are_400s_naming_them(
    client: FlaskClient, running: None, query: str, headers: dict[str, str], parameter: str
) -> None:
    response = client.get(f"/api/runs/run-a/history/stream?{query}", headers={**READ, **headers})
    assert response.status_code == 400
    assert response.get_json()["parameter"] == parameter


def test_the_stream_needs_the_read_token(client: FlaskClient, running: None) -> None:
    assert client.get("/api/runs/run-a/history/stream").status_code == 401


def test_the_openapi_document_describes_the_stream(client: FlaskClient) -> None:
    stream = client.get("/openapi.json").get_json()["paths"]["/api/runs/{run_id}/history/stream"]["get"]
    assert [p["name"] for p in stream["parameters"]] == ["run_id", "keys", "since_step", "Last-Event-ID"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert set(stream["responses"]) >= {"200", "400", "401", "404"}


def test_a_stream_reads_its_points_again_only_when_its_run_changed(
    client: FlaskClient, worker: Worker, running: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int | None] = []
    get_run_history = store.get_run_history

    def counted(run_id: str, **options: Any) -> Any:
        reads.append(options["since_step"])
        return get_run_history(run_id, **options)

    monkeypatch.setattr(store, "get_run_history", counted)
    stream = Stream(client, "/api/runs/run-a/history/stream?since_step=30")
    stream.next_event()
    time.sleep(10 * live.watcher._interval)
    assert reads == [30]
    report(client, "run-a", 40, {"train/loss": 0.025})
    worker.run_once()
    assert stream.next_event()["data"]["steps"] == [40]
    assert reads == [30, 30]


def test_a_run_that_goes_quiet_is_shown_stalled_without_an_event(
    client: FlaskClient, running: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = Stream(client, "/api/runs/run-a/history/stream?since_step=30")
    assert stream.next_event()["data"]["stalled"] is False
    monkeypatch.setattr(store.stalled, "_stale_after", 0.5)
    event = stream.next_event()
    assert (event["data"]["status"], event["data"]["stalled"], event["data"]["steps"]) == ("running", True, [])
