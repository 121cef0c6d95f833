"""The worker: claims inbox events, runs their handlers, retries failures, syncs W&B projects."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

import store
from handlers import HANDLERS, IGNORED, Context, Outcome
from handlers.wandb import sync_project
from ingest import metrics
from ingest.parsing import Invalid, Malformed, parse_stored
from ingest.settings import Settings
from ingest.wandb_api import WandbClient
from store import inbox
from store.database import DatabaseUnavailable

log = logging.getLogger("worker")


def make_context(settings: Settings, http_get: Callable[[str], object] | None = None) -> Context:
    """Build the handlers' context from the settings."""

    def wandb_client() -> WandbClient:
        return WandbClient(settings.wandb_base_url, settings.wandb_api_key)

    return Context(
        settings=settings, wandb_client=wandb_client if settings.wandb_api_key else None, http_get=http_get
    )


class PermanentError(Exception):
    """Retrying will not help: the stored event cannot be read or its data is refused."""


def handle(source: str, kind: str, body: bytes, context: Context) -> Outcome:
    """Run one stored delivery through its handler."""
    try:
        parsed = parse_stored(source, body)
    except (Invalid, Malformed) as error:
        raise PermanentError(f"stored body no longer validates: {error}") from error
    if parsed.kind in IGNORED:
        return Outcome.IGNORED
    handler = HANDLERS.get(parsed.kind)
    if handler is None:
        raise PermanentError(f"no handler for event kind {kind!r}")
    try:
        return handler(parsed.event, context)
    except ValueError as error:
        raise PermanentError(str(error)) from error


class Worker:
    """Process inbox events until stopped."""

    def __init__(self, settings: Settings, context: Context | None = None) -> None:
        self.settings = settings
        self.context = context or make_context(settings)
        self.next_reconciliation = 0.0
        self.unfinished: list[int] = []

    def run_once(self) -> int:
        """Claim and process one batch of due events; return how many were claimed."""
        if self.unfinished:
            # Claimed before the database went away: hand them back now that it answers,
            # rather than leave them waiting for their lease to run out.
            inbox.release(self.unfinished)
            self.unfinished = []
        batch = inbox.claim(self.settings.worker_batch_size)
        try:
            self._process(batch)
        except DatabaseUnavailable:
            self.unfinished = [delivery.id for delivery in batch]
            raise
        return len(batch)

    def _process(self, batch: list[inbox.Delivery]) -> None:
        finished: dict[str, list[int]] = defaultdict(list)
        for delivery in batch:
            try:
                outcome = handle(delivery.source, delivery.kind, delivery.body, self.context)
            except PermanentError as error:
                log.warning("event.refused id=%s kind=%s error=%s", delivery.id, delivery.kind, error)
                inbox.finish([delivery.id], "invalid", str(error))
                metrics.PROCESSED.labels(kind=delivery.kind, outcome="invalid").inc()
                continue
            except Exception as error:
                self._failed(delivery, error)
                continue
            finished["ignored" if outcome is Outcome.IGNORED else "done"].append(delivery.id)
            metrics.PROCESSED.labels(kind=delivery.kind, outcome=str(outcome)).inc()
        for status, ids in finished.items():
            inbox.finish(ids, status)

    def _failed(self, delivery: inbox.Delivery, error: Exception) -> None:
        message = f"{type(error).__name__}: {error}"
        if delivery.attempts >= self.settings.worker_max_attempts:
            log.error(
                "event.dead id=%s kind=%s attempts=%d error=%s",
                delivery.id,
                delivery.kind,
                delivery.attempts,
                message,
            )
            inbox.finish([delivery.id], "dead", message)
            metrics.DEAD.labels(kind=delivery.kind).inc()
        else:
            log.warning(
                "event.failed id=%s kind=%s attempts=%d error=%s",
                delivery.id,
                delivery.kind,
                delivery.attempts,
                message,
            )
            inbox.retry_later(delivery.id, delivery.attempts, message)
            metrics.FAILED.labels(kind=delivery.kind).inc()

    def reconcile(self) -> None:
        """Sync each configured W&B project whose last sync is older than the interval."""
        interval = timedelta(seconds=self.settings.wandb_sync_interval)
        for path in self.settings.wandb_projects:
            entity, project = path.split("/", 1)
            cursor = store.wandb_sync_cursor(entity, project)
            if cursor is not None and store.utcnow() - cursor < interval:
                continue
            try:
                sync_project(entity, project, self.context)
            except Exception as error:
                log.error("wandb.sync_failed project=%s error=%s", path, error)

    def run(self, stop: threading.Event) -> None:
        """Process events until ``stop`` is set, waking at once when new ones arrive."""
        signal = inbox.NewEventSignal(self.settings.worker_poll_interval)
        log.info("worker.started database=%s", store.get_engine().dialect.name)
        try:
            while not stop.is_set():
                try:
                    if self.settings.wandb_projects and time.monotonic() >= self.next_reconciliation:
                        self.next_reconciliation = time.monotonic() + self.settings.wandb_sync_interval
                        self.reconcile()
                    if self.run_once() == 0:
                        signal.wait(timeout=1.0)
                except DatabaseUnavailable as error:
                    log.error("worker.database_unavailable error=%s", error)
                    stop.wait(1.0)
        finally:
            signal.close()
            log.info("worker.stopped")
