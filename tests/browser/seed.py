"""A database that a person would recognise: generated runs, and deliveries that failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

import store
from store import inbox
from store.models import TrainingRun
from testkit.factory import generate_runs, generate_scaffolds, molecule_batches

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUNS = 240
SEED = 17
DAYS = 21
# Two runs in three generated molecules: not the first run, nor every third after it.
MOLECULE_RUNS = [f"run-{SEED:03d}-{index:07d}" for index in range(RUNS) if index % 3]


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


def seed_molecules() -> None:
    """Give two runs in three molecule batches, so that fronts and best runs have scaffolds to show."""
    pool = generate_scaffolds(60, seed=SEED)
    for index, run_id in enumerate(MOLECULE_RUNS):
        for batch in molecule_batches(run_id, 2, size=20, scaffolds=pool, seed=index):
            store.record_molecules(run_id, batch["batch_id"], batch["step"], batch["molecules"])
