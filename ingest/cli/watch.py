"""`training-db run RUN_ID --watch`: a live terminal view of a run's metrics as it trains.

The view asks the store for the points after the last step it holds, twice a second (the
question reads one run's history rows by key), and redraws with rich's Live display: the
step, each key's latest value, its range and a sparkline of its recent values.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

import store

SPARKS = "▁▂▃▄▅▆▇█"
POLL_SECONDS = 0.5
SPARK_WIDTH = 40
# The points first read; later ones arrive one poll at a time.
FIRST_POINTS = 200
MAX_KEYS = 12


def sparkline(values: Sequence[Any], width: int = SPARK_WIDTH) -> str:
    """Draw the last ``width`` values as block characters; a missing or non-finite value is a space."""
    recent = list(values)[-width:]
    numbers = [v for v in recent if _finite(v)]
    if not numbers:
        return " " * len(recent)
    low, high = min(numbers), max(numbers)
    span = high - low
    return "".join(
        SPARKS[round((v - low) / span * (len(SPARKS) - 1)) if span else len(SPARKS) // 2]
        if _finite(v)
        else " "
        for v in recent
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict) and "$float" in value:
        return str(value["$float"])
    return str(value)


class RunWatch:
    """What the view shows of one run: its status and latest step, and the points read so far."""

    def __init__(self, run_id: str, patterns: Sequence[str] | None) -> None:
        self.run_id = run_id
        self.patterns = list(patterns or [])
        # The latest history answer: it carries the run's status, stalled flag and latest step.
        self.latest: dict[str, Any] | None = None
        self.steps: list[int] = []
        self.series: dict[str, list[Any]] = {}

    def poll(self) -> bool:
        """Read the points after the last step held, with the run's status; tell whether the run exists."""
        since = self.steps[-1] if self.steps else None
        history = store.get_run_history(
            self.run_id, since_step=since, max_points=None if since is not None else FIRST_POINTS
        )
        self.latest = history
        if history is None:
            return False
        for index, step in enumerate(history["steps"]):
            if since is not None and step <= since:
                continue
            known = len(self.steps)
            self.steps.append(step)
            for key, values in history["series"].items():
                column = self.series.setdefault(key, [None] * known)
                column.append(values[index])
            for column in self.series.values():
                if len(column) < len(self.steps):
                    column.append(None)
        return True

    @property
    def ended(self) -> bool:
        return self.latest is None or self.latest["status"] in store.FINAL_RUN_STATUSES

    def keys(self) -> list[str]:
        keys = sorted(self.series)
        if self.patterns:
            keys = [k for k in keys if any(fnmatch.fnmatchcase(k, p) for p in self.patterns)]
        return keys[:MAX_KEYS]

    def render(self) -> Group:
        run = self.latest or {}
        status = run.get("status", "?")
        if run.get("stalled"):
            status += " (stalled)"
        step = self.steps[-1] if self.steps else run.get("last_step")
        heading = Text.assemble(
            ("run ", "bold"),
            (self.run_id, "bold cyan"),
            f"  status {status}  step {'' if step is None else step}  points {len(self.steps)}",
        )
        table = Table("metric", "latest", "min", "max", f"last {SPARK_WIDTH} points", box=None)
        for key in self.keys():
            values = self.series[key]
            latest = next((v for v in reversed(values) if v is not None), None)
            numbers = [v for v in values if _finite(v)]
            table.add_row(
                key,
                _shown(latest),
                _shown(min(numbers)) if numbers else "",
                _shown(max(numbers)) if numbers else "",
                sparkline(values),
            )
        if not self.series:
            table.add_row("(no points yet)", "", "", "", "")
        return Group(heading, table)


def watch(run_id: str, patterns: Sequence[str] | None, console: Console | None = None) -> str:
    """Show the run live until it ends or Ctrl-C; return the line to print last."""
    view = RunWatch(run_id, patterns)
    if not view.poll():
        raise ValueError(f"no run {run_id}")
    console = console or Console()
    try:
        with Live(view.render(), console=console, auto_refresh=False) as live:
            while not view.ended:
                time.sleep(POLL_SECONDS)
                view.poll()
                live.update(view.render(), refresh=True)
    except KeyboardInterrupt:
        return f"stopped watching run {run_id}"
    return f"run {run_id} ended: {view.latest['status'] if view.latest else 'deleted'}"
