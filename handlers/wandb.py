"""W&B automation webhooks: the payload names no run, so the whole project is synced."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import store
from handlers.base import Context, Outcome, outcome
from ingest.events import WandbAutomation
from ingest.settings import Settings

if TYPE_CHECKING:  # the W&B client's model, named for types only: handlers get the client from their context
    from ingest.wandb_api import WandbRun

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
    policy = context.settings.history_policy()
    for run in client.runs(entity, project, updated_since=default_since(entity, project, context.settings)):
        seen += 1
        changed += store_run(run, history_of(client, run, policy), policy)
    store.advance_wandb_sync_cursor(entity, project, started, seen)
    log.info("wandb.project_synced entity=%s project=%s seen=%d changed=%d", entity, project, seen, changed)
    return changed


def default_since(entity: str, project: str, settings: Settings) -> datetime | None:
    """Return where the next sync of the project starts: its last sync, minus the overlap."""
    cursor = store.wandb_sync_cursor(entity, project)
    # W&B's clock and ours differ, and runs update while we page: look back a margin.
    return cursor - timedelta(seconds=settings.wandb_sync_overlap) if cursor else None


def history_of(client: Any, run: WandbRun, policy: store.HistoryPolicy) -> list[dict[str, Any]] | None:
    """Read a sample of the run's history when it grew since it was last read, else None."""
    if not run.history_lines or run.history_lines <= (store.wandb_history_lines(run.run_id, run.config) or 0):
        return None
    # Sorted, so that a run with more keys than the history keeps always gives the same ones.
    keys = [key for key in run.history_keys if policy.keeps(key)][: policy.max_keys]
    rows: list[dict[str, Any]] = client.sampled_history(
        run.entity, run.project, run.run_id, keys, policy.max_points
    )
    return rows


def store_run(
    run: WandbRun, history: list[dict[str, Any]] | None = None, policy: store.HistoryPolicy | None = None
) -> bool:
    """Merge one run as W&B reports it, with a sample of its history, into the store; return whether
    anything changed."""
    return store.upsert_wandb_run(
        wandb_run_id=run.run_id,
        entity=run.entity,
        project=run.project,
        run_name=run.display_name,
        state=run.state,
        config=run.config,
        summary=run.summary,
        created_at=run.created_at,
        history=history,
        history_lines=run.history_lines if history is not None else None,
        history_policy=policy or store.DEFAULT_POLICY,
    )
