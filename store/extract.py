"""From a launch config and a W&B summary to the typed columns.

One declarative table says where each typed column may be found; the first
candidate path present with a value of the right type wins, so the design
document's nested layout and a flat top-level config both fill the columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import BigInteger, Column, Float, Integer, String

from store.schema import run_objectives, training_runs

STATUSES = ("unknown", "launched", "running", "completed", "failed", "crashed", "killed", "preempted")
# A run known only from what arrived before its launch (crash-report keys, an attachment, an
# objective set through the API): it may never have been launched. Comparisons and statistics
# leave it out unless asked for it.
UNKNOWN = "unknown"

# Events arrive out of order: a status only moves up this ladder, so a late "running"
# never overwrites "completed". Among final states the most informative one wins.
STATUS_RANK = {
    UNKNOWN: -1,
    "launched": 0,
    "running": 1,
    "preempted": 2,
    "killed": 3,
    "failed": 4,
    "crashed": 5,
    "completed": 6,
}
FINAL_STATUSES = frozenset({"completed", "failed", "crashed", "killed", "preempted"})

WANDB_STATES = {"finished": "completed", "pending": "launched", "preempting": "running"}


def normalize_status(status: str) -> str:
    """Map a status or a W&B run state onto the vocabulary, or raise ValueError."""
    if not isinstance(status, str):
        raise ValueError(f"status must be a string, not {type(status).__name__}")
    name = status.strip().lower()
    name = WANDB_STATES.get(name, name)
    if name not in STATUS_RANK:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
    return name


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_finite_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer beyond a double's range
        return None
    # NaN breaks ordering and averages in SQL; the JSON keeps the exact value.
    return value if math.isfinite(value) else None


class Unfit:
    """A value of a typed column's kind that the column cannot hold: it stays empty, with a warning."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Unfit({self.reason!r})"


def describe(value: Any) -> str:
    """Name a value in a warning, briefly: a huge integer by its size, a long string by its length."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return repr(value)


Converter = Callable[[Any], Any]
IntegerConverter = Callable[[Any], int | Unfit | None]
TextConverter = Callable[[Any], str | Unfit | None]


def integer_column(column: Column[Any]) -> IntegerConverter:
    """Return a converter to an integer the column holds (32 or 64 bits), Unfit for one it cannot."""
    bits = 64 if isinstance(column.type, BigInteger) else 32
    assert isinstance(column.type, Integer)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def convert(value: Any) -> int | Unfit | None:
        if isinstance(value, float) and value - value != 0.0:
            return Unfit(f"{value!r} is not a finite number")
        number = as_int(value)
        if number is None or low <= number <= high:
            return number
        return Unfit(f"{describe(number)} is out of range for a {bits}-bit integer")

    return convert


def float_column(value: Any) -> float | Unfit | None:
    """Convert to a finite double, Unfit for a number no double column holds (NaN, infinite, too large)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return Unfit(f"{describe(value)} is out of range for a double")
    # NaN breaks ordering and averages in SQL.
    return number if number - number == 0.0 else Unfit(f"{number!r} is not a finite number")


def text_length(column: Column[Any]) -> int:
    """Return how many characters the text column holds."""
    assert isinstance(column.type, String) and column.type.length is not None
    return column.type.length


def text_column(column: Column[Any]) -> TextConverter:
    """Return a converter to a non-empty string no longer than the column, Unfit for a longer one."""
    length = text_length(column)

    def convert(value: Any) -> str | Unfit | None:
        if not isinstance(value, str) or not value:
            return None
        return value if len(value) <= length else Unfit(f"{describe(value)} is longer than {length}")

    return convert


def _name_in(column: Column[Any]) -> TextConverter:
    text = text_column(column)

    def convert(value: Any) -> str | Unfit | None:
        if isinstance(value, Mapping):
            return text(value.get("name")) or text(value.get("type"))
        return text(value)

    return convert


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    return None


def column_converter(column: Column[Any]) -> Converter:
    """Return the converter a typed column's values go through (any value of its kind, checked to fit)."""
    if isinstance(column.type, Integer):
        return integer_column(column)
    if isinstance(column.type, Float):
        return float_column
    return text_column(column)


_RUNS = training_runs.c
_OBJECTIVES = run_objectives.c


# column -> (candidate dotted paths in the config, converter)
CONFIG_COLUMNS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "run_name": (("run_name", "name", "wandb.name", "wandb.run_name"), text_column(_RUNS.run_name)),
    "wandb_entity": (("wandb_entity", "entity", "wandb.entity"), text_column(_RUNS.wandb_entity)),
    "wandb_project": (("wandb_project", "project", "wandb.project"), text_column(_RUNS.wandb_project)),
    "gradient_method": (
        (
            "training.gradient_method",
            "gradient_method",
            "training.grad_method",
            "optimization.gradient_method",
            "moo.gradient_method",
            "moo.method",
        ),
        text_column(_RUNS.gradient_method),
    ),
    "batch_size": (
        ("training.batch_size", "batch_size", "data.batch_size"),
        integer_column(_RUNS.batch_size),
    ),
    "learning_rate": (
        (
            "training.learning_rate",
            "learning_rate",
            "training.lr",
            "lr",
            "optimizer.lr",
            "optimizer.learning_rate",
        ),
        float_column,
    ),
    "gradient_accumulation_steps": (
        ("training.gradient_accumulation_steps", "gradient_accumulation_steps"),
        integer_column(_RUNS.gradient_accumulation_steps),
    ),
    "num_epochs": (
        ("training.num_epochs", "num_epochs", "training.epochs", "epochs"),
        integer_column(_RUNS.num_epochs),
    ),
    "max_steps": (
        ("training.max_steps", "max_steps", "training.total_steps"),
        integer_column(_RUNS.max_steps),
    ),
    "optimizer": (("training.optimizer", "optimizer", "optimizer.name"), _name_in(_RUNS.optimizer)),
    "model_name": (("model.name", "model_name", "model"), _name_in(_RUNS.model_name)),
    "seed": (("training.seed", "seed"), integer_column(_RUNS.seed)),
    "instance_type": (
        ("infra.instance_type", "instance_type", "ec2.instance_type", "aws.instance_type"),
        text_column(_RUNS.instance_type),
    ),
    "git_commit": (
        ("git_commit", "git.commit", "git_sha", "git.sha", "commit"),
        text_column(_RUNS.git_commit),
    ),
}

# column -> candidate keys of the (flat) W&B summary
SUMMARY_COLUMNS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "final_loss": (("train/loss", "loss"), float_column),
    "total_training_steps": (("_step",), integer_column(_RUNS.total_training_steps)),
    "duration_seconds": (("_wandb.runtime", "_runtime"), float_column),
}


def lookup(document: Mapping[str, Any], path: str) -> Any:
    """Return the value at a dotted path, trying the whole path as one flat key first."""
    if path in document:
        return document[path]
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _extract(document: Mapping[str, Any] | None, table: Mapping[str, Any]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    if not isinstance(document, Mapping):
        return columns
    for column, (paths, convert) in table.items():
        for path in paths:
            value = convert(lookup(document, path))
            if value is not None:
                columns[column] = value
                break
    return columns


def config_columns(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the typed columns found in a launch config."""
    columns = _extract(config, CONFIG_COLUMNS)
    if isinstance(config, Mapping) and isinstance(config.get("objectives"), list):
        columns["num_objectives"] = len(config["objectives"])
    return columns


def summary_columns(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return final_loss, total_training_steps and duration_seconds found in a W&B summary."""
    return _extract(summary, SUMMARY_COLUMNS)


OBJECTIVE_NAME_LENGTH = text_length(_OBJECTIVES.objective_name)
_OBJECTIVE_NAME = text_column(_OBJECTIVES.objective_name)
_OBJECTIVE_ALIAS = text_column(_OBJECTIVES.objective_alias)
_UNIPROT = text_column(_OBJECTIVES.uniprot)
_DIRECTION = text_column(_OBJECTIVES.direction)


def config_objectives(config: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Return the objective rows declared by ``config['objectives']``.

    A value its column cannot hold is an ``Unfit``; so is the name of an objective whose name is
    too long for a row of its own.
    """
    if not isinstance(config, Mapping) or not isinstance(config.get("objectives"), list):
        return []
    rows = []
    for entry in config["objectives"]:
        if not isinstance(entry, Mapping) or not _str(entry.get("name")):
            continue
        params = entry.get("params")
        if not isinstance(params, Mapping):
            params = {}
        rows.append(
            {
                "objective_name": _OBJECTIVE_NAME(entry["name"]),
                "objective_alias": _OBJECTIVE_ALIAS(entry.get("alias")),
                "uniprot": _UNIPROT(entry.get("uniprot")) or _UNIPROT(params.get("uniprot")),
                "weight": float_column(entry.get("weight")),
                "direction": _DIRECTION(entry.get("direction")),
            }
        )
    return rows


OBJECTIVE_COLUMNS = ("raw_mean", "normalized_mean", "raw_std", "normalized_std")
_DIRECTION_SUFFIXES = ("_maximize", "_minimize")


def objective_name_for_alias(alias: str, alias_to_name: Mapping[str, str]) -> str:
    """Map a summary alias to an objective name, via the run's own objectives when known."""
    if alias in alias_to_name:
        return alias_to_name[alias]
    for suffix in _DIRECTION_SUFFIXES:
        if alias.endswith(suffix):
            return alias[: -len(suffix)]
    return alias


def summary_objective_metrics(
    summary: Mapping[str, Any] | None, alias_to_name: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Group ``objectives/<alias>/<stat>`` summary keys by objective name."""
    metrics: dict[str, dict[str, Any]] = {}
    if not isinstance(summary, Mapping):
        return metrics
    # A summary holds a hundred keys or more, a few stats of each objective among them.
    names: dict[str, str] = {}
    for key, value in summary.items():
        if not isinstance(key, str) or not key.startswith("objectives/"):
            continue
        parts = key.split("/")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            continue
        _, alias, stat = parts
        name = names.get(alias)
        if name is None:
            name = names[alias] = objective_name_for_alias(alias, alias_to_name)
        metrics.setdefault(name, {})[stat] = value
    return metrics
