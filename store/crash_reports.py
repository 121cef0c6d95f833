"""Crash-report objects in S3, applied in S3's own order (the sequencer) per object."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from store import event_warnings, extract
from store.database import transaction
from store.models import S3Object
from store.runs import RunState
from store.schema import utcnow

# What names a notification, and what it carries besides, as the columns hold them.
_NAMES = {
    name: extract.column_converter(S3Object.__table__.c[name]) for name in ("bucket", "key", "event_name")
}
_FIT = {name: extract.column_converter(S3Object.__table__.c[name]) for name in ("sequencer", "etag", "size")}

CRASH_COLUMNS = ("error_log_s3_key", "crash_report_s3_key", "crash_analysis_s3_key")


def sequencer_is_newer(new: str | None, old: str | None) -> bool:
    """Compare S3 sequencers: right-pad the shorter with zeros, then compare as hex strings."""
    if new is None or old is None:
        return True
    width = max(len(new), len(old))
    return new.upper().ljust(width, "0") >= old.upper().ljust(width, "0")


def record_crash_report_object(
    run_id: str,
    column: str,
    bucket: str,
    key: str,
    event_name: str,
    sequencer: str | None = None,
    etag: str | None = None,
    size: int | None = None,
) -> bool:
    """Attach a created crash-report object to its run, unless a later event for it was applied."""
    if column not in CRASH_COLUMNS:
        raise ValueError(f"unknown crash-report column {column!r}")
    for name, value in (("bucket", bucket), ("key", key), ("event_name", event_name)):
        if type(_NAMES[name](value)) is extract.Unfit:
            # No row can name the object: nothing to order its notifications by, nothing to attach.
            event_warnings.say(
                f"s3 object {name}: {extract.describe(value)} is too long; the notification is left out"
            )
            return False
    sequencer, etag, size = (
        _fitted(name, value) for name, value in (("sequencer", sequencer), ("etag", etag), ("size", size))
    )
    with transaction() as session:
        current = session.scalars(
            select(S3Object).where(S3Object.bucket == bucket, S3Object.key == key).with_for_update()
        ).first()
        if current is not None and not sequencer_is_newer(sequencer, current.sequencer):
            return False
        # A listing (replay s3) has no sequencer: the same object again keeps what its
        # notification recorded.
        relisted = current is not None and sequencer is None and current.etag == etag
        if current is None:
            current = S3Object(bucket=bucket, key=key, run_id=run_id)
            session.add(current)
        if not relisted:
            current.event_name, current.sequencer, current.etag, current.size = (
                event_name,
                sequencer,
                etag,
                size,
            )
            current.updated_at = utcnow()
        with RunState(session, run_id, with_objectives=False) as state:
            setattr(state.run, column, key)
    return state.changed


def _fitted(name: str, value: Any) -> Any:
    """Return the value, or None with a warning when its column cannot hold it."""
    if value is None:
        return None
    converted = _FIT[name](value)
    if type(converted) is extract.Unfit:
        event_warnings.say(f"s3 object {name}: {converted.reason}; left empty")
        return None
    return value
