"""The inbox's claim on PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from store import inbox
from store.database import libpq_url


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
