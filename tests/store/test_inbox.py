"""The inbox's wake-up signal: workers listen on PostgreSQL only while they have nothing to do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from store import inbox


def record(dedupe_key: str) -> None:
    inbox.record_delivery("pipeline", "run.started", dedupe_key, b"{}", {})


@pytest.fixture
def signal(db: str) -> Iterator[inbox.NewEventSignal]:
    signal = inbox.NewEventSignal(poll_interval=0.01)
    yield signal
    signal.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_listening_signal_wakes_on_a_new_delivery(signal):
    assert signal.listen() is True
    assert signal.listen() is False  # already listening

    record("d1")

    assert signal.wait(timeout=30) is True


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_signal_that_stopped_listening_is_not_signalled(signal):
    signal.listen()
    signal.unlisten()
    record("d1")
    signal.listen()

    # Delivered while not listening: not signalled, only the claim after listen() finds it.
    assert signal.wait(timeout=0.2) is False


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_a_signal_never_listens_and_waits_by_sleeping(signal):
    assert signal.listen() is False
    assert signal.wait(timeout=5) is False


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_claim_is_an_index_scan_in_id_order_even_without_statistics(db):
    for n in range(300):
        record(f"d{n}")
    for _ in range(2):
        inbox.finish([delivery.id for delivery in inbox.claim(100)], "done")
    waiting = sorted(delivery.id for delivery in inbox.list_deliveries("pending", limit=300))

    now = inbox.utcnow()
    with inbox._connections.cursor() as cursor:
        plan = "\n".join(row[0] for row in cursor.execute("EXPLAIN " + inbox._CLAIM_SQL, (now, now, 50)))

    # A bitmap scan would read every index entry the finished events left behind, then sort.
    assert "Index Scan using ix_inbox_events_unfinished" in plan
    assert "Bitmap" not in plan
    assert [delivery.id for delivery in inbox.claim(50)] == waiting[:50]
