"""The write path's classes, mapped onto the tables of store/schema.py.

Only what needs the ORM imports this module (sessions, ``select(Model)``): the reads run on the
Core tables, so that a read command never loads the ORM.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase, Mapped

from store import schema


class Base(DeclarativeBase):
    metadata = schema.metadata
    # Every model here is mapped to a Table (declarative types it as any FromClause, which
    # insert(), update() and .name do not accept).
    __table__: ClassVar[Table]


class TrainingRun(Base):
    """One training run: typed columns for common questions, JSON for everything."""

    __table__ = schema.training_runs

    run_id: Mapped[str]
    wandb_run_id: Mapped[str | None]
    wandb_entity: Mapped[str | None]
    wandb_project: Mapped[str | None]
    run_name: Mapped[str | None]
    status: Mapped[str]
    gradient_method: Mapped[str | None]
    batch_size: Mapped[int | None]
    learning_rate: Mapped[float | None]
    gradient_accumulation_steps: Mapped[int | None]
    num_epochs: Mapped[int | None]
    max_steps: Mapped[int | None]
    optimizer: Mapped[str | None]
    model_name: Mapped[str | None]
    num_objectives: Mapped[int | None]
    seed: Mapped[int | None]
    instance_type: Mapped[str | None]
    git_commit: Mapped[str | None]
    chain_of_custody_id: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    final_loss: Mapped[float | None]
    total_training_steps: Mapped[int | None]
    duration_seconds: Mapped[float | None]
    last_step: Mapped[int | None]
    error_message: Mapped[str | None]
    error_log_s3_key: Mapped[str | None]
    crash_report_s3_key: Mapped[str | None]
    crash_analysis_s3_key: Mapped[str | None]
    conversation_s3_key: Mapped[str | None]
    blog_post_url: Mapped[str | None]
    config_json: Mapped[dict[str, Any] | None]
    final_metrics_json: Mapped[dict[str, Any] | None]
    progress_json: Mapped[dict[str, Any] | None]
    warnings: Mapped[dict[str, str] | None]


class RunObjective(Base):
    """One objective of one run: its configuration and its final values."""

    __table__ = schema.run_objectives

    run_id: Mapped[str]
    objective_name: Mapped[str]
    objective_alias: Mapped[str | None]
    uniprot: Mapped[str | None]
    weight: Mapped[float | None]
    direction: Mapped[str | None]
    raw_mean: Mapped[float | None]
    normalized_mean: Mapped[float | None]
    raw_std: Mapped[float | None]
    normalized_std: Mapped[float | None]
    extra_metrics_json: Mapped[dict[str, Any] | None]
    status: Mapped[str | None]
    gradient_method: Mapped[str | None]


class S3Object(Base):
    """The latest notification seen for one crash-report object, ordered by S3's sequencer."""

    __table__ = schema.s3_objects

    id: Mapped[int]
    bucket: Mapped[str]
    key: Mapped[str]
    run_id: Mapped[str]
    event_name: Mapped[str]
    sequencer: Mapped[str | None]
    etag: Mapped[str | None]
    size: Mapped[int | None]
    updated_at: Mapped[datetime | None]


class InboxEvent(Base):
    """One authenticated delivery, kept byte for byte before it is acknowledged."""

    __table__ = schema.inbox_events

    id: Mapped[int]
    source: Mapped[str]
    kind: Mapped[str]
    dedupe_key: Mapped[str]
    received_at: Mapped[datetime]
    body: Mapped[bytes]
    headers: Mapped[dict[str, Any]]
    status: Mapped[str]
    attempts: Mapped[int]
    last_error: Mapped[str | None]
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    warnings: Mapped[list[str] | None]
    run_id: Mapped[str | None]


class WandbSyncState(Base):
    """How far each W&B project has been synced."""

    __table__ = schema.wandb_sync_state

    entity: Mapped[str]
    project: Mapped[str]
    synced_through: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    runs_seen: Mapped[int]


class Scaffold(Base):
    """One Bemis-Murcko scaffold found by any run, with its totals over every run."""

    __table__ = schema.scaffolds

    smiles: Mapped[str]
    generic_smiles: Mapped[str | None]
    runs: Mapped[int]
    molecules: Mapped[int]
    best_reward: Mapped[float | None]
    best_run_id: Mapped[str | None]
    best_smiles: Mapped[str | None]
    first_seen_at: Mapped[datetime]


class RunScaffold(Base):
    """One scaffold of one run: how often the run generated it, when, and how well it scored."""

    __table__ = schema.run_scaffolds

    run_id: Mapped[str]
    scaffold: Mapped[str]
    generic_scaffold: Mapped[str | None]
    molecules: Mapped[int]
    first_step: Mapped[int]
    last_step: Mapped[int]
    best_reward: Mapped[float | None]
    best_smiles: Mapped[str | None]
    objective_stats_json: Mapped[dict[str, Any] | None]


class RunMolecules(Base):
    """A run's molecule counts over every batch it recorded."""

    __table__ = schema.run_molecules

    run_id: Mapped[str]
    molecules: Mapped[int]
    valid: Mapped[int]
    invalid: Mapped[int]
    acyclic: Mapped[int]
    distinct_scaffolds: Mapped[int]
    batches: Mapped[int]


class RunMoleculeBatch(Base):
    """A batch of molecules already applied to its run: applying it again changes nothing."""

    __table__ = schema.run_molecule_batches

    run_id: Mapped[str]
    batch_id: Mapped[str]
    step: Mapped[int]
    molecules: Mapped[int]
    invalid: Mapped[int]
    applied_at: Mapped[datetime]


class RunHistory(Base):
    """What a run's metric history holds: its keys, the stride it is thinned to, its latest step."""

    __table__ = schema.run_histories

    run_id: Mapped[str]
    keys: Mapped[list[str]]
    stride: Mapped[int]
    points: Mapped[int]
    last_step: Mapped[int]
    wandb_history_lines: Mapped[int | None]


class RunHistoryChunk(Base):
    """The points of a run's history whose steps fall in [start, start + width), packed (store/history.py)."""

    __table__ = schema.run_history_chunks

    run_id: Mapped[str]
    start: Mapped[int]
    width: Mapped[int]
    points: Mapped[int]
    data: Mapped[bytes]
    extras: Mapped[dict[str, Any] | None]
