"""The training database's tables, as SQLAlchemy Core tables: the one definition of the schema.

The reads run on these tables alone; store/models.py maps the write path's classes onto them.
Nothing here imports the ORM or SQLAlchemy's PostgreSQL dialect: a read command on SQLite loads
neither (tests/cli/test_startup.py). PostgreSQL's types are chosen when a statement is compiled
for it, and its index options are added when PostgreSQL is first used (add_postgresql_options).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
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
from sqlalchemy.types import TypeEngine


def utcnow() -> datetime:
    return datetime.now(UTC)


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


class DocumentType(TypeDecorator[Any]):
    """A JSON document: JSONB on PostgreSQL, JSON elsewhere.

    A Python None is SQL NULL, not the JSON value null, whichever way a row is written.
    """

    impl = JSON(none_as_null=True)
    cache_ok = True
    # As JSON's: a document read back is a dict or a list.
    hashable = False

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            # Imported here: the dialect's package costs a SQLite process ~50 ms (its asyncio driver).
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        # As JSON does: a value compared with an expression of this type (a path's text) keeps
        # its own type, where a decorator's default would bind it as a document.
        return self.impl_instance.coerce_compared_value(op, value)


Document = DocumentType()
# BYTEA on PostgreSQL, BLOB on SQLite.
RawBytes = LargeBinary()
# Integer on SQLite, whose autoincrementing key must be its INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _run_id(*options: Any, **keywords: Any) -> Column[str]:
    return Column("run_id", String(255), *options, nullable=False, **keywords)


def _owned_by_run() -> Column[str]:
    """The run a row belongs to: part of its key, and deleted with the run."""
    return _run_id(ForeignKey("training_runs.run_id", ondelete="CASCADE"), primary_key=True)


training_runs = Table(
    "training_runs",
    metadata,
    # One training run: typed columns for common questions, JSON for everything.
    _run_id(primary_key=True),
    Column("wandb_run_id", String(255), index=True),
    Column("wandb_entity", String(255)),
    Column("wandb_project", String(255), index=True),
    Column("run_name", String(512)),
    Column("status", String(32), nullable=False, index=True),
    Column("gradient_method", String(128), index=True),
    Column("batch_size", Integer, index=True),
    Column("learning_rate", Float, index=True),
    Column("gradient_accumulation_steps", Integer),
    Column("num_epochs", Integer),
    Column("max_steps", BigInteger),
    Column("optimizer", String(128)),
    Column("model_name", String(255), index=True),
    Column("num_objectives", Integer),
    Column("seed", BigInteger),
    Column("instance_type", String(128)),
    Column("git_commit", String(64)),
    Column("chain_of_custody_id", String(255), index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime()),
    Column("completed_at", UTCDateTime()),
    Column("final_loss", Float),
    Column("total_training_steps", BigInteger),
    Column("duration_seconds", Float),
    Column("last_step", BigInteger),
    Column("error_message", Text),
    Column("error_log_s3_key", String(1024)),
    Column("crash_report_s3_key", String(1024)),
    Column("crash_analysis_s3_key", String(1024)),
    Column("conversation_s3_key", String(1024)),
    Column("blog_post_url", String(2048)),
    Column("config_json", Document),
    Column("final_metrics_json", Document),
    Column("progress_json", Document),
    # Field -> why its value is not in its typed column (kept in the JSON instead); NULL when none.
    Column("warnings", Document),
)
# Crash statistics by method and day (/api/stats) read this index alone: on PostgreSQL it also
# carries each run's status and gradient method (add_postgresql_options).
_runs_by_created_at = Index("ix_training_runs_created_at", training_runs.c.created_at)

# Threshold queries and per-method comparisons read only these indexes: the run's status and
# gradient method are copied into run_objectives (the store keeps them in sync) so that comparing
# methods on an objective never joins training_runs. PostgreSQL also keeps them in the indexes
# (add_postgresql_options).
_objectives_by_raw_mean = Index("ix_run_objectives_name_raw_mean", "objective_name", "raw_mean", "run_id")
_objectives_by_normalized_mean = Index(
    "ix_run_objectives_name_normalized_mean", "objective_name", "normalized_mean", "run_id"
)
run_objectives = Table(
    "run_objectives",
    metadata,
    # One objective of one run: its configuration and its final values.
    _owned_by_run(),
    Column("objective_name", String(255), primary_key=True),
    Column("objective_alias", String(255)),
    Column("uniprot", String(64)),
    Column("weight", Float),
    Column("direction", String(16)),
    Column("raw_mean", Float),
    Column("normalized_mean", Float),
    Column("raw_std", Float),
    Column("normalized_std", Float),
    Column("extra_metrics_json", Document),
    Column("status", String(32)),
    Column("gradient_method", String(128)),
    _objectives_by_raw_mean,
    _objectives_by_normalized_mean,
    # Comparing methods on an objective reads its values already grouped by method.
    Index("ix_run_objectives_name_method_raw_mean", "objective_name", "gradient_method", "raw_mean"),
)

s3_objects = Table(
    "s3_objects",
    metadata,
    # The latest notification seen for one crash-report object, ordered by S3's sequencer.
    Column("id", BigId, primary_key=True),
    Column("bucket", String(255), nullable=False),
    Column("key", String(1024), nullable=False),
    _run_id(index=True),
    Column("event_name", String(128), nullable=False),
    Column("sequencer", String(64)),
    Column("etag", String(128)),
    Column("size", BigInteger),
    Column("updated_at", UTCDateTime()),
    UniqueConstraint("bucket", "key"),
)

# An inbox event's statuses (store/inbox.py), and those of the events a worker may still have to
# process. Here rather than in store/inbox.py: the CLI offers them as choices when it starts.
INBOX_STATUSES = ("pending", "processing", "done", "ignored", "failed", "dead", "invalid")
UNFINISHED = ("pending", "failed", "processing")
_UNFINISHED_SQL = text("status IN ('pending', 'failed', 'processing')")
# Only the unfinished events, in claiming order. An index on status would keep an entry for every
# version of every row a worker updated, and claims would wade through them.
_unfinished_events = Index("ix_inbox_events_unfinished", "id", sqlite_where=_UNFINISHED_SQL)
_PROCESSING_SQL = text("status = 'processing'")
# The runs being applied now: a claim passes over their later events (store.inbox.claim).
_processing_runs = Index("ix_inbox_events_processing_run", "run_id", sqlite_where=_PROCESSING_SQL)
inbox_events = Table(
    "inbox_events",
    metadata,
    # One authenticated delivery, kept byte for byte before it is acknowledged.
    Column("id", BigId, primary_key=True),
    Column("source", String(32), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("dedupe_key", String(255), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("body", RawBytes, nullable=False),
    Column("headers", Document, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("next_attempt_at", UTCDateTime()),
    Column("claimed_at", UTCDateTime()),
    Column("processed_at", UTCDateTime()),
    # What applying the event left out or found missing (a value too large for its column...).
    Column("warnings", Document),
    # The run a pipeline event is about, as the web validated it; None for other sources.
    Column("run_id", String(255)),
    UniqueConstraint("source", "dedupe_key"),
    _unfinished_events,
    _processing_runs,
)

wandb_sync_state = Table(
    "wandb_sync_state",
    metadata,
    # How far each W&B project has been synced.
    Column("entity", String(255), primary_key=True),
    Column("project", String(255), primary_key=True),
    Column("synced_through", UTCDateTime()),
    Column("last_run_at", UTCDateTime()),
    Column("runs_seen", BigInteger, nullable=False, default=0),
)

scaffolds = Table(
    "scaffolds",
    metadata,
    # One Bemis-Murcko scaffold found by any run, with its totals over every run. The totals are
    # kept as molecules are recorded, so that the scaffolds most runs found are read from an
    # index instead of grouping every run's scaffolds (bench/scaffolds.py).
    # Canonical SMILES, without stereochemistry; "" for acyclic molecules.
    Column("smiles", Text, primary_key=True),
    Column("generic_smiles", Text),
    Column("runs", Integer, nullable=False),
    Column("molecules", BigInteger, nullable=False),
    Column("best_reward", Float),
    Column("best_run_id", String(255)),
    Column("best_smiles", Text),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Index("ix_scaffolds_runs", "runs", "smiles"),
    Index("ix_scaffolds_best_reward", "best_reward", "smiles"),
)

run_scaffolds = Table(
    "run_scaffolds",
    metadata,
    # One scaffold of one run: how often the run generated it, when, and how well it scored.
    _owned_by_run(),
    Column("scaffold", Text, primary_key=True),
    Column("generic_scaffold", Text),
    Column("molecules", BigInteger, nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("best_reward", Float),
    Column("best_smiles", Text),
    # {objective: {"count", "sum", "min", "max"}}: both extremes, because which one is best
    # depends on the objective's direction, which may arrive with the launch after the molecules.
    Column("objective_stats_json", Document),
    Index("ix_run_scaffolds_scaffold", "scaffold", "run_id"),
)

run_molecules = Table(
    "run_molecules",
    metadata,
    # A run's molecule counts over every batch it recorded.
    _owned_by_run(),
    Column("molecules", BigInteger, nullable=False),
    Column("valid", BigInteger, nullable=False),
    Column("invalid", BigInteger, nullable=False),
    Column("acyclic", BigInteger, nullable=False),
    Column("distinct_scaffolds", Integer, nullable=False),
    Column("batches", Integer, nullable=False),
)

molecule_analyses = Table(
    "molecule_analyses",
    metadata,
    # RDKit's analysis of a SMILES, kept for every worker (store/analyses.py): a cache, its
    # oldest rows (lowest seq) dropped past a bound.
    Column("seq", BigId, primary_key=True),
    # blake2b-128 of the RDKit version and the SMILES as given: a SMILES may be longer than an
    # index entry can hold.
    Column("digest", RawBytes, nullable=False),
    # Canonical SMILES and Bemis-Murcko scaffold; both NULL when RDKit cannot parse the SMILES.
    Column("smiles", Text),
    Column("scaffold", Text),
    Index("ix_molecule_analyses_digest", "digest", unique=True),
)

run_molecule_batches = Table(
    "run_molecule_batches",
    metadata,
    # A batch of molecules already applied to its run: applying it again changes nothing.
    _owned_by_run(),
    Column("batch_id", String(255), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("molecules", Integer, nullable=False),
    Column("invalid", Integer, nullable=False),
    Column("applied_at", UTCDateTime(), nullable=False),
)

run_histories = Table(
    "run_histories",
    metadata,
    # What a run's metric history holds: its keys, the stride it is thinned to, its latest step.
    _owned_by_run(),
    # The names of the keys, in the order their values are laid out in each chunk.
    Column("keys", Document, nullable=False),
    # Points are kept one per bucket of this many steps (the bucket's first), plus the latest.
    Column("stride", BigInteger, nullable=False),
    Column("points", Integer, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    # How many history lines W&B reported at the last sync that read the run's history.
    Column("wandb_history_lines", BigInteger),
)

run_history_chunks = Table(
    "run_history_chunks",
    metadata,
    # The points of a run's history whose steps fall in [start, start + width), packed (store/history.py).
    _owned_by_run(),
    Column("start", BigInteger, primary_key=True),
    Column("width", BigInteger, nullable=False),
    Column("points", Integer, nullable=False),
    Column("data", RawBytes, nullable=False),
    # {key index: {point index: value}} for values the packed data cannot hold; NULL when none.
    Column("extras", Document),
)

# The runs' columns, in the table's order, and those that hold JSON documents.
RUN_COLUMNS = tuple(column.key for column in training_runs.columns)
JSON_COLUMNS = ("config_json", "final_metrics_json", "progress_json", "warnings")
# An objective's fields as the store returns them, besides its run_id.
OBJECTIVE_FIELDS = (
    "objective_name",
    "objective_alias",
    "uniprot",
    "weight",
    "direction",
    "raw_mean",
    "normalized_mean",
    "raw_std",
    "normalized_std",
    "extra_metrics_json",
)


def add_postgresql_options() -> None:
    """Give the indexes their PostgreSQL options, before the schema is used on PostgreSQL.

    Not declared with the indexes: checking a dialect's options loads that dialect, and a command
    on SQLite would spend ~50 ms loading PostgreSQL's. Called by database.make_engine for a
    PostgreSQL URL and by the migrations; setting them again changes nothing.
    """
    for index in (_objectives_by_raw_mean, _objectives_by_normalized_mean):
        index.dialect_kwargs["postgresql_include"] = ["status", "gradient_method", "direction"]
    _runs_by_created_at.dialect_kwargs["postgresql_include"] = ["status", "gradient_method"]
    _unfinished_events.dialect_kwargs["postgresql_where"] = _UNFINISHED_SQL
    _processing_runs.dialect_kwargs["postgresql_where"] = _PROCESSING_SQL
