"""molecule analyses shared by the workers, so that RDKit analyses each distinct SMILES once

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Each worker kept RDKit's analyses (canonical SMILES, scaffold) only in its own memory: every
worker, and every worker started since, analysed the same molecules again. molecule_analyses
keeps them for all, found by a digest of the RDKit version and the SMILES; it is a cache whose
oldest rows are dropped past a bound (store/analyses.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "molecule_analyses",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("smiles", sa.Text(), nullable=True),
        sa.Column("scaffold", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_molecule_analyses"),
    )
    op.create_index("ix_molecule_analyses_digest", "molecule_analyses", ["digest"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_molecule_analyses_digest", table_name="molecule_analyses")
    op.drop_table("molecule_analyses")
