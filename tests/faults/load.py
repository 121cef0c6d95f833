"""Signed pipeline events from generated runs, and senders posting them over real HTTP."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass

import requests

from testkit.factory import generate_runs
from tests.webhooks import pipeline_event, pipeline_headers

RETRIED = frozenset({None, 429, 500, 502, 503, 504})


def pipeline_events(runs: int, seed: int) -> list[tuple[str, bytes]]:
    """Return (webhook-id, body) of the run.launched and run.finished events of generated runs."""
    events = []
    for record in generate_runs(runs, seed):
        run_id = record["run_id"]
        launched = pipeline_event(
            "run.launched", run_id, config=record["config"], wandb_run_id=record["wandb_run_id"]
        )
        finished = pipeline_event("run.finished", run_id, summary=record["summary"])
        events.append((f"msg_{run_id}_launched", json.dumps(launched).encode()))
        events.append((f"msg_{run_id}_finished", json.dumps(finished).encode()))
    return events


@dataclass(frozen=True)
class Attempt:
    """One POST and how it ended; ``status`` None when the connection failed (outcome unknown)."""

    webhook_id: str
    sent_at: float
    answered_at: float
    status: int | None


class Senders:
    """Threads that post events to /webhooks/pipeline, once each, or until acknowledged when retrying."""

    def __init__(
        self,
        url: str,
        events: list[tuple[str, bytes]],
        threads: int = 4,
        retry_pause: float | None = None,
        pace: float = 0.0,
    ) -> None:
        self.endpoint = f"{url}/webhooks/pipeline"
        self.retry_pause, self.pace = retry_pause, pace
        self.total = len(events)
        self.todo: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        for item in events:
            self.todo.put(item)
        self.attempts: list[Attempt] = []
        self.done = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send) for _ in range(threads)]

    def __enter__(self) -> Senders:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _send(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    webhook_id, body = self.todo.get_nowait()
                except queue.Empty:
                    return
                self._deliver(session, webhook_id, body)
                with self.lock:
                    self.done += 1
                time.sleep(self.pace)

    def _deliver(self, session: requests.Session, webhook_id: str, body: bytes) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()
            status: int | None
            try:
                status = session.post(
                    self.endpoint, data=body, headers=pipeline_headers(body, webhook_id), timeout=30
                ).status_code
            except requests.RequestException:
                # A connection refused, reset, or cut mid-answer by a killed worker: no answer.
                status = None
            with self.lock:
                self.attempts.append(Attempt(webhook_id, sent, time.monotonic(), status))
            if self.retry_pause is None or status not in RETRIED:
                return
            time.sleep(self.retry_pause)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Wait until ``count`` events have had their last answer."""
        deadline = time.monotonic() + timeout
        while self.done < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.done} of {count} events answered in {timeout:.0f} s")
            time.sleep(0.01)

    def finish(self, timeout: float = 120.0) -> list[Attempt]:
        """Wait until every event is answered; return every attempt."""
        self.wait_for(self.total, timeout)
        for thread in self.threads:
            thread.join()
        return list(self.attempts)
