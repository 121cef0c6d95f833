"""A web worker killed in the middle of a load loses nothing it acknowledged."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest

from store import inbox
from tests.faults.load import Senders, pipeline_events
from tests.faults.services import web_server


@pytest.mark.slow
def test_every_acknowledged_delivery_is_stored_whole_after_web_workers_are_killed(
    db: str, database_url: str, tmp_path: Path
) -> None:
    events = pipeline_events(runs=200, seed=21)
    sent = dict(events)
    killed = []
    with web_server(database_url, tmp_path) as server, Senders(server.url, events) as senders:
        for share in (0.2, 0.4, 0.6):
            senders.wait_for(int(share * len(events)))
            victim = random.choice(server.worker_pids())
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        attempts = senders.finish()
        assert not set(killed) & set(server.worker_pids()), "gunicorn replaced every killed worker"

    # A request either got its answer or lost its connection with its worker: never a 5xx.
    assert {a.status for a in attempts} <= {202, None}
    acknowledged = {a.webhook_id for a in attempts if a.status == 202}
    # A gevent worker serves every connection it holds at once: killed, it takes with it up to
    # one request per sender.
    assert len(acknowledged) >= len(events) - len(killed) * len(senders.threads)
    stored = {d.dedupe_key.removeprefix("webhook:"): d for d in inbox.list_deliveries(limit=2 * len(events))}
    assert acknowledged <= set(stored)
    # Besides, a request whose answer died with its worker may have been stored: whole, then.
    for webhook_id, delivery in stored.items():
        assert delivery.body == sent[webhook_id]
        assert delivery.status == "pending"
