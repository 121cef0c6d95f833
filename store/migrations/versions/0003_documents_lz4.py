"""compress run documents with lz4 on PostgreSQL

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

A run's config and W&B summary are 3-6 KB of JSONB, over the 2 KB from which PostgreSQL
compresses a value, and each is written again whenever its run changes. With the default
pglz, compressing them was the single largest cost in PostgreSQL while workers applied events
(perf: 16% of its CPU); with lz4 the database's CPU per processed event fell from 0.55 to
0.44 ms (bench/RESULTS.md). Values written before keep their pglz compression, and both read
back alike. A server built without lz4 keeps pglz.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DOCUMENTS = {
    "training_runs": ("config_json", "final_metrics_json", "progress_json"),
    "run_objectives": ("extra_metrics_json",),
}


def _set_compression(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    supported = bind.exec_driver_sql(
        "SELECT %(method)s = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
        {"method": method},
    ).scalar()
    if not supported:
        return
    for table, columns in DOCUMENTS.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")
