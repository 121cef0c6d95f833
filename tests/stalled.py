"""Aging runs: make a run's last event look long past, as a run that stopped reporting has it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import update

import store
from store.models import TrainingRun


def backdate_runs(run_ids: Iterable[str], seconds: float) -> None:
    """Make the runs' last event look ``seconds`` old."""
    with store.get_engine().begin() as connection:
        connection.execute(
            update(TrainingRun)
            .where(TrainingRun.run_id.in_(list(run_ids)))
            .values(updated_at=store.utcnow() - timedelta(seconds=seconds))
        )
