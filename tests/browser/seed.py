"""A database that a person would recognise: generated runs, and deliveries that failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

import store
from store import inbox
from store.models import TrainingRun
from testkit.factory import generate_runs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUNS = 240
SEED = 17
DAYS = 21


def seed_database(runs: int = RUNS) -> dict[str, int]:
    """Load generated runs and one failed and one dead delivery; return the two events' ids."""
    records = list(generate_runs(runs, seed=SEED))
    store.load_runs(records)
    # Spread the launches over three weeks, as a real project's are, so that "per day" has days.
    start = datetime(2026, 11, 15, 9, tzinfo=UTC)
    with store.get_engine().begin() as connection:
        for index, record in enumerate(records):
            created = start + timedelta(days=index % DAYS, minutes=7 * index)
            connection.execute(
                update(TrainingRun).where(TrainingRun.run_id == record["run_id"]).values(created_at=created)
            )
    body = (FIXTURES / "pipeline" / "run_launched__basic.json").read_bytes()
    failed, _ = inbox.record_delivery(
        "pipeline",
        "run.launched",
        "seed:failed",
        body,
        {},
        status="failed",
        last_error="OperationalError: the database was restarting",
    )
    dead, _ = inbox.record_delivery(
        "pipeline",
        "run.launched",
        "seed:dead",
        body,
        {},
        status="dead",
        last_error="OperationalError: connection refused (8 attempts)",
    )
    return {"failed": failed, "dead": dead}
