"""Event handlers: one module per source, one table from event kind to handler.

Handlers turn validated events into store calls; they never see HTTP or SQL.
"""

from __future__ import annotations

from handlers import pipeline, s3, sns, wandb
from handlers.base import Context, Handler, Outcome
from ingest.events import EventKind

HANDLERS: dict[EventKind, Handler] = {
    EventKind.RUN_LAUNCHED: pipeline.run_launched,
    EventKind.RUN_STARTED: pipeline.run_started,
    EventKind.RUN_PROGRESS: pipeline.run_progress,
    EventKind.RUN_FINISHED: pipeline.run_ended,
    EventKind.RUN_FAILED: pipeline.run_ended,
    EventKind.RUN_KILLED: pipeline.run_ended,
    EventKind.RUN_CRASHED: pipeline.run_crashed,
    EventKind.RUN_ATTACHMENT: pipeline.run_attachment,
    EventKind.RUN_MOLECULES: pipeline.run_molecules,
    EventKind.WANDB_AUTOMATION: wandb.project_changed,
    EventKind.S3_OBJECTS: s3.objects_changed,
    EventKind.SNS_SUBSCRIPTION_CONFIRMATION: sns.confirm_subscription,
}

# Acknowledged and recorded, nothing to do: S3's test message, and SNS telling us we
# were unsubscribed (its SubscribeURL would subscribe again, so it is not followed).
IGNORED: frozenset[EventKind] = frozenset({EventKind.S3_TEST_EVENT, EventKind.SNS_UNSUBSCRIBE_CONFIRMATION})

__all__ = ["HANDLERS", "IGNORED", "Context", "Handler", "Outcome"]
