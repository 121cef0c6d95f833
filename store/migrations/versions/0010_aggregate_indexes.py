"""Indexes that answer the read API's comparison and crash statistics by method without sorting

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

/api/compare by gradient method (the design document's query 3) sorted an objective's 49,000
values by method before its quartiles; ix_run_objectives_name_method_raw_mean hands them over in
that order. /api/stats (query 4) read every row of training_runs for its method, status and day;
ix_training_runs_created_at now carries the method and status (INCLUDE, PostgreSQL only), so an
index-only scan of it answers. Runs' status changes already update an index of each table (status
is indexed), so neither index costs a HOT update that was one before.

The indexes are built inside the migration's transaction (not CONCURRENTLY): writes to the two
tables wait for the builds, 0.14 s for 100,000 runs and 1.3 s for their 355,000 objective rows
on the development machine.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_run_objectives_name_method_raw_mean",
        "run_objectives",
        ["objective_name", "gradient_method", "raw_mean"],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_training_runs_created_at", table_name="training_runs")
        op.create_index(
            "ix_training_runs_created_at",
            "training_runs",
            ["created_at"],
            postgresql_include=["status", "gradient_method"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_training_runs_created_at", table_name="training_runs")
        op.create_index("ix_training_runs_created_at", "training_runs", ["created_at"])
    op.drop_index("ix_run_objectives_name_method_raw_mean", table_name="run_objectives")
