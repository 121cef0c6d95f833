"""The least an event worker can do: claim inbox events and mark them done, applying none.

bench/ingest.py --floor runs two of these in place of ``training-db worker`` to measure what the
web, the inbox and the claims alone leave of the baseline's rate: the end-to-end floor of this
architecture, against which the cost of applying the events is read. It claims and finishes as
the worker does (the store's claim_deliveries and finish_deliveries, its batch size and lease,
polling as often), on DATABASE_URL, until SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import store  # noqa: E402
from ingest.settings import Settings  # noqa: E402


def main() -> None:
    settings = Settings()
    store.configure(settings.database_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lease = timedelta(seconds=settings.worker_lease)
    print("worker.started", flush=True)
    while not stop.is_set():
        batch = store.claim_deliveries(settings.worker_batch_size, lease)
        if not batch:
            stop.wait(settings.worker_poll_interval)
            continue
        store.finish_deliveries([delivery.id for delivery in batch], "done")
        if len(batch) < settings.worker_batch_size:
            stop.wait(settings.worker_linger)


if __name__ == "__main__":
    main()
