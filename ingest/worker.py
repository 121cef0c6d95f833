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
from ingest.events import EventKind
from ingest.parsing import Invalid, Malformed, Parsed, parse_stored
from ingest.settings import Settings
from ingest.wandb_api import WandbClient
from store import inbox
from store.database import DatabaseUnavailable, autovacuum_off, plan_statements_once

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


# Their handlers call out over the network: each is applied in its own transaction, so a
# slow service holds no batch's locks.
CALLS_OUT = frozenset({EventKind.WANDB_AUTOMATION, EventKind.SNS_SUBSCRIPTION_CONFIRMATION})
# A batch of molecules is analysed with RDKit before its transaction (about a millisecond a
# molecule): in a unit of work it would hold every run of the batch locked meanwhile, and the
# other events' commit would wait for it. Each is applied after them, in its own transaction.
APPLIED_ALONE = CALLS_OUT | {EventKind.RUN_MOLECULES}


# Times a batch is applied again without the event that failed, before the rest go alone.
BATCH_ATTEMPTS = 4


def finished_status(outcome: Outcome) -> str:
    return "ignored" if outcome is Outcome.IGNORED else "done"


def read(source: str, body: bytes) -> Parsed:
    """Validate a stored delivery again, as its handler will take it."""
    try:
        return parse_stored(source, body)
    except (Invalid, Malformed) as error:
        raise PermanentError(f"stored body no longer validates: {error}") from error


def apply(parsed: Parsed, context: Context) -> Outcome:
    """Run one validated event through its handler."""
    if parsed.kind in IGNORED:
        return Outcome.IGNORED
    handler = HANDLERS.get(parsed.kind)
    if handler is None:
        raise PermanentError(f"no handler for event kind {parsed.kind!r}")
    try:
        return handler(parsed.event, context)
    except ValueError as error:
        raise PermanentError(str(error)) from error


def handle(source: str, body: bytes, context: Context) -> Outcome:
    """Run one stored delivery through its handler."""
    return apply(read(source, body), context)


def runs_of(parsed: Parsed) -> list[str]:
    """The run a pipeline event is about, for its batch to lock up front."""
    run_id = getattr(getattr(parsed.event, "data", None), "run_id", None)
    return [run_id] if isinstance(run_id, str) else []


Item = tuple[inbox.Delivery, Parsed]


class Worker:
    """Process inbox events until stopped."""

    def __init__(self, settings: Settings, context: Context | None = None) -> None:
        self.settings = settings
        self.context = context or make_context(settings)
        self.next_reconciliation = 0.0
        self.unfinished: list[int] = []
        plan_statements_once()

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
        together: list[Item] = []
        alone: list[Item] = []
        for delivery in batch:
            try:
                parsed = read(delivery.source, delivery.body)
            except PermanentError as error:
                self._refused(delivery, error)
                continue
            (alone if parsed.kind in APPLIED_ALONE else together).append((delivery, parsed))
        alone.extend(self._apply_together(together))
        for delivery, parsed in alone:
            self._apply_alone(delivery, parsed)

    def _apply_together(self, items: list[Item]) -> list[Item]:
        """Apply events in one unit of work; return those left to apply one by one.

        An event whose handler fails is recorded as failed and the rest are applied again
        without it; after a few such failures the rest are left to apply alone, so that a
        handler failing on many events does not have the batch applied over and over. A
        failure while locking or committing blames no event: they are all left to apply alone.
        """
        for _ in range(BATCH_ATTEMPTS):
            if not items:
                return []
            outcomes: list[Outcome] = []
            applying: int | None = None
            try:
                with store.unit_of_work(run_id for _, parsed in items for run_id in runs_of(parsed)):
                    for index, (_, parsed) in enumerate(items):
                        applying = index
                        outcomes.append(apply(parsed, self.context))
                    applying = None
                    finished: dict[str, list[int]] = defaultdict(list)
                    for (delivery, _), outcome in zip(items, outcomes, strict=True):
                        finished[finished_status(outcome)].append(delivery.id)
                    for status, ids in finished.items():
                        inbox.finish(ids, status)
            except DatabaseUnavailable:
                raise
            except Exception as error:
                if applying is None:
                    log.warning("batch.failed events=%d error=%s", len(items), error)
                    return items
                delivery, _ = items.pop(applying)
                self._record_failure(delivery, error)
                continue
            for (delivery, _), outcome in zip(items, outcomes, strict=True):
                metrics.processed(delivery.kind, outcome)
            return []
        return items

    def _apply_alone(self, delivery: inbox.Delivery, parsed: Parsed) -> None:
        try:
            outcome = apply(parsed, self.context)
        except DatabaseUnavailable:
            raise
        except Exception as error:
            self._record_failure(delivery, error)
            return
        inbox.finish([delivery.id], finished_status(outcome))
        metrics.processed(delivery.kind, outcome)

    def _record_failure(self, delivery: inbox.Delivery, error: Exception) -> None:
        if isinstance(error, PermanentError):
            self._refused(delivery, error)
        else:
            self._failed(delivery, error)

    def _refused(self, delivery: inbox.Delivery, error: PermanentError) -> None:
        log.warning("event.refused id=%s kind=%s error=%s", delivery.id, delivery.kind, error)
        inbox.finish([delivery.id], "invalid", str(error))
        metrics.processed(delivery.kind, "invalid")

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
            metrics.dead(delivery.kind)
        else:
            log.warning(
                "event.failed id=%s kind=%s attempts=%d error=%s",
                delivery.id,
                delivery.kind,
                delivery.attempts,
                message,
            )
            inbox.retry_later(delivery.id, delivery.attempts, message)
            metrics.failed(delivery.kind)

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
        """Process events until ``stop`` is set, looking for new ones every poll interval while idle."""
        log.info("worker.started database=%s", store.get_engine().dialect.name)
        if autovacuum_off():
            # The inbox turns over every row it holds, and a batch's objectives are found by
            # run: without vacuum and fresh statistics both slow down as the tables grow.
            log.warning("database.autovacuum_off: turn autovacuum on, or VACUUM ANALYZE regularly")
        try:
            while not stop.is_set():
                try:
                    if self.settings.wandb_projects and time.monotonic() >= self.next_reconciliation:
                        self.next_reconciliation = time.monotonic() + self.settings.wandb_sync_interval
                        self.reconcile()
                    claimed = self.run_once()
                    if claimed == 0:
                        # Polled, not signalled: a NOTIFY on every delivery made the web's
                        # inserts commit one at a time (migration 0004).
                        stop.wait(self.settings.worker_poll_interval)
                    elif claimed < self.settings.worker_batch_size:
                        stop.wait(self.settings.worker_linger)
                except DatabaseUnavailable as error:
                    log.error("worker.database_unavailable error=%s", error)
                    stop.wait(1.0)
        finally:
            log.info("worker.stopped")
