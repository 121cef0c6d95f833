"""Event handlers: one module per source, one table from event kind to handler.

Handlers turn validated events into store calls; they never see HTTP or SQL.
"""

from __future__ import annotations

from typing import Any

from handlers import pipeline, s3, sns, wandb
from handlers.base import Context, Handler, Outcome, Route
from handlers.events import (
    EventKind,
    RunAttachment,
    RunCrashed,
    RunEnded,
    RunLaunched,
    RunMolecules,
    RunProgress,
    RunStarted,
    S3Objects,
    SubscriptionMessage,
    WandbAutomation,
)

# Each kind's model beside its handler: the type checker refuses a handler that does not take
# the model, and a route refuses an event of another model at run time.
HANDLERS: dict[EventKind, Route[Any]] = {
    EventKind.RUN_LAUNCHED: Route(RunLaunched, pipeline.run_launched),
    EventKind.RUN_STARTED: Route(RunStarted, pipeline.run_started),
    EventKind.RUN_PROGRESS: Route(RunProgress, pipeline.run_progress),
    EventKind.RUN_FINISHED: Route(RunEnded, pipeline.run_ended),
    EventKind.RUN_FAILED: Route(RunEnded, pipeline.run_ended),
    EventKind.RUN_KILLED: Route(RunEnded, pipeline.run_ended),
    EventKind.RUN_CRASHED: Route(RunCrashed, pipeline.run_crashed),
    EventKind.RUN_ATTACHMENT: Route(RunAttachment, pipeline.run_attachment),
    EventKind.RUN_MOLECULES: Route(RunMolecules, pipeline.run_molecules, prepare=pipeline.analyse_molecules),
    EventKind.WANDB_AUTOMATION: Route(WandbAutomation, wandb.project_changed),
    EventKind.S3_OBJECTS: Route(S3Objects, s3.objects_changed),
    EventKind.SNS_SUBSCRIPTION_CONFIRMATION: Route(SubscriptionMessage, sns.confirm_subscription),
}

# Acknowledged and recorded, nothing to do: S3's test message, and SNS telling us we
# were unsubscribed (its SubscribeURL would subscribe again, so it is not followed).
IGNORED: frozenset[EventKind] = frozenset({EventKind.S3_TEST_EVENT, EventKind.SNS_UNSUBSCRIBE_CONFIRMATION})

__all__ = ["HANDLERS", "IGNORED", "Context", "Handler", "Outcome", "Route"]
