"""run history: each run's metric history, bounded and packed in chunks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

run_histories holds one row per run with history: its keys, the stride its points are thinned to,
its latest step. run_history_chunks holds the points, a few dozen per row, packed as binary
(store/history.py): a row per point and key would cost five times the bytes of the values.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
)
RAW_BYTES = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "run_histories",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("keys", DOCUMENT, nullable=False),
        sa.Column("stride", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("wandb_history_lines", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.run_id"],
            name="fk_run_histories_run_id_training_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name="pk_run_histories"),
    )
    op.create_table(
        "run_history_chunks",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("data", RAW_BYTES, nullable=False),
        sa.Column("extras", DOCUMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.run_id"],
            name="fk_run_history_chunks_run_id_training_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "start", name="pk_run_history_chunks"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Packed doubles do not compress: trying on every write would only cost CPU. Uncompressed,
        # a read of a few keys' columns (substr) fetches only the TOAST pieces that hold them. A
        # chunk larger than about 2 kB goes whole to the TOAST table, whose 2 kB pieces fill its
        # pages; inline, two 3 kB rows would leave a quarter of each page empty.
        op.execute("ALTER TABLE run_history_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("run_history_chunks")
    op.drop_table("run_histories")
