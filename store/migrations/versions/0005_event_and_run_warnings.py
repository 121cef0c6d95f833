"""warnings on inbox events and on runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

A value that its typed column cannot hold (a 64-bit seed in a 32-bit column, a step past 2^63,
an infinite learning rate) leaves the column empty and is kept in the JSON document; the event
that brought it and the run say so. Both columns are NULL when there is nothing to say, so an
event or a run without warnings costs nothing more to write.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _document() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.add_column("training_runs", sa.Column("warnings", _document(), nullable=True))
    op.add_column("inbox_events", sa.Column("warnings", _document(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox_events") as batch:
        batch.drop_column("warnings")
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("warnings")
