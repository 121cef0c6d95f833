"""drop the inbox's NOTIFY trigger: idle workers poll instead

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

A transaction that notifies takes one lock for the whole database cluster from its commit to
its end, WAL flush included: with the trigger on every insert, the web process's deliveries
committed one at a time. Measured under load (bench/RESULTS.md), 1,513-1,845 deliveries/s with
the trigger and 1,854-2,051 without it. Idle workers now look for new events every
WORKER_POLL_INTERVAL seconds (50 ms), as they always did on SQLite.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

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
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS inbox_events_notify ON inbox_events")
        op.execute("DROP FUNCTION IF EXISTS inbox_events_notify()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NOTIFY_FUNCTION)
        op.execute(NOTIFY_TRIGGER)
