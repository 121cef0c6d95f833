"""per-scaffold tracking: the Bemis-Murcko scaffolds each run's molecules have

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

run_scaffolds holds one row per run and scaffold; scaffolds holds each scaffold once with its
totals over every run, kept as batches are applied, so that the scaffolds most runs found are
read from an index rather than by grouping every run's rows; run_molecules holds a run's
counts; run_molecule_batches the batches applied, which makes a batch applied again a no-op.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
)


def upgrade() -> None:
    op.create_table(
        "scaffolds",
        sa.Column("smiles", sa.Text(), nullable=False),
        sa.Column("generic_smiles", sa.Text(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("molecules", sa.BigInteger(), nullable=False),
        sa.Column("best_reward", sa.Float(), nullable=True),
        sa.Column("best_run_id", sa.String(255), nullable=True),
        sa.Column("best_smiles", sa.Text(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("smiles", name="pk_scaffolds"),
    )
    op.create_index("ix_scaffolds_runs", "scaffolds", ["runs", "smiles"])
    op.create_index("ix_scaffolds_best_reward", "scaffolds", ["best_reward", "smiles"])
    op.create_table(
        "run_scaffolds",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("scaffold", sa.Text(), nullable=False),
        sa.Column("generic_scaffold", sa.Text(), nullable=True),
        sa.Column("molecules", sa.BigInteger(), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("best_reward", sa.Float(), nullable=True),
        sa.Column("best_smiles", sa.Text(), nullable=True),
        sa.Column("objective_stats_json", DOCUMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.run_id"],
            name="fk_run_scaffolds_run_id_training_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "scaffold", name="pk_run_scaffolds"),
    )
    op.create_index("ix_run_scaffolds_scaffold", "run_scaffolds", ["scaffold", "run_id"])
    op.create_table(
        "run_molecules",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("molecules", sa.BigInteger(), nullable=False),
        sa.Column("valid", sa.BigInteger(), nullable=False),
        sa.Column("invalid", sa.BigInteger(), nullable=False),
        sa.Column("acyclic", sa.BigInteger(), nullable=False),
        sa.Column("distinct_scaffolds", sa.Integer(), nullable=False),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.run_id"],
            name="fk_run_molecules_run_id_training_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name="pk_run_molecules"),
    )
    op.create_table(
        "run_molecule_batches",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("batch_id", sa.String(255), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("molecules", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.run_id"],
            name="fk_run_molecule_batches_run_id_training_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "batch_id", name="pk_run_molecule_batches"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # As the runs' documents (migration 0003): cheaper to write than pglz.
        supported = (
            op.get_bind()
            .exec_driver_sql(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
            )
            .scalar()
        )
        if supported:
            op.execute("ALTER TABLE run_scaffolds ALTER COLUMN objective_stats_json SET COMPRESSION lz4")


def downgrade() -> None:
    op.drop_table("run_molecule_batches")
    op.drop_table("run_molecules")
    op.drop_index("ix_run_scaffolds_scaffold", table_name="run_scaffolds")
    op.drop_table("run_scaffolds")
    op.drop_index("ix_scaffolds_best_reward", table_name="scaffolds")
    op.drop_index("ix_scaffolds_runs", table_name="scaffolds")
    op.drop_table("scaffolds")
