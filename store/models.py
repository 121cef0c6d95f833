"""The training database's tables, as typed SQLAlchemy models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC there so that strings sort as times.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A Python None is SQL NULL, not the JSON value null, whichever way a row is written.
Document = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
RawBytes = LargeBinary().with_variant(BYTEA(), "postgresql")

str_id = Annotated[str, mapped_column(String(255))]
timestamp = Annotated[datetime | None, mapped_column(UTCDateTime())]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every model here is mapped to a Table (declarative types it as any FromClause, which
    # insert(), update() and .name do not accept).
    __table__: ClassVar[Table]


class TrainingRun(Base):
    """One training run: typed columns for common questions, JSON for everything."""

    __tablename__ = "training_runs"
    __table_args__ = (
        # Crash statistics by method and day (/api/stats) read this index alone.
        Index("ix_training_runs_created_at", "created_at", postgresql_include=["status", "gradient_method"]),
    )

    run_id: Mapped[str_id] = mapped_column(primary_key=True)
    wandb_run_id: Mapped[str | None] = mapped_column(String(255), index=True)
    wandb_entity: Mapped[str | None] = mapped_column(String(255))
    wandb_project: Mapped[str | None] = mapped_column(String(255), index=True)
    run_name: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(32), index=True)
    gradient_method: Mapped[str | None] = mapped_column(String(128), index=True)
    batch_size: Mapped[int | None] = mapped_column(Integer, index=True)
    learning_rate: Mapped[float | None] = mapped_column(Float, index=True)
    gradient_accumulation_steps: Mapped[int | None] = mapped_column(Integer)
    num_epochs: Mapped[int | None] = mapped_column(Integer)
    max_steps: Mapped[int | None] = mapped_column(BigInteger)
    optimizer: Mapped[str | None] = mapped_column(String(128))
    model_name: Mapped[str | None] = mapped_column(String(255), index=True)
    num_objectives: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    instance_type: Mapped[str | None] = mapped_column(String(128))
    git_commit: Mapped[str | None] = mapped_column(String(64))
    chain_of_custody_id: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[timestamp]
    completed_at: Mapped[timestamp]
    final_loss: Mapped[float | None] = mapped_column(Float)
    total_training_steps: Mapped[int | None] = mapped_column(BigInteger)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_log_s3_key: Mapped[str | None] = mapped_column(String(1024))
    crash_report_s3_key: Mapped[str | None] = mapped_column(String(1024))
    crash_analysis_s3_key: Mapped[str | None] = mapped_column(String(1024))
    conversation_s3_key: Mapped[str | None] = mapped_column(String(1024))
    blog_post_url: Mapped[str | None] = mapped_column(String(2048))
    config_json: Mapped[dict[str, Any] | None] = mapped_column(Document)
    final_metrics_json: Mapped[dict[str, Any] | None] = mapped_column(Document)
    progress_json: Mapped[dict[str, Any] | None] = mapped_column(Document)
    # Field -> why its value is not in its typed column (kept in the JSON instead); NULL when none.
    warnings: Mapped[dict[str, str] | None] = mapped_column(Document)


class RunObjective(Base):
    """One objective of one run: its configuration and its final values."""

    __tablename__ = "run_objectives"
    __table_args__ = (
        # Threshold queries and per-method comparisons read only these indexes: the run's status
        # and gradient method are copied here (the store keeps them in sync) so that comparing
        # methods on an objective never joins training_runs.
        Index(
            "ix_run_objectives_name_raw_mean",
            "objective_name",
            "raw_mean",
            "run_id",
            postgresql_include=["status", "gradient_method", "direction"],
        ),
        Index(
            "ix_run_objectives_name_normalized_mean",
            "objective_name",
            "normalized_mean",
            "run_id",
            postgresql_include=["status", "gradient_method", "direction"],
        ),
        # Comparing methods on an objective reads its values already grouped by method.
        Index("ix_run_objectives_name_method_raw_mean", "objective_name", "gradient_method", "raw_mean"),
    )

    run_id: Mapped[str_id] = mapped_column(
        ForeignKey("training_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    objective_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    objective_alias: Mapped[str | None] = mapped_column(String(255))
    uniprot: Mapped[str | None] = mapped_column(String(64))
    weight: Mapped[float | None] = mapped_column(Float)
    direction: Mapped[str | None] = mapped_column(String(16))
    raw_mean: Mapped[float | None] = mapped_column(Float)
    normalized_mean: Mapped[float | None] = mapped_column(Float)
    raw_std: Mapped[float | None] = mapped_column(Float)
    normalized_std: Mapped[float | None] = mapped_column(Float)
    extra_metrics_json: Mapped[dict[str, Any] | None] = mapped_column(Document)
    status: Mapped[str | None] = mapped_column(String(32))
    gradient_method: Mapped[str | None] = mapped_column(String(128))


class S3Object(Base):
    """The latest notification seen for one crash-report object, ordered by S3's sequencer."""

    __tablename__ = "s3_objects"
    __table_args__ = (UniqueConstraint("bucket", "key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(1024))
    run_id: Mapped[str_id] = mapped_column(index=True)
    event_name: Mapped[str] = mapped_column(String(128))
    sequencer: Mapped[str | None] = mapped_column(String(64))
    etag: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[timestamp]


# Inbox events a worker may still have to process.
UNFINISHED = ("pending", "failed", "processing")
_UNFINISHED_SQL = text("status IN ('pending', 'failed', 'processing')")


class InboxEvent(Base):
    """One authenticated delivery, kept byte for byte before it is acknowledged."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("source", "dedupe_key"),
        # Only the unfinished events, in claiming order. An index on status would keep an entry
        # for every version of every row a worker updated, and claims would wade through them.
        Index(
            "ix_inbox_events_unfinished", "id", postgresql_where=_UNFINISHED_SQL, sqlite_where=_UNFINISHED_SQL
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    body: Mapped[bytes] = mapped_column(RawBytes)
    headers: Mapped[dict[str, Any]] = mapped_column(Document)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[timestamp]
    claimed_at: Mapped[timestamp]
    processed_at: Mapped[timestamp]
    # What applying the event left out or found missing (a value too large for its column...).
    warnings: Mapped[list[str] | None] = mapped_column(Document)


class WandbSyncState(Base):
    """How far each W&B project has been synced."""

    __tablename__ = "wandb_sync_state"

    entity: Mapped[str] = mapped_column(String(255), primary_key=True)
    project: Mapped[str] = mapped_column(String(255), primary_key=True)
    synced_through: Mapped[timestamp]
    last_run_at: Mapped[timestamp]
    runs_seen: Mapped[int] = mapped_column(BigInteger, default=0)


class Scaffold(Base):
    """One Bemis-Murcko scaffold found by any run, with its totals over every run.

    The totals are kept as molecules are recorded, so that the scaffolds most runs found are
    read from an index instead of grouping every run's scaffolds (bench/scaffolds.py).
    """

    __tablename__ = "scaffolds"
    __table_args__ = (
        Index("ix_scaffolds_runs", "runs", "smiles"),
        Index("ix_scaffolds_best_reward", "best_reward", "smiles"),
    )

    # Canonical SMILES, without stereochemistry; "" for acyclic molecules.
    smiles: Mapped[str] = mapped_column(Text, primary_key=True)
    generic_smiles: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer)
    molecules: Mapped[int] = mapped_column(BigInteger)
    best_reward: Mapped[float | None] = mapped_column(Float)
    best_run_id: Mapped[str | None] = mapped_column(String(255))
    best_smiles: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunScaffold(Base):
    """One scaffold of one run: how often the run generated it, when, and how well it scored."""

    __tablename__ = "run_scaffolds"
    __table_args__ = (Index("ix_run_scaffolds_scaffold", "scaffold", "run_id"),)

    run_id: Mapped[str_id] = mapped_column(
        ForeignKey("training_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    scaffold: Mapped[str] = mapped_column(Text, primary_key=True)
    generic_scaffold: Mapped[str | None] = mapped_column(Text)
    molecules: Mapped[int] = mapped_column(BigInteger)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    best_reward: Mapped[float | None] = mapped_column(Float)
    best_smiles: Mapped[str | None] = mapped_column(Text)
    # {objective: {"count", "sum", "min", "max"}}: both extremes, because which one is best
    # depends on the objective's direction, which may arrive with the launch after the molecules.
    objective_stats_json: Mapped[dict[str, Any] | None] = mapped_column(Document)


class RunMolecules(Base):
    """A run's molecule counts over every batch it recorded."""

    __tablename__ = "run_molecules"

    run_id: Mapped[str_id] = mapped_column(
        ForeignKey("training_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    molecules: Mapped[int] = mapped_column(BigInteger)
    valid: Mapped[int] = mapped_column(BigInteger)
    invalid: Mapped[int] = mapped_column(BigInteger)
    acyclic: Mapped[int] = mapped_column(BigInteger)
    distinct_scaffolds: Mapped[int] = mapped_column(Integer)
    batches: Mapped[int] = mapped_column(Integer)


class RunMoleculeBatch(Base):
    """A batch of molecules already applied to its run: applying it again changes nothing."""

    __tablename__ = "run_molecule_batches"

    run_id: Mapped[str_id] = mapped_column(
        ForeignKey("training_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    batch_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)
    molecules: Mapped[int] = mapped_column(Integer)
    invalid: Mapped[int] = mapped_column(Integer)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunHistory(Base):
    """What a run's metric history holds: its keys, the stride it is thinned to, its latest step."""

    __tablename__ = "run_histories"

    run_id: Mapped[str_id] = mapped_column(
        ForeignKey("training_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    # The names of the keys, in the order their values are laid out in each chunk.
    keys: Mapped[list[str]] = mapped_column(Document)
    # Points are kept one per bucket of this many steps (the bucket's first), plus the latest.
    stride: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(Integer)
    last_step: Mapped[int] = mapped_column(BigInteger)
    # How many history lines W&B reported at the last sync that read the run's history.
    wandb_history_lines: Mapped[int | None] = mapped_column(BigInteger)


class RunHistoryChunk(Base):
    """The points of a run's history whose steps fall in [start, start + width), packed (store/history.py)."""

    __tablename__ = "run_history_chunks"

    run_id: Mapped[str_id] = mapped_column(
        ForeignKey("training_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    width: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(RawBytes)
    # {key index: {point index: value}} for values the packed data cannot hold; NULL when none.
    extras: Mapped[dict[str, Any] | None] = mapped_column(Document)
