"""inbox run affinity: each delivery names its run, so that a claim passes over the later events
of a run another worker is applying

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Two workers that claimed events of the same run took turns on its lock: with a run's events
arriving together, each waited out the other's whole batch. Deliveries stored before this
migration name no run and are claimed as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PROCESSING = sa.text("status = 'processing'")


def upgrade() -> None:
    op.add_column("inbox_events", sa.Column("run_id", sa.String(255), nullable=True))
    op.create_index(
        "ix_inbox_events_processing_run",
        "inbox_events",
        ["run_id"],
        postgresql_where=PROCESSING,
        sqlite_where=PROCESSING,
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_events_processing_run", table_name="inbox_events")
    op.drop_column("inbox_events", "run_id")
