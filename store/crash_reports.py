"""Crash-report objects in S3, applied in S3's own order (the sequencer) per object."""

from __future__ import annotations

from sqlalchemy import select

from store.database import transaction
from store.models import S3Object
from store.runs import RunState, utcnow

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
