"""Live run pages: server-sent events of a run's new points, fed by one watcher per web process.

A page that follows a running run holds one stream (``GET /api/runs/<id>/history/stream``). The
streams of a web process do not each ask the database: one watcher thread (a greenlet under
gunicorn's gevent workers) reads, every ``INTERVAL``, the state of every run an open stream
follows, in one query, and wakes the streams whose run changed; only they read their new points.
Fifty pages polling every second took an eighth of a two-core machine's CPU; fifty streams take
under 2% of it (bench/RESULTS.md, "Live pages: streams instead of polls").
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

import store
from store import DatabaseUnavailable, LiveState

# How often the watcher reads its runs: a new point reaches an open page within this, once
# applied.
INTERVAL = 0.5
# A comment on an idle stream, so that a proxy does not cut it and a gone client is noticed.
HEARTBEAT = 15.0
# A stream ends after this long, and the browser reconnects, resuming from its last event's
# id: no stream outlives a deploy for long, and reconnecting spreads pages over the processes.
LIFETIME = 300.0
# How soon a browser reconnects after a stream ended or broke, in milliseconds.
RETRY_MS = 1000
# The statuses of a run that may still report: a stream follows only these.
LIVE_STATUSES = frozenset({"launched", "running"})


class Follower:
    """One open stream's view of its run: woken when the watcher sees the run change."""

    def __init__(self, state: LiveState) -> None:
        # As the stream last read it: the watcher's first read wakes it only for a change since.
        self.state: LiveState | None = state
        self._changed = threading.Event()

    def offer(self, state: LiveState | None) -> None:
        """Take the run's state as the watcher read it (None: the run is gone); wake if it changed."""
        if state != self.state:
            self.state = state
            self._changed.set()

    def wake(self) -> None:
        self._changed.set()

    def wait(self, timeout: float) -> bool:
        """Wait until woken or ``timeout``; tell whether woken."""
        woken = self._changed.wait(timeout)
        self._changed.clear()
        return woken


class Watcher:
    """Read the state of every followed run in one query per interval, for the whole process."""

    def __init__(self, read_states: Callable[[list[str]], dict[str, LiveState]], interval: float = INTERVAL) -> None:
        self._read_states = read_states
        self._interval = interval
        self._lock = threading.Lock()
        self._followers: defaultdict[str, set[Follower]] = defaultdict(set)
        self._running = False

    @contextmanager
    def follow(self, run_id: str, state: LiveState) -> Iterator[Follower]:
        """Follow a run the caller has just read in ``state``."""
        follower = Follower(state)
        with self._lock:
            self._followers[run_id].add(follower)
            start = not self._running
            self._running = True
        if start:
            threading.Thread(target=self._watch, name="live-watcher", daemon=True).start()
        try:
            yield follower
        finally:
            with self._lock:
                followers = self._followers[run_id]
                followers.discard(follower)
                if not followers:
                    del self._followers[run_id]

    def _watch(self) -> None:
        while True:
            with self._lock:
                if not self._followers:
                    self._running = False
                    return
                run_ids = list(self._followers)
            stopping = not serving()
            states = None
            if not stopping:
                try:
                    states = self._read_states(run_ids)
                except DatabaseUnavailable:
                    # The streams keep their last state; the next read tries again.
                    pass
            with self._lock:
                followers = [(f, run_id) for run_id in run_ids for f in self._followers.get(run_id, ())]
            for follower, run_id in followers:
                if stopping:
                    follower.wake()
                elif states is not None:
                    follower.offer(states.get(run_id))
            time.sleep(self._interval)


def _serving_always() -> bool:
    return True


# Whether this process still serves: gunicorn's configuration (ingest/gunicorn_conf.py) replaces
# it with its worker's, so that a worker told to stop ends its streams at once instead of
# waiting out its graceful timeout for them.
serving: Callable[[], bool] = _serving_always


def serve_while(alive: Callable[[], bool]) -> None:
    """End this process's streams once ``alive()`` turns false."""
    global serving
    serving = alive


watcher = Watcher(store.get_live_states)


def event(answer: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``answer``; its id, the last step it holds, resumes a stream."""
    steps = answer["steps"]
    head = b"id: %d\n" % steps[-1] if steps else b""
    return head + b"data: " + orjson.dumps(answer, option=orjson.OPT_NON_STR_KEYS) + b"\n\n"


def stream(
    run_id: str,
    since: int | None,
    first: dict[str, Any],
    read: Callable[[int | None], dict[str, Any] | None],
) -> Iterator[bytes]:
    """The events of one open page: ``first`` (the answer after ``since``), then each change of
    the run, until the run ends, the stream's lifetime is up or the process stops.

    ``read(since_step)`` answers as the history endpoint does (None once the run is deleted).
    """
    yield b"retry: %d\n\n" % RETRY_MS
    answer: dict[str, Any] | None = first
    shown: tuple[Any, Any] | None = None
    ends = time.monotonic() + LIFETIME
    with watcher.follow(run_id, LiveState(first["status"], first["last_step"], first["stalled"])) as follower:
        while answer is not None:
            if answer["steps"] or (answer["status"], answer["stalled"]) != shown:
                yield event(answer)
                since = answer["steps"][-1] if answer["steps"] else since
                shown = (answer["status"], answer["stalled"])
            if answer["status"] not in LIVE_STATUSES:
                return
            while not follower.wait(min(HEARTBEAT, max(0.0, ends - time.monotonic()))):
                if not serving() or time.monotonic() >= ends:
                    return
                yield b": still here\n\n"
            if not serving():
                return
            try:
                answer = read(since)
            except DatabaseUnavailable:
                # The browser reconnects within RETRY_MS, and is told of the outage then.
                return
