"""The worker: claims inbox events, runs their handlers, retries failures, syncs W&B projects."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import store
from handlers import HANDLERS, IGNORED, Context, Outcome
from handlers.events import EventKind
from handlers.wandb import sync_project
from ingest import WANDB_API_KEY_UNSET, auth, metrics
from ingest.archive import Archiver
from ingest.parsing import Invalid, Malformed, Parsed, parse_stored
from ingest.settings import Settings
from ingest.wandb_api import WandbClient
from store import DatabaseUnavailable, autovacuum_off, deterministic, plan_statements_once

log = logging.getLogger("worker")


def make_context(settings: Settings, http_get: Callable[[str], object] | None = None) -> Context:
    """Build the handlers' context from the settings."""

    def wandb_client() -> WandbClient:
        return WandbClient(settings.wandb_base_url, settings.wandb_api_key)

    def confirm_subscription(message: dict[str, Any]) -> None:
        auth.confirm_subscription(message, http_get=http_get)

    return Context(
        settings=settings,
        wandb_client=wandb_client if settings.wandb_api_key else None,
        confirm_subscription=confirm_subscription,
    )


class PermanentError(Exception):
    """Retrying will not help: the stored event cannot be read or its data is refused."""


# Their handlers call out over the network: each is applied after the others, in its own
# transaction, so that a slow service holds no batch's locks.
CALLS_OUT = frozenset({EventKind.WANDB_AUTOMATION, EventKind.SNS_SUBSCRIPTION_CONFIRMATION})


# Seconds between archiving turns once nothing is left to archive. While a backlog lasts, a
# worker archives one batch between two claims, so events keep flowing.
ARCHIVE_INTERVAL = 600.0


# Times a batch is applied again without the event that failed, before the rest go alone.
BATCH_ATTEMPTS = 4


def finished_status(outcome: Outcome) -> str:
    return "ignored" if outcome is Outcome.IGNORED else "done"


def read(source: str, body: bytes, kind: str) -> Parsed:
    """Validate a stored delivery of ``kind`` again, as its handler will take it."""
    try:
        return parse_stored(source, body, kind)
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


def handle(source: str, body: bytes, context: Context, kind: str) -> Outcome:
    """Run one stored delivery of ``kind`` through its handler."""
    return apply(read(source, body, kind), context)


@dataclass(frozen=True)
class Replayed:
    """What replaying one stored delivery did: its new status, and the error when it failed."""

    status: str
    outcome: Outcome | None = None
    error: str | None = None


def replay_delivery(delivery: store.Delivery, context: Context) -> Replayed:
    """Run one stored delivery through its handler again and record the attempt on it.

    It ends done or ignored (with the warnings its handler recorded), invalid (its handler
    refuses it for good), dead (a failure that would repeat) or failed (the worker retries it),
    with the error. DatabaseUnavailable is raised, and nothing recorded.
    """
    warnings: list[str] = []
    try:
        with store.collecting_warnings() as warnings:
            outcome = handle(delivery.source, delivery.body, context, delivery.kind)
    except PermanentError as error:
        replayed = Replayed("invalid", error=str(error))
    except DatabaseUnavailable:
        raise
    except Exception as error:
        # As the worker records it: a failure that would repeat is dead, not retried.
        replayed = Replayed(
            "dead" if deterministic(error) else "failed", error=f"{type(error).__name__}: {error}"
        )
    else:
        replayed = Replayed(finished_status(outcome), outcome=outcome)
    store.set_delivery_status(delivery.id, replayed.status, replayed.error, warnings=warnings or None)
    return replayed


Item = tuple[store.Delivery, Parsed]


class Worker:
    """Process inbox events until stopped."""

    def __init__(self, settings: Settings, context: Context | None = None) -> None:
        self.settings = settings
        self.context = context or make_context(settings)
        self.next_reconciliation = 0.0
        self.archiver = Archiver(settings.inbox_archive) if settings.inbox_archive else None
        self.next_archiving = 0.0
        self.unfinished: list[int] = []
        # The events of the batch being processed, whose claim the heartbeat renews.
        self.holding: list[int] = []
        plan_statements_once()
        store.configure_molecule_analyses_kept(settings.molecule_analyses_kept)

    def run_once(self) -> int:
        """Claim and process one batch of due events; return how many were claimed."""
        if self.unfinished:
            # Claimed before the database went away: hand them back now that it answers,
            # rather than leave them waiting for their lease to run out.
            store.release_deliveries(self.unfinished)
            self.unfinished = []
        batch = store.claim_deliveries(
            self.settings.worker_batch_size, timedelta(seconds=self.settings.worker_lease)
        )
        self.holding = [delivery.id for delivery in batch]
        # What a batch allocates is freed by reference counting as it goes; the cyclic collector,
        # which a batch of molecules set off a dozen times, runs between batches instead.
        gc.disable()
        try:
            self._process(batch)
        except DatabaseUnavailable:
            self.unfinished = self.holding
            raise
        finally:
            gc.enable()
            self.holding = []
        return len(batch)

    def heartbeat(self, stop: threading.Event) -> None:
        """Renew the claim on the events being processed every quarter lease, until ``stop`` is set.

        A batch may take longer than the lease (a slow W&B sync): renewed, its events stay this
        worker's, and the lease can be short, so that a dead worker's events are taken over soon.
        """
        while not stop.wait(self.settings.worker_lease / 4):
            holding = self.holding
            if not holding:
                continue
            try:
                store.renew_deliveries(holding)
            except Exception as error:
                log.warning("lease.renew_failed events=%d error=%s", len(holding), error)

    def _process(self, batch: list[store.Delivery]) -> None:
        together: list[Item] = []
        alone: list[Item] = []
        for delivery in batch:
            try:
                parsed = read(delivery.source, delivery.body, delivery.kind)
            except PermanentError as error:
                self._refused(delivery, error)
                continue
            (alone if parsed.kind in CALLS_OUT else together).append((delivery, parsed))
        # A batch of molecules for a run new to the database writes what the unit changed
        # before its own statement: applied after the other events, it writes their changes
        # once, as the commit would have, not once before it and again at the commit.
        together.sort(key=lambda item: item[1].kind == EventKind.RUN_MOLECULES)
        # Before the unit of work: what a route prepares (RDKit's analysis of a batch of
        # molecules, about a millisecond a new SMILES) would hold every run of the batch locked.
        for delivery, parsed in together:
            if (route := HANDLERS.get(parsed.kind)) is None:
                continue
            try:
                route.prepare_event(parsed.event)
            except DatabaseUnavailable:
                raise
            except Exception as error:
                # Its handler meets the failure again, and it is recorded on the event.
                log.warning("event.prepare_failed id=%s kind=%s error=%s", delivery.id, delivery.kind, error)
        alone.extend(self._apply_together(together))
        for delivery, parsed in alone:
            self._apply_alone(delivery, parsed)

    def _apply_together(self, items: list[Item]) -> list[Item]:
        """Apply events in one unit of work; return those left to apply one by one.

        An event whose handler fails is recorded as failed and the rest are applied again
        without it; after a few such failures the rest are left to apply alone, so that a
        handler failing on many events does not have the batch applied over and over. A
        failure while locking or committing blames no event: they are all left to apply alone.
        An event that fails in a way that would repeat is left to apply alone too, before it
        is given up on: the changes a call makes are written by the next statement, whichever
        event that belongs to, and alone each event's failure is its own.
        """
        suspects: list[Item] = []
        for _ in range(BATCH_ATTEMPTS):
            if not items:
                return suspects
            outcomes: list[Outcome] = []
            warned: dict[int, list[str]] = {}
            applying: int | None = None
            try:
                # The commit need not wait for the disk (3-5 ms a batch on the benchmark's
                # machine): if PostgreSQL crashes before the commit is flushed, the batch's events
                # are lost as done with the writes they made, and their claim runs out and they
                # are applied again from the inbox, which the web wrote durably.
                with (
                    store.unit_of_work(
                        (parsed.run_id for _, parsed in items if parsed.run_id), flush_at_commit=False
                    ),
                    store.collecting_warnings() as warnings,
                ):
                    for index, (_, parsed) in enumerate(items):
                        applying = index
                        said = len(warnings)
                        outcomes.append(apply(parsed, self.context))
                        if len(warnings) != said:
                            warned[index] = warnings[said:]
                    applying = None
                    finished: dict[str, list[int]] = defaultdict(list)
                    for index, ((delivery, _), outcome) in enumerate(zip(items, outcomes, strict=True)):
                        if index in warned:
                            store.finish_deliveries(
                                [delivery.id], finished_status(outcome), warnings=warned[index]
                            )
                        else:
                            finished[finished_status(outcome)].append(delivery.id)
                    for status, ids in finished.items():
                        store.finish_deliveries(ids, status)
            except DatabaseUnavailable:
                raise
            except Exception as error:
                if applying is None:
                    log.warning("batch.failed events=%d error=%s", len(items), error)
                    return suspects + items
                item = items.pop(applying)
                if deterministic(error):
                    suspects.append(item)
                else:
                    self._record_failure(item[0], error)
                continue
            for (delivery, _), outcome in zip(items, outcomes, strict=True):
                metrics.processed(delivery.kind, outcome)
            return suspects
        return suspects + items

    def _apply_alone(self, delivery: store.Delivery, parsed: Parsed) -> None:
        try:
            with store.collecting_warnings() as warnings:
                outcome = apply(parsed, self.context)
        except DatabaseUnavailable:
            raise
        except Exception as error:
            self._record_failure(delivery, error)
            return
        store.finish_deliveries([delivery.id], finished_status(outcome), warnings=warnings or None)
        metrics.processed(delivery.kind, outcome)

    def _record_failure(self, delivery: store.Delivery, error: Exception) -> None:
        if isinstance(error, PermanentError):
            self._refused(delivery, error)
        elif deterministic(error):
            self._dead(delivery, error)
        else:
            self._failed(delivery, error)

    def _dead(self, delivery: store.Delivery, error: Exception) -> None:
        """Give up on an event: its failure would repeat, or it has had its attempts."""
        message = f"{type(error).__name__}: {error}"
        log.error(
            "event.dead id=%s kind=%s attempts=%d error=%s",
            delivery.id,
            delivery.kind,
            delivery.attempts,
            message,
        )
        store.finish_deliveries([delivery.id], "dead", message)
        metrics.dead(delivery.kind)

    def _refused(self, delivery: store.Delivery, error: PermanentError) -> None:
        log.warning("event.refused id=%s kind=%s error=%s", delivery.id, delivery.kind, error)
        store.finish_deliveries([delivery.id], "invalid", str(error))
        metrics.processed(delivery.kind, "invalid")

    def _failed(self, delivery: store.Delivery, error: Exception) -> None:
        if delivery.attempts >= self.settings.worker_max_attempts:
            self._dead(delivery, error)
        else:
            message = f"{type(error).__name__}: {error}"
            log.warning(
                "event.failed id=%s kind=%s attempts=%d error=%s",
                delivery.id,
                delivery.kind,
                delivery.attempts,
                message,
            )
            store.retry_deliveries_later(delivery.id, delivery.attempts, message)
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

    def archive(self) -> None:
        """Archive one batch of old processed deliveries; archive again soon while a backlog lasts."""
        assert self.archiver is not None
        before = store.utcnow() - timedelta(days=self.settings.inbox_retention_days)
        try:
            archived = self.archiver.archive(before, max_batches=1)
        except DatabaseUnavailable:
            raise
        except Exception as error:
            log.error("inbox.archive_failed archive=%s error=%s", self.archiver.target.location, error)
            self.next_archiving = time.monotonic() + ARCHIVE_INTERVAL
            return
        if archived.deliveries or archived.settled:
            log.info("inbox.archived %s", archived.summary(self.archiver.target.location))
        self.next_archiving = time.monotonic() + (0.0 if archived.full else ARCHIVE_INTERVAL)

    def run(self, stop: threading.Event) -> None:
        """Process events until ``stop`` is set, looking for new ones every poll interval while idle."""
        # What is alive now (the modules, the settings, SQLAlchemy's compiled statements) lives as
        # long as the process: frozen out of the collector, it is not walked again by every full
        # collection, which a batch of a thousand molecules, allocating thousands of objects, set
        # off often enough to take a quarter of the worker's CPU for the batch (bench/RESULTS.md).
        # RDKit too, loaded before the first claim rather than by the first batch of molecules.
        store.load_rdkit()
        gc.freeze()
        stopped = threading.Event()
        heartbeat = threading.Thread(target=self.heartbeat, args=(stopped,), name="heartbeat", daemon=True)
        heartbeat.start()
        log.info("worker.started database=%s", store.get_engine().dialect.name)
        if self.settings.wandb_syncs_impossible():
            log.warning(WANDB_API_KEY_UNSET)
        if autovacuum_off():
            # The inbox turns over every row it holds, and a batch's objectives are found by
            # run: without vacuum and fresh statistics both slow down as the tables grow.
            log.warning("database.autovacuum_off: turn autovacuum on, or VACUUM ANALYZE regularly")
        if self.archiver is None:
            log.warning("inbox.unbounded: INBOX_ARCHIVE is unset, so processed deliveries are never deleted")
        outage_wait = 0.0
        try:
            while not stop.is_set():
                try:
                    if self.settings.wandb_projects and time.monotonic() >= self.next_reconciliation:
                        self.next_reconciliation = time.monotonic() + self.settings.wandb_sync_interval
                        self.reconcile()
                    if self.archiver is not None and time.monotonic() >= self.next_archiving:
                        self.archive()
                    claimed = self.run_once()
                    if outage_wait:
                        log.info("worker.database_available")
                        outage_wait = 0.0
                    if claimed == 0:
                        # Polled, not signalled: a NOTIFY on every delivery made the web's
                        # inserts commit one at a time (migration 0004).
                        stop.wait(self.settings.worker_poll_interval)
                    elif claimed < self.settings.worker_batch_size:
                        stop.wait(self.settings.worker_linger)
                except DatabaseUnavailable as error:
                    # Logged once per outage, retried ever less often (up to 30 s): an outage
                    # never stops the worker.
                    if not outage_wait:
                        log.error("worker.database_unavailable retrying error=%s", error)
                    outage_wait = min(outage_wait * 2 or 1.0, 30.0)
                    stop.wait(outage_wait)
        finally:
            stopped.set()
            heartbeat.join()
            log.info("worker.stopped")
