"""Prometheus metrics: counters per process, inbox gauges read from the database at scrape time.

Under gunicorn the counters of all worker processes are summed through
prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set up by the
gunicorn config); the inbox gauges come from the database, which all processes share.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import store
from store import DatabaseUnavailable

RECEIVED = Counter("training_db_webhooks_received", "Deliveries received", ["source"])
REJECTED = Counter(
    "training_db_webhooks_rejected", "Deliveries refused or kept as invalid", ["source", "reason"]
)
DUPLICATES = Counter(
    "training_db_webhooks_duplicates", "Deliveries that were already in the inbox", ["source"]
)
PROCESSED = Counter("training_db_events_processed", "Events handled by workers", ["kind", "outcome"])
FAILED = Counter("training_db_events_failed", "Handler failures (retried later)", ["kind"])
DEAD = Counter("training_db_events_dead", "Events given up after the last attempt", ["kind"])


@functools.cache
def _child(counter: Counter, *values: str) -> Counter:
    # labels() checks the names and takes a lock on every call: each labelled child is kept.
    # A child survives gunicorn's fork: its value file is reopened in the worker.
    return counter.labels(*values)


def received(source: str) -> None:
    _child(RECEIVED, str(source)).inc()


def rejected(source: str, reason: str) -> None:
    _child(REJECTED, str(source), reason).inc()


def duplicate(source: str) -> None:
    _child(DUPLICATES, str(source)).inc()


def processed(kind: str, outcome: str) -> None:
    _child(PROCESSED, kind, str(outcome)).inc()


def failed(kind: str) -> None:
    _child(FAILED, kind).inc()


def dead(kind: str) -> None:
    _child(DEAD, kind).inc()


class InboxCollector(Collector):
    """Inbox events by source and status, and the age of the oldest unprocessed one."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        events = GaugeMetricFamily(
            "training_db_inbox_events", "Inbox events by status", labels=["source", "status"]
        )
        lag = GaugeMetricFamily("training_db_inbox_lag_seconds", "Age of the oldest unprocessed inbox event")
        up = GaugeMetricFamily("training_db_database_up", "Whether the database answered this scrape")
        try:
            for (source, status), count in sorted(store.inbox_counts().items()):
                events.add_metric([source, status], count)
            lag.add_metric([], store.oldest_pending_age())
            up.add_metric([], 1)
        except DatabaseUnavailable:
            up.add_metric([], 0)
        yield events
        yield lag
        yield up


def exposition() -> tuple[bytes, str]:
    """Render all metrics in the Prometheus text format."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        # prometheus_client leaves the collector's constructor unannotated.
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    output = generate_latest(registry) + generate_latest(_inbox_registry)
    return output, CONTENT_TYPE_LATEST


_inbox_registry = CollectorRegistry()
_inbox_registry.register(InboxCollector())
