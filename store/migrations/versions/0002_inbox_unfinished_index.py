"""index only unfinished inbox events; store bodies uncompressed, out of line

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Claims scanned an index on (status, next_attempt_at) that keeps an entry for every version of
every row a worker updated: with 100,000 events processed, a claim read 100,000 dead entries
and 28,000 heap pages (156 ms). A partial index on id of the unfinished events, scanned in
claiming order, answers the same claim in 0.2 ms.

On PostgreSQL, bodies are stored out of line without compression (STORAGE EXTERNAL): pglz
saved 6% of the space and cost 0.03 ms of CPU per delivery, and every claim and finish copied
the compressed body into a new row version (claim + finish: 0.038 -> 0.025 ms per event).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UNFINISHED = sa.text("status IN ('pending', 'failed', 'processing')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE inbox_events ALTER COLUMN body SET STORAGE EXTERNAL")
    op.drop_index("ix_inbox_events_status_next_attempt_at", table_name="inbox_events")
    op.create_index(
        "ix_inbox_events_unfinished",
        "inbox_events",
        ["id"],
        postgresql_where=UNFINISHED,
        sqlite_where=UNFINISHED,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE inbox_events ALTER COLUMN body SET STORAGE EXTENDED")
    op.drop_index("ix_inbox_events_unfinished", table_name="inbox_events")
    op.create_index(
        "ix_inbox_events_status_next_attempt_at", "inbox_events", ["status", "next_attempt_at"], unique=False
    )
