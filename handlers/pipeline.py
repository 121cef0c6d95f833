"""The training pipeline's own run events."""

from __future__ import annotations

import store
from handlers.base import Context, Outcome, outcome
from handlers.events import (
    RunAttachment,
    RunCrashed,
    RunEnded,
    RunLaunched,
    RunMolecules,
    RunProgress,
    RunStarted,
)

STATUS_OF_TYPE = {"run.finished": "completed", "run.failed": "failed", "run.killed": "killed"}


def run_launched(event: RunLaunched, _: Context) -> Outcome:
    """Store the run, its whole config and its objectives."""
    data = event.data
    return outcome(
        store.insert_run(
            data.run_id,
            wandb_run_id=data.wandb_run_id,
            config_dict=data.config,
            chain_of_custody_id=data.chain_of_custody_id,
            wandb_entity=data.wandb_entity,
            wandb_project=data.wandb_project,
            run_name=data.run_name,
            created_at=data.created_at or event.timestamp,
        )
    )


def run_started(event: RunStarted, _: Context) -> Outcome:
    """Mark the run running (never over a final status)."""
    return outcome(
        store.insert_run(event.data.run_id, wandb_run_id=event.data.wandb_run_id, status="running")
    )


def run_progress(event: RunProgress, context: Context) -> Outcome:
    """Merge the latest step's metrics into the run and add the point to its history."""
    data = event.data
    return outcome(
        store.record_progress(
            data.run_id,
            data.step,
            data.metrics,
            time=event.timestamp,
            history=context.settings.history_policy(),
        )
    )


def run_ended(event: RunEnded, _: Context) -> Outcome:
    """Store the final status, the whole summary and the objectives' final values."""
    status = event.data.status or STATUS_OF_TYPE[event.type]
    return outcome(store.update_run_status(event.data.run_id, status, final_metrics_json=event.data.summary))


def run_crashed(event: RunCrashed, _: Context) -> Outcome:
    """Mark the run crashed and keep its error and crash-report keys."""
    data = event.data
    return outcome(
        store.mark_crashed(
            data.run_id,
            error=data.error,
            error_log_s3_key=data.error_log_s3_key,
            crash_report_s3_key=data.crash_report_s3_key,
            crash_analysis_s3_key=data.crash_analysis_s3_key,
        )
    )


def run_attachment(event: RunAttachment, _: Context) -> Outcome:
    """Attach a conversation and/or a blog post to the run."""
    changed = False
    if event.data.conversation_s3_key:
        changed |= store.attach_conversation(event.data.run_id, event.data.conversation_s3_key)
    if event.data.blog_url:
        changed |= store.attach_blog_post(event.data.run_id, event.data.blog_url)
    return outcome(changed)


def analyse_molecules(event: RunMolecules) -> None:
    """Analyse the batch's molecules before its unit of work."""
    store.analyse_molecules(event.data.molecules)


def run_molecules(event: RunMolecules, _: Context) -> Outcome:
    """Add a batch of generated molecules to the run's scaffolds (a batch applied before changes nothing)."""
    data = event.data
    return outcome(store.record_molecules(data.run_id, data.batch_id, data.step, data.molecules))
