"""The scaffolds runs found: per run, across runs, by substructure, and diversity by group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

import store
from ingest.cli.common import open_database
from ingest.cli.runs import FORMATS, _echo_csv, _echo_json, _print_table, parse_where
from store import SCAFFOLD_CROSS_RUN_ORDERS, SCAFFOLD_RUN_ORDERS

RUN_COLUMNS = ("scaffold", "molecules", "first_step", "last_step", "best_reward", "best_smiles")
CROSS_RUN_COLUMNS = (
    "scaffold",
    "runs",
    "molecules",
    "best_reward",
    "best_run_id",
    "best_smiles",
    "first_seen_at",
)
DIVERSITY_COLUMNS = (
    "runs",
    "valid_molecules",
    "mean_scaffolds_per_run",
    "median_scaffolds_per_run",
    "scaffolds_per_1000_valid",
)


def _emit(rows: list[dict[str, Any]], columns: Sequence[str], output_format: str, title: str) -> None:
    if output_format == "json":
        _echo_json(rows)
        return
    values = [[row.get(name) for name in columns] for row in rows]
    if output_format == "csv":
        _echo_csv(values, columns)
        return
    _print_table(values, columns, title=title)


def _run_filter(filters: dict[str, dict[str, Any]], filter_text: str | None) -> Any:
    """The one run filter the store takes: the --where conditions or the --filter string."""
    if filters and filter_text is not None:
        raise click.UsageError("give --where or --filter, not both")
    return filter_text if filter_text is not None else filters or None


def _flatten_objectives(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Spread each row's objectives into objective.NAME.best and objective.NAME.mean columns."""
    names = sorted({name for row in rows for name in row["objectives"]})
    flat = []
    for row in rows:
        values = {key: value for key, value in row.items() if key != "objectives"}
        for name in names:
            objective = row["objectives"].get(name, {})
            values[f"objective.{name}.best"] = objective.get("best")
            values[f"objective.{name}.mean"] = objective.get("mean")
        flat.append(values)
    return flat, [column for name in names for column in (f"objective.{name}.best", f"objective.{name}.mean")]


@click.command()
@click.argument("run_id", required=False)
@click.option("--top", is_flag=True, help="The scaffolds most runs found (or with the best reward).")
@click.option(
    "--contains", metavar="PATTERN", help="Every scaffold containing this SMILES or SMARTS, with its runs."
)
@click.option("--find", metavar="SMILES", help="The scaffold of this molecule (or scaffold), with its runs.")
@click.option(
    "--where",
    "filters",
    multiple=True,
    callback=parse_where,
    metavar="FIELD OP VALUE",
    help="With --top: only runs matching, repeatable, as for `runs`.",
)
@click.option(
    "--filter",
    "filter_text",
    metavar="FILTER",
    help="With --top: only runs matching a filter, e.g. \"gradient_method in ('mgda', 'pcgrad')\".",
)
@click.option("--min-runs", type=click.IntRange(min=1), default=1, show_default=True, help="With --top.")
@click.option(
    "--order-by",
    type=click.Choice(sorted({*SCAFFOLD_RUN_ORDERS, *SCAFFOLD_CROSS_RUN_ORDERS})),
    help=f"For a run: {', '.join(SCAFFOLD_RUN_ORDERS)} (default molecules); "
    f"with --top: {', '.join(SCAFFOLD_CROSS_RUN_ORDERS)} (default runs).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many scaffolds."
)
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True)
def scaffolds(
    run_id: str | None,
    top: bool,
    contains: str | None,
    find: str | None,
    filters: dict[str, dict[str, Any]],
    filter_text: str | None,
    min_runs: int,
    order_by: str | None,
    limit: int,
    output_format: str,
) -> None:
    """Show the Bemis-Murcko scaffolds of a run's molecules, or across runs.

    `scaffolds RUN_ID`, `scaffolds --top [--where ...]`, `scaffolds --contains 'c1ccncc1'`,
    `scaffolds --find 'CC(=O)Oc1ccccc1C(=O)O'`.
    """
    modes = (run_id is not None, top, contains is not None, find is not None)
    if sum(modes) != 1:
        raise click.UsageError("give exactly one of RUN_ID, --top, --contains or --find")
    if (filters or filter_text is not None) and not top:
        raise click.UsageError("--where and --filter go with --top")
    run_filter = _run_filter(filters, filter_text)
    open_database()
    if run_id is not None:
        _run_scaffolds(run_id, order_by or "molecules", limit, output_format)
    elif top:
        if order_by is not None and order_by not in SCAFFOLD_CROSS_RUN_ORDERS:
            raise ValueError(f"--order-by with --top is one of {', '.join(SCAFFOLD_CROSS_RUN_ORDERS)}")
        found = store.query_scaffolds(run_filter, min_runs=min_runs, order_by=order_by or "runs", limit=limit)
        _emit(found, CROSS_RUN_COLUMNS, output_format, f"{len(found)} scaffold(s)")
    else:
        pattern = contains if contains is not None else find
        assert pattern is not None
        found = store.find_runs_with_scaffold(pattern, substructure=contains is not None, limit=limit)
        if output_format != "json":
            for row in found:
                row["run_ids"] = " ".join(run["run_id"] for run in row["found_by"])
        _emit(found, (*CROSS_RUN_COLUMNS[:-1], "run_ids"), output_format, f"{len(found)} scaffold(s)")


def _run_scaffolds(run_id: str, order_by: str, limit: int, output_format: str) -> None:
    if order_by not in SCAFFOLD_RUN_ORDERS:
        raise ValueError(f"--order-by for a run is one of {', '.join(SCAFFOLD_RUN_ORDERS)}")
    counts = store.get_run_molecules(run_id)
    if counts is None:
        raise click.ClickException(f"no molecules recorded for run {run_id}")
    found = store.get_run_scaffolds(run_id, order_by=order_by, limit=limit)
    if output_format == "json":
        _echo_json({"run_id": run_id, **counts, "scaffolds": found})
        return
    flat, objective_columns = _flatten_objectives(found)
    title = (
        f"run {run_id}: {counts['molecules']:,} molecules, {counts['valid']:,} valid, "
        f"{counts['invalid']:,} invalid, {counts['acyclic']:,} acyclic, "
        f"{counts['distinct_scaffolds']:,} distinct scaffolds"
    )
    _emit(flat, (*RUN_COLUMNS, *objective_columns), output_format, title)


@click.command()
@click.option("--by", default="gradient_method", show_default=True, help="The run field that groups runs.")
@click.option(
    "--where",
    "filters",
    multiple=True,
    callback=parse_where,
    metavar="FIELD OP VALUE",
    help="Only runs matching, repeatable, as for `runs`.",
)
@click.option("--filter", "filter_text", metavar="FILTER", help="Only runs matching a filter.")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True)
def diversity(
    by: str, filters: dict[str, dict[str, Any]], filter_text: str | None, output_format: str
) -> None:
    """Compare groups of runs on how many distinct scaffolds they found."""
    run_filter = _run_filter(filters, filter_text)
    open_database()
    groups = store.scaffold_diversity(by=by, filter=run_filter)
    _emit(groups, (by, *DIVERSITY_COLUMNS), output_format, f"scaffold diversity by {by}")
