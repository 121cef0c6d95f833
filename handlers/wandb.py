"""W&B automation webhooks: the payload names no run, so the whole project is synced."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import store
from handlers.base import Context, HandlerSettings, Outcome, WandbRun, outcome
from handlers.events import WandbAutomation

log = logging.getLogger(__name__)


def project_changed(event: WandbAutomation, context: Context) -> Outcome:
    """Sync the project the automation fired for."""
    return outcome(sync_project(event.entity_name, event.project_name, context) > 0)


def sync_project(entity: str, project: str, context: Context) -> int:
    """Upsert every run of the project updated since its last sync; return how many changed."""
    if context.wandb_client is None:
        raise RuntimeError("W&B sync needs WANDB_API_KEY")
    client = context.wandb_client()
    started = store.utcnow()
    seen = changed = 0
    for run in client.runs(entity, project, updated_since=default_since(entity, project, context.settings)):
        seen += 1
        changed += store_run(run)
    store.advance_wandb_sync_cursor(entity, project, started, seen)
    log.info("wandb.project_synced entity=%s project=%s seen=%d changed=%d", entity, project, seen, changed)
    return changed


def default_since(entity: str, project: str, settings: HandlerSettings) -> datetime | None:
    """Return where the next sync of the project starts: its last sync, minus the overlap."""
    cursor = store.wandb_sync_cursor(entity, project)
    # W&B's clock and ours differ, and runs update while we page: look back a margin.
    return cursor - timedelta(seconds=settings.wandb_sync_overlap) if cursor else None


def store_run(run: WandbRun) -> bool:
    """Merge one run as W&B reports it into the store; return whether anything changed."""
    return store.upsert_wandb_run(
        wandb_run_id=run.run_id,
        entity=run.entity,
        project=run.project,
        run_name=run.display_name,
        state=run.state,
        config=run.config,
        summary=run.summary,
        created_at=run.created_at,
    )
