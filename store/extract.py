"""From a launch config and a W&B summary to the typed columns.

One declarative table says where each typed column may be found; the first
candidate path present with a value of the right type wins, so the design
document's nested layout and a flat top-level config both fill the columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

STATUSES = ("launched", "running", "completed", "failed", "crashed", "killed", "preempted")

# Events arrive out of order: a status only moves up this ladder, so a late "running"
# never overwrites "completed". Among final states the most informative one wins.
STATUS_RANK = {
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
    value = float(value)
    # NaN breaks ordering and averages in SQL; the JSON keeps the exact value.
    return value if math.isfinite(value) else None


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    return None


def _name_of(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return _str(value.get("name")) or _str(value.get("type"))
    return _str(value)


# column -> (candidate dotted paths in the config, converter)
CONFIG_COLUMNS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "run_name": (("run_name", "name", "wandb.name", "wandb.run_name"), _str),
    "wandb_entity": (("wandb_entity", "entity", "wandb.entity"), _str),
    "wandb_project": (("wandb_project", "project", "wandb.project"), _str),
    "gradient_method": (
        (
            "training.gradient_method",
            "gradient_method",
            "training.grad_method",
            "optimization.gradient_method",
            "moo.gradient_method",
            "moo.method",
        ),
        _str,
    ),
    "batch_size": (("training.batch_size", "batch_size", "data.batch_size"), as_int),
    "learning_rate": (
        (
            "training.learning_rate",
            "learning_rate",
            "training.lr",
            "lr",
            "optimizer.lr",
            "optimizer.learning_rate",
        ),
        as_finite_float,
    ),
    "gradient_accumulation_steps": (
        ("training.gradient_accumulation_steps", "gradient_accumulation_steps"),
        as_int,
    ),
    "num_epochs": (("training.num_epochs", "num_epochs", "training.epochs", "epochs"), as_int),
    "max_steps": (("training.max_steps", "max_steps", "training.total_steps"), as_int),
    "optimizer": (("training.optimizer", "optimizer", "optimizer.name"), _name_of),
    "model_name": (("model.name", "model_name", "model"), _name_of),
    "seed": (("training.seed", "seed"), as_int),
    "instance_type": (
        ("infra.instance_type", "instance_type", "ec2.instance_type", "aws.instance_type"),
        _str,
    ),
    "git_commit": (("git_commit", "git.commit", "git_sha", "git.sha", "commit"), _str),
}

# column -> candidate keys of the (flat) W&B summary
SUMMARY_COLUMNS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "final_loss": (("train/loss", "loss"), as_finite_float),
    "total_training_steps": (("_step",), as_int),
    "duration_seconds": (("_wandb.runtime", "_runtime"), as_finite_float),
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


def config_objectives(config: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Return the objective rows declared by ``config['objectives']``."""
    if not isinstance(config, Mapping) or not isinstance(config.get("objectives"), list):
        return []
    rows = []
    for entry in config["objectives"]:
        if not isinstance(entry, Mapping) or not _str(entry.get("name")):
            continue
        params = entry.get("params") if isinstance(entry.get("params"), Mapping) else {}
        rows.append(
            {
                "objective_name": entry["name"],
                "objective_alias": _str(entry.get("alias")),
                "uniprot": _str(entry.get("uniprot")) or _str(params.get("uniprot")),
                "weight": as_finite_float(entry.get("weight")),
                "direction": _str(entry.get("direction")),
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
