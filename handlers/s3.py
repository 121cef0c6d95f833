"""S3 notifications of crash reports, whichever way they arrived."""

from __future__ import annotations

import re

import store
from handlers.base import Context, Outcome
from handlers.events import S3Objects

CRASH_FILES = {
    "error.log": "error_log_s3_key",
    "report.md": "crash_report_s3_key",
    "analysis.md": "crash_analysis_s3_key",
}


def crash_report_pattern(prefix: str) -> re.Pattern[str]:
    """Match ``{prefix}{run_id}/{error.log|report.md|analysis.md}``."""
    return re.compile(
        "^"
        + re.escape(prefix)
        + r"(?P<run_id>[A-Za-z0-9][A-Za-z0-9._:+=@-]*)/(?P<file>error\.log|report\.md|analysis\.md)$"
    )


def objects_changed(event: S3Objects, context: Context) -> Outcome:
    """Attach each created crash-report object to its run; ignore everything else."""
    pattern = crash_report_pattern(context.settings.crash_report_prefix)
    matched = False
    changed = False
    for obj in event.objects:
        match = pattern.match(obj.key)
        if not obj.created or match is None:
            continue
        matched = True
        changed |= store.record_crash_report_object(
            run_id=match["run_id"],
            column=CRASH_FILES[match["file"]],
            bucket=obj.bucket,
            key=obj.key,
            event_name=obj.event_name,
            sequencer=obj.sequencer,
            etag=obj.etag,
            size=obj.size,
        )
    if not matched:
        return Outcome.IGNORED
    return Outcome.APPLIED if changed else Outcome.UNCHANGED
