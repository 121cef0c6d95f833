"""The inbox: its claim on PostgreSQL, and archiving its old deliveries."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest

import store
from store import inbox
from store.database import libpq_url
from tests.inbox import backdate


def record(dedupe_key: str) -> None:
    inbox.record_delivery("pipeline", "run.started", dedupe_key, b"{}", {})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_claim_is_an_index_scan_in_id_order_even_without_statistics(db):
    for n in range(300):
        record(f"d{n}")
    for _ in range(2):
        inbox.finish([delivery.id for delivery in inbox.claim(100)], "done")
    waiting = sorted(delivery.id for delivery in inbox.list_deliveries("pending", limit=300))

    now = inbox.utcnow()
    plan = "\n".join(
        row[0]
        for row in inbox._connections.run(
            lambda cursor: cursor.execute("EXPLAIN " + inbox._CLAIM_SQL, (now, now, 50))
        )
    )

    # A bitmap scan would read every index entry the finished events left behind, then sort.
    assert "Index Scan using ix_inbox_events_unfinished" in plan
    assert "Bitmap" not in plan
    assert [delivery.id for delivery in inbox.claim(50)] == waiting[:50]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_delivery_commits_without_notifying(db):
    # A NOTIFY holds a lock for the whole cluster from its commit to its end: deliveries
    # that notified committed one at a time. Workers poll instead.
    with psycopg.connect(libpq_url(), autocommit=True) as listener:
        listener.execute("LISTEN inbox_events")
        record("d1")
        assert list(listener.notifies(timeout=0.3)) == []
    assert [delivery.dedupe_key for delivery in inbox.claim(10)] == ["d1"]


def archivable(count: int) -> list[int]:
    return [
        inbox.record_delivery("pipeline", "run.started", f"a{n}", b"{}", {}, status="done")[0]
        for n in range(count)
    ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_archiver_that_finds_another_one_archiving_archives_nothing(db):
    ids = archivable(3)
    inside, leave = threading.Event(), threading.Event()
    first: list[list[int]] = []

    def slow_write(deliveries: list[inbox.Delivery]) -> None:
        first.append([d.id for d in deliveries])
        inside.set()
        leave.wait(10)

    thread = threading.Thread(target=inbox.archive_batch, args=(store.utcnow(), 2, slow_write))
    thread.start()
    assert inside.wait(10)
    busy = inbox.archive_batch(store.utcnow(), 2, lambda deliveries: pytest.fail("archived twice"))
    leave.set()
    thread.join(10)
    rest = inbox.archive_batch(store.utcnow(), 2, lambda deliveries: None)

    assert busy is None
    assert first == [ids[:2]]
    assert [d.id for d in rest] == ids[2:]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_archivers_at_once_archive_every_delivery_exactly_once(db):
    ids = archivable(40)
    written: list[int] = []

    def archive() -> None:
        while inbox.archive_batch(store.utcnow(), 3, lambda ds: written.extend(d.id for d in ds), wait=True):
            pass

    threads = [threading.Thread(target=archive) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(written) == ids
    assert inbox.list_deliveries() == []


def test_a_write_that_fails_deletes_nothing_and_kept_statuses_are_never_archived(db):
    for status in ("failed", "dead", "invalid", "pending"):
        inbox.record_delivery("pipeline", "run.started", status, b"{}", {}, status=status)
    ids = archivable(2)

    def failing_write(deliveries: list[inbox.Delivery]) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        inbox.archive_batch(store.utcnow(), 10, failing_write)
    remaining = len(inbox.list_deliveries())
    archived = inbox.archive_batch(store.utcnow(), 10, lambda deliveries: None)

    assert remaining == 6
    assert [d.id for d in archived] == ids
    assert sorted(d.status for d in inbox.list_deliveries()) == ["dead", "failed", "invalid", "pending"]


def test_only_deliveries_received_before_the_cutoff_are_archived(db):
    old, young = archivable(2)
    backdate([old], days=31)

    archived = inbox.archive_batch(store.utcnow() - timedelta(days=30), 10, lambda deliveries: None)

    assert [d.id for d in archived] == [old]
    assert [d.id for d in inbox.list_deliveries()] == [young]
