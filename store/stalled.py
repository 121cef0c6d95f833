"""Stalled runs: still ``running``, with no event for ``STALE_AFTER_SECONDS``.

A run's last event is its ``updated_at`` (set whenever an event changes the run; a run no event
changed since its creation has it equal to ``created_at``). The cut-off is taken from the
clock when a question is asked, and bound as a parameter: whether a run is stalled is never
stored, so no sweeper has to flip it when the clock passes the limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, case, func, literal, type_coerce

from store.schema import UTCDateTime, training_runs, utcnow

DEFAULT_STALE_AFTER_SECONDS = 900.0
_stale_after = DEFAULT_STALE_AFTER_SECONDS


def configure_stale_after(seconds: float) -> None:
    """Count a running run as stalled after ``seconds`` without an event (``STALE_AFTER_SECONDS``)."""
    global _stale_after
    if not seconds > 0:
        raise ValueError(f"stale_after_seconds must be positive, not {seconds!r}")
    _stale_after = float(seconds)


def stale_after_seconds() -> float:
    """Return how long a running run may go without an event before it counts as stalled."""
    return _stale_after


def cutoff(now: datetime | None = None) -> datetime:
    """Return the time before which a running run's last event makes it stalled."""
    return (now or utcnow()) - timedelta(seconds=_stale_after)


def last_event_at() -> ColumnElement[Any]:
    """The time of a run's last event, in SQL."""
    return func.coalesce(training_runs.c.updated_at, training_runs.c.created_at)


def stalled_condition(now: datetime | None = None) -> ColumnElement[bool]:
    """Whether a run is stalled, in SQL: never NULL, so its negation is its complement."""
    return and_(
        training_runs.c.status == "running",
        type_coerce(last_event_at(), UTCDateTime()) < literal(cutoff(now), UTCDateTime()),
    )


def stalled_value(now: datetime | None = None) -> ColumnElement[bool]:
    """Whether a run is stalled, as a column that reads back as a Python bool on both databases."""
    return type_coerce(case((stalled_condition(now), True), else_=False), Boolean())


def is_stalled(run: Mapping[str, Any], now: datetime | None = None) -> bool:
    """Tell whether a run (a dict with status, updated_at, created_at) is stalled."""
    if run.get("status") != "running":
        return False
    last = run.get("updated_at") or run.get("created_at")
    return last is not None and last < cutoff(now)
