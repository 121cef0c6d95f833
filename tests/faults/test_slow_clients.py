"""Slow, stalled and oversized requests get bounded answers, and never stall anyone else."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests

from store import inbox
from store.database import libpq_url
from testkit.factory import generate_runs
from tests.conftest import S3_TOKEN
from tests.faults.services import web_server
from tests.webhooks import pipeline_event, pipeline_headers

SLOW_CONNECTIONS = 200
ANSWER_WITHIN = 1.0
# The README's bound for a body that stops arriving: BODY_TIMEOUT_SECONDS (default 5 s).
BODY_TIMEOUT = 5.0
# What a loaded, shared machine may add to it: scheduling, and the slow clients' tick.
SLACK = 2.0


def _head(path: str, content_length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


@dataclass
class _Connection:
    kind: str
    sock: socket.socket
    pending: bytes
    sent_at: float = field(default_factory=time.monotonic)
    received: bytes = b""


@dataclass(frozen=True)
class Answer:
    """What the server sent back on a slow connection, and how long after its last byte."""

    kind: str
    status: int
    body: bytes
    after: float


class SlowClients:
    """Hold ``count`` slow connections open from one thread, reopening each the server closes.

    A third send their headers a byte per tick; a third send whole headers, then their body a
    byte per tick; a third send a body shorter than their Content-Length, then nothing.
    """

    def __init__(self, port: int, count: int, tick: float = 0.25) -> None:
        self.port, self.tick = port, tick
        self.kinds = [("slow_headers", "slow_body", "short_body")[i % 3] for i in range(count)]
        self.answers: list[Answer] = []
        self.closed_by_server: dict[str, int] = {kind: 0 for kind in set(self.kinds)}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _open(self, kind: str) -> _Connection:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        if kind == "slow_headers":
            return _Connection(kind, sock, _head("/webhooks/pipeline", 2) + b"{}")
        if kind == "slow_body":
            # Under the test's MAX_BODY_BYTES: a byte a tick, it would take minutes to arrive.
            sock.sendall(_head("/webhooks/pipeline", 4000))
            return _Connection(kind, sock, b"{" + b" " * 3999)
        sock.sendall(_head("/webhooks/pipeline", 1000) + b'{"type": "run.')
        return _Connection(kind, sock, b"")

    def _run(self) -> None:
        connections = [self._open(kind) for kind in self.kinds]
        while not self.stop.wait(self.tick):
            for index, connection in enumerate(connections):
                if not self._still_open(connection):
                    connection.sock.close()
                    connections[index] = self._open(connection.kind)
        for connection in connections:
            connection.sock.close()

    def _still_open(self, connection: _Connection) -> bool:
        try:
            answer = connection.sock.recv(65536)
        except BlockingIOError:
            answer = None
        except OSError:
            answer = b""
        if answer:
            connection.received += answer
            head, _, body = connection.received.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if length is None or len(body) < int(length[1]):
                return True
            status = int(head.split(b" ", 2)[1])
            after = time.monotonic() - connection.sent_at
            self.answers.append(Answer(connection.kind, status, body, after))
            return False
        if answer == b"":
            self.closed_by_server[connection.kind] += 1
            return False
        if connection.pending and not connection.received:
            try:
                connection.sock.send(connection.pending[:1])
            except OSError:
                return False
            connection.pending = connection.pending[1:]
            connection.sent_at = time.monotonic()
        return True

    def __enter__(self) -> SlowClients:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


@dataclass(frozen=True)
class Probe:
    what: str
    status: int | None
    seconds: float


_CONFIG = next(iter(generate_runs(1, seed=18)))["config"]


def _probe(url: str, what: str) -> Probe:
    started = time.monotonic()
    try:
        if what == "healthz":
            status: int | None = requests.get(f"{url}/healthz", timeout=10).status_code
        else:
            run_id = f"probe-{uuid.uuid4().hex[:12]}"
            body = json.dumps(pipeline_event("run.launched", run_id, config=_CONFIG)).encode()
            headers = pipeline_headers(body, f"msg_{uuid.uuid4().hex}")
            status = requests.post(
                f"{url}/webhooks/pipeline", data=body, headers=headers, timeout=10
            ).status_code
    except requests.RequestException:
        status = None
    return Probe(what, status, time.monotonic() - started)


def _raw_exchange(port: int, request: bytes, close_write: bool = False) -> tuple[int, dict[str, str], float]:
    """Send ``request`` on a new connection; return the answer's status, JSON body and its delay."""
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT + SLACK + 5) as sock:
        sock.sendall(request)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        seconds = time.monotonic() - started
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.partition(b"\r\n\r\n")[2]), seconds


@pytest.fixture
def served(db: str, database_url: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """Serve the ingester as the Procfile does; yield its URL and port."""
    with web_server(database_url, tmp_path, MAX_BODY_BYTES="4096") as server:
        yield server.url, int(server.url.rsplit(":", 1)[1])


@pytest.mark.slow
def test_health_checks_and_events_are_answered_within_a_second_while_200_slow_connections_are_open(
    served: tuple[str, int],
) -> None:
    url, port = served
    probes = []
    with SlowClients(port, SLOW_CONNECTIONS) as slow:
        time.sleep(0.5)
        deadline = time.monotonic() + BODY_TIMEOUT + SLACK + 1
        while time.monotonic() < deadline:
            probes.append(_probe(url, "healthz"))
            probes.append(_probe(url, "event"))
            time.sleep(0.05)

    assert len(probes) > 20
    assert {(p.what, p.status) for p in probes} == {("healthz", 200), ("event", 202)}
    slowest = max(probes, key=lambda p: p.seconds)
    assert slowest.seconds < ANSWER_WITHIN, f"{slowest.what} took {slowest.seconds:.2f} s"
    # Every short body was answered 408 in JSON within the bound, none with a 500.
    short = [a for a in slow.answers if a.kind == "short_body"]
    assert len(short) >= SLOW_CONNECTIONS // 3
    assert {a.status for a in slow.answers} == {408}
    for answer in short:
        body = json.loads(answer.body)
        assert body["error"] == "request_timeout"
        assert "nothing came for 5 s (BODY_TIMEOUT_SECONDS)" in body["message"]
    assert BODY_TIMEOUT - 0.5 < min(a.after for a in short)
    assert max(a.after for a in short) < BODY_TIMEOUT + SLACK
    # Headers that take longer than the keepalive (5 s) are cut off without an answer.
    assert slow.closed_by_server["slow_headers"] >= SLOW_CONNECTIONS // 3


def _chunked(body: bytes) -> Iterator[bytes]:
    # A generator makes requests send Transfer-Encoding: chunked, with no Content-Length.
    for start in range(0, len(body), 1000):
        yield body[start : start + 1000]


def _padded_event(size: int) -> bytes:
    [run] = generate_runs(1, seed=18)
    body = json.dumps(pipeline_event("run.launched", run["run_id"], config=run["config"])).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


@pytest.mark.slow
def test_chunked_bodies_over_max_body_bytes_get_413_and_bodies_cut_short_400_and_nothing_is_stored(
    served: tuple[str, int],
) -> None:
    url, port = served
    over = _padded_event(4097)
    for endpoint in ("pipeline", "wandb", "s3"):
        headers = {
            **pipeline_headers(over, f"msg_chunked_over_{endpoint}"),
            "Authorization": f"Bearer {S3_TOKEN}",
            "Content-Type": "application/json",
        }
        answer = requests.post(f"{url}/webhooks/{endpoint}", data=_chunked(over), headers=headers, timeout=10)
        assert answer.request.headers["Transfer-Encoding"] == "chunked"
        assert (endpoint, answer.status_code) == (endpoint, 413)
        assert answer.json()["error"] == "request_entity_too_large"
        assert "MAX_BODY_BYTES (4096 bytes)" in answer.json()["message"]

    bearer = f"Authorization: Bearer {S3_TOKEN}\r\n"
    status, body, seconds = _raw_exchange(
        port, _head("/webhooks/s3", 1000, bearer) + b'{"Records": ', close_write=True
    )
    assert (status, body["error"]) == (400, "body_incomplete")
    assert "after 12 of the 1000 bytes" in body["message"]
    assert seconds < ANSWER_WITHIN
    bad_chunk = b"POST /webhooks/s3 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    status, body, _ = _raw_exchange(port, bad_chunk + bearer.encode() + b"\r\nzz\r\n{}\r\n0\r\n\r\n")
    assert (status, body["error"]) == (400, "bad_request")
    assert "chunked body is malformed" in body["message"]
    assert inbox.list_deliveries(limit=10) == []

    at_limit = _padded_event(4096)
    headers = pipeline_headers(at_limit, "msg_chunked_at_limit")
    answer = requests.post(f"{url}/webhooks/pipeline", data=_chunked(at_limit), headers=headers, timeout=10)
    assert answer.status_code == 202, answer.text
    [stored] = inbox.list_deliveries(limit=10)
    assert stored.body == at_limit


@pytest.mark.slow
# PostgreSQL only: SQLite's writes are calls into C that no worker class can interleave.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_request_waiting_on_the_database_does_not_hold_up_the_rest_of_its_worker(
    db: str, database_url: str, tmp_path: Path
) -> None:
    # One worker: the held-up event and the health check share it.
    with web_server(database_url, tmp_path, workers=1) as server, psycopg.connect(libpq_url()) as lock:
        lock.execute("LOCK TABLE inbox_events IN EXCLUSIVE MODE")
        with ThreadPoolExecutor(1) as pool:
            held_up = pool.submit(_probe, server.url, "event")
            time.sleep(0.5)
            health = _probe(server.url, "healthz")
            assert not held_up.done()
            lock.rollback()
            event = held_up.result()
    assert (health.status, event.status) == (200, 202)
    assert health.seconds < ANSWER_WITHIN
