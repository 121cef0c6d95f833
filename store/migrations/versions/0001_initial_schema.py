"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# Wake idle workers as soon as a delivery is committed (PostgreSQL only; SQLite workers poll).
NOTIFY_FUNCTION = """
CREATE FUNCTION inbox_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('inbox_events', '');
    RETURN NULL;
END;
$$
"""
NOTIFY_TRIGGER = """
CREATE TRIGGER inbox_events_notify AFTER INSERT ON inbox_events
FOR EACH STATEMENT EXECUTE FUNCTION inbox_events_notify()
"""


def upgrade() -> None:
    op.create_table(
        "inbox_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql"), nullable=False),
        sa.Column(
            "headers",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_events")),
        sa.UniqueConstraint("source", "dedupe_key", name=op.f("uq_inbox_events_source_dedupe_key")),
    )
    op.create_index(
        "ix_inbox_events_status_next_attempt_at", "inbox_events", ["status", "next_attempt_at"], unique=False
    )

    op.create_table(
        "s3_objects",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bucket", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("event_name", sa.String(length=128), nullable=False),
        sa.Column("sequencer", sa.String(length=64), nullable=True),
        sa.Column("etag", sa.String(length=128), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_s3_objects")),
        sa.UniqueConstraint("bucket", "key", name=op.f("uq_s3_objects_bucket_key")),
    )
    op.create_index(op.f("ix_s3_objects_run_id"), "s3_objects", ["run_id"], unique=False)

    op.create_table(
        "training_runs",
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("wandb_run_id", sa.String(length=255), nullable=True),
        sa.Column("wandb_entity", sa.String(length=255), nullable=True),
        sa.Column("wandb_project", sa.String(length=255), nullable=True),
        sa.Column("run_name", sa.String(length=512), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("gradient_method", sa.String(length=128), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("learning_rate", sa.Float(), nullable=True),
        sa.Column("gradient_accumulation_steps", sa.Integer(), nullable=True),
        sa.Column("num_epochs", sa.Integer(), nullable=True),
        sa.Column("max_steps", sa.BigInteger(), nullable=True),
        sa.Column("optimizer", sa.String(length=128), nullable=True),
        sa.Column("model_name", sa.String(length=255), nullable=True),
        sa.Column("num_objectives", sa.Integer(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("instance_type", sa.String(length=128), nullable=True),
        sa.Column("git_commit", sa.String(length=64), nullable=True),
        sa.Column("chain_of_custody_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("final_loss", sa.Float(), nullable=True),
        sa.Column("total_training_steps", sa.BigInteger(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_log_s3_key", sa.String(length=1024), nullable=True),
        sa.Column("crash_report_s3_key", sa.String(length=1024), nullable=True),
        sa.Column("crash_analysis_s3_key", sa.String(length=1024), nullable=True),
        sa.Column("conversation_s3_key", sa.String(length=1024), nullable=True),
        sa.Column("blog_post_url", sa.String(length=2048), nullable=True),
        sa.Column(
            "config_json",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "final_metrics_json",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "progress_json",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_training_runs")),
    )
    op.create_index(op.f("ix_training_runs_batch_size"), "training_runs", ["batch_size"], unique=False)
    op.create_index(
        op.f("ix_training_runs_chain_of_custody_id"), "training_runs", ["chain_of_custody_id"], unique=False
    )
    op.create_index(op.f("ix_training_runs_created_at"), "training_runs", ["created_at"], unique=False)
    op.create_index(
        op.f("ix_training_runs_gradient_method"), "training_runs", ["gradient_method"], unique=False
    )
    op.create_index(op.f("ix_training_runs_learning_rate"), "training_runs", ["learning_rate"], unique=False)
    op.create_index(op.f("ix_training_runs_model_name"), "training_runs", ["model_name"], unique=False)
    op.create_index(op.f("ix_training_runs_status"), "training_runs", ["status"], unique=False)
    op.create_index(op.f("ix_training_runs_wandb_project"), "training_runs", ["wandb_project"], unique=False)
    op.create_index(op.f("ix_training_runs_wandb_run_id"), "training_runs", ["wandb_run_id"], unique=False)

    op.create_table(
        "wandb_sync_state",
        sa.Column("entity", sa.String(length=255), nullable=False),
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("synced_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runs_seen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entity", "project", name=op.f("pk_wandb_sync_state")),
    )
    op.create_table(
        "run_objectives",
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("objective_name", sa.String(length=255), nullable=False),
        sa.Column("objective_alias", sa.String(length=255), nullable=True),
        sa.Column("uniprot", sa.String(length=64), nullable=True),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=True),
        sa.Column("raw_mean", sa.Float(), nullable=True),
        sa.Column("normalized_mean", sa.Float(), nullable=True),
        sa.Column("raw_std", sa.Float(), nullable=True),
        sa.Column("normalized_std", sa.Float(), nullable=True),
        sa.Column(
            "extra_metrics_json",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("gradient_method", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.run_id"],
            name=op.f("fk_run_objectives_run_id_training_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "objective_name", name=op.f("pk_run_objectives")),
    )
    op.create_index(
        "ix_run_objectives_name_normalized_mean",
        "run_objectives",
        ["objective_name", "normalized_mean", "run_id"],
        unique=False,
        postgresql_include=["status", "gradient_method", "direction"],
    )
    op.create_index(
        "ix_run_objectives_name_raw_mean",
        "run_objectives",
        ["objective_name", "raw_mean", "run_id"],
        unique=False,
        postgresql_include=["status", "gradient_method", "direction"],
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(NOTIFY_FUNCTION)
        op.execute(NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER inbox_events_notify ON inbox_events")
        op.execute("DROP FUNCTION inbox_events_notify()")
    for table in ("run_objectives", "wandb_sync_state", "training_runs", "s3_objects", "inbox_events"):
        op.drop_table(table)
