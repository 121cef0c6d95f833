"""Working with the database: list, show, compare and export runs; inbox events and statistics.

JSON output is strict JSON: times are ISO-8601 strings and NaN and Infinity are written as null.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

import store
from ingest.cli.common import open_database, progress
from ingest.sources import Source

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow (parquet export) and rich (tables) are imported where used: loading them took longer
# than a `runs` query itself, and neither is needed by every command of this module. So are the
# store's objectives and reads modules (store.RESULT_COLUMNS, store.list_objectives), which load
# the ORM that a plain `runs` does without (tests/cli/test_startup.py).
from store import DOCUMENTS, SCALAR_COLUMNS, SCALAR_TYPES, resolve_field

WHERE = re.compile(r"(?P<field>[^<>=!~]+?)\s*(?P<op>>=|<=|!=|=|>|<|~)\s*(?P<value>.*)", re.DOTALL)
WHERE_OPERATORS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "~": "like"}
OBJECTIVE_OPERATORS = {">=": "min", ">": "gt", "<=": "max", "<": "lt"}
# What an objective query can also filter on: query_runs_by_objectives takes these two as equalities.
OBJECTIVE_PASSTHROUGH = ("gradient_method", "status")
TABLE_COLUMNS = (
    "run_id",
    "status",
    "gradient_method",
    "batch_size",
    "learning_rate",
    "final_loss",
    "created_at",
)
FORMATS = ("table", "json", "csv")
FILTER_HELP = (
    "A filter in the filter language (README: Filter language), e.g. "
    "\"status = 'completed' and (batch_size >= 64 or summary.train/loss < 0.5)\"."
)
EXPORT_PAGE = 500


def _literal(text: str) -> Any:
    """Read a JSON number, boolean or null (or a quoted string); anything else is the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, bool | int | float | str) else text


def parse_where(
    _: click.Context, __: click.Parameter, conditions: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Turn `--where FIELD OP VALUE` conditions into the store's filters."""
    filters: dict[str, dict[str, Any]] = {}
    for condition in conditions:
        match = WHERE.fullmatch(condition.strip())
        if match is None:
            raise click.BadParameter(f"{condition!r} is not FIELD OP VALUE (OP: = != > >= < <= ~)")
        name, symbol, value = match["field"].strip(), match["op"], match["value"].strip()
        operator = WHERE_OPERATORS[symbol]
        operations = filters.setdefault(name, {})
        if operator in operations:
            raise click.BadParameter(f"{name} {symbol} is given twice")
        operations[operator] = value if operator == "like" else _literal(value)
    return filters


def parse_objectives(
    _: click.Context, __: click.Parameter, conditions: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Turn `--objective NAME OP NUMBER` thresholds into query_runs_by_objectives' filters."""
    thresholds: dict[str, dict[str, float]] = {}
    for condition in conditions:
        match = WHERE.fullmatch(condition.strip())
        if match is None or match["op"] not in OBJECTIVE_OPERATORS:
            raise click.BadParameter(f"{condition!r} is not NAME OP NUMBER (OP: >= > <= <)")
        try:
            number = float(match["value"])
        except ValueError:
            raise click.BadParameter(f"{match['value']!r} in {condition!r} is not a number") from None
        thresholds.setdefault(match["field"].strip(), {})[OBJECTIVE_OPERATORS[match["op"]]] = number
    return thresholds


def plain(value: Any) -> Any:
    """Make a value strict JSON: times as ISO-8601, NaN and Infinity as null, a None key as "null"."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {"null" if key is None else str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, Mapping | list):
        return json.dumps(plain(value))
    return str(value)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping | list):
        return json.dumps(plain(value))
    return value


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(plain(value), indent=2, ensure_ascii=False))


def _print_table(rows: Iterable[Sequence[Any]], headers: Sequence[str], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(_shown(value) for value in row))
    Console().print(table)


def column_value(run: Mapping[str, Any], name: str) -> Any:
    """Return a run's field, a value at a JSON path (config.a.b, summary.train/loss), objective.NAME.METRIC
    or whether it is stalled."""
    if name in run:
        return run[name]
    if name == "stalled":
        return store.is_stalled(run)
    prefix, _, path = name.partition(".")
    if prefix == "objective":
        objective, _, metric = path.rpartition(".")
        return run.get("objectives", {}).get(objective, {}).get(metric)
    node = run.get(DOCUMENTS.get(prefix, ""))
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _check_columns(columns: Sequence[str], by_objectives: bool) -> None:
    for name in columns:
        if name == "stalled":
            continue
        if name.startswith("objective."):
            if not by_objectives:
                raise ValueError(f"column {name!r} needs --objective")
            continue
        field = resolve_field(name)
        if by_objectives and (field.is_json or name not in store.RESULT_COLUMNS):
            raise ValueError(
                f"column {name!r} is not available with --objective: use {', '.join(store.RESULT_COLUMNS)} "
                "or objective.NAME.METRIC"
            )


def _objective_runs(
    filters: dict[str, dict[str, Any]],
    where: str | None,
    thresholds: dict[str, dict[str, float]],
    metric: str,
    order_by: Sequence[str],
    limit: int,
) -> list[dict[str, Any]]:
    if order_by:
        raise ValueError("--order-by does not combine with --objective: those runs come best first")
    passed: dict[str, Any] = {}
    for name, operations in filters.items():
        if name not in OBJECTIVE_PASSTHROUGH or set(operations) != {"eq"}:
            raise ValueError(
                f"--where {name} does not combine with --objective; only "
                f"{' and '.join(f'{field}=VALUE' for field in OBJECTIVE_PASSTHROUGH)} do"
            )
        passed[name] = str(operations["eq"])
    found = store.query_runs_by_objectives(thresholds, metric=metric, limit=limit, where=where, **passed)
    if not found:
        _check_objective_names(thresholds)
    return found


def _check_objective_names(thresholds: Iterable[str]) -> None:
    """Refuse an objective no run has, suggesting the closest names, rather than answer "0 run(s)"."""
    names = [objective["name"] for objective in store.list_objectives()]
    by_folded = {name.casefold(): name for name in names}
    for wanted in thresholds:
        if wanted in names:
            continue
        closest = [
            by_folded[n] for n in difflib.get_close_matches(wanted.casefold(), by_folded, n=3, cutoff=0.4)
        ]
        hint = (
            f"; did you mean {', '.join(closest)}?" if closest else f"; objectives: {', '.join(names[:10])}"
        )
        raise ValueError(f"no run has the objective {wanted!r}{hint if names else ''}")


def _emit_rows(
    rows: list[dict[str, Any]], columns: Sequence[str] | None, default: Sequence[str], output_format: str
) -> None:
    if output_format == "json":
        _echo_json(rows if columns is None else [{c: column_value(r, c) for c in columns} for r in rows])
        return
    shown = list(columns or default)
    values = ([column_value(run, name) for name in shown] for run in rows)
    if output_format == "csv":
        _echo_csv(values, shown)
        return
    _print_table(
        (_marked(run, row, shown) for run, row in zip(rows, values, strict=True)),
        shown,
        f"{len(rows)} run(s)",
    )


def _marked(run: Mapping[str, Any], row: list[Any], columns: Sequence[str]) -> list[Any]:
    """Show a stalled run's status as such in a table."""
    if "status" in columns and store.is_stalled(run):
        row[columns.index("status")] = f"{run['status']} (stalled)"
    return row


def _echo_csv(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(headers)
    writer.writerows([_csv_cell(value) for value in row] for row in rows)
    click.echo(text.getvalue(), nl=False)


@click.command()
@click.option(
    "--where",
    "filters",
    multiple=True,
    callback=parse_where,
    metavar="FIELD OP VALUE",
    help="Filter, repeatable: e.g. gradient_method=mgda, batch_size>=64, "
    "config.training.gradient_accumulation_steps>4, summary.train/loss<0.5, run_name~%sweep%. "
    "OP is = != > >= < <= or ~ (SQL LIKE); a VALUE that reads as a JSON number, true, false or null "
    'is one, anything else is a string ("64" in quotes is the string).',
)
@click.option("--filter", "where", metavar="FILTER", help=FILTER_HELP + " Combines with --where (and).")
@click.option(
    "--objective",
    "thresholds",
    multiple=True,
    callback=parse_objectives,
    metavar="NAME OP NUMBER",
    help="Objective threshold, repeatable: e.g. COMT_activity>=0.8 (OP: >= > <= <). Runs come best "
    "first; --where may then only give gradient_method= and status= (--filter takes anything).",
)
@click.option(
    "--metric",
    type=click.Choice(store.OBJECTIVE_COLUMNS),
    default="raw_mean",
    show_default=True,
    help="The objective value --objective compares.",
)
@click.option(
    "--order-by", multiple=True, help="Sort field, -FIELD for descending; repeatable. [default: -created_at]"
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="At most this many runs."
)
@click.option(
    "--columns",
    help="Comma-separated fields to show: run fields, JSON paths (config.training.seed, summary.train/loss) "
    "or objective.NAME.METRIC. Default: a summary for table and csv, every field for json.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="json writes times as ISO-8601 and NaN and Infinity as null.",
)
def runs(
    filters: dict[str, dict[str, Any]],
    where: str | None,
    thresholds: dict[str, dict[str, float]],
    metric: str,
    order_by: tuple[str, ...],
    limit: int,
    columns: str | None,
    output_format: str,
) -> None:
    """List the runs that match every filter, newest first (best first with --objective)."""
    open_database()
    chosen = [name.strip() for name in columns.split(",") if name.strip()] if columns is not None else None
    if chosen is not None:
        _check_columns(chosen, by_objectives=bool(thresholds))
    default = list(TABLE_COLUMNS)
    if thresholds:
        found = _objective_runs(filters, where, thresholds, metric, order_by, limit)
        default += [f"objective.{name}.{metric}" for name in thresholds]
    else:
        found = store.query_runs(
            filters or None, order_by=list(order_by) or "-created_at", limit=limit, where=where
        )
    _emit_rows(found, chosen, default, output_format)


@click.command()
@click.argument("run_id")
@click.option(
    "--format", "output_format", type=click.Choice(("text", "json")), default="text", show_default=True
)
@click.option(
    "--watch",
    "live",
    is_flag=True,
    help="Follow the run as it trains: step, latest metrics and sparklines, redrawn as points arrive, "
    "until the run ends or Ctrl-C.",
)
@click.option(
    "--keys",
    metavar="PATTERNS",
    help="With --watch: comma-separated metric keys or glob patterns to show (default: every key kept).",
)
def run(run_id: str, output_format: str, live: bool, keys: str | None) -> None:
    """Show one run: fields, objectives, crash report, config, summary; or follow it live (--watch)."""
    open_database()
    if live:
        from ingest.cli.watch import watch

        patterns = [k.strip() for k in keys.split(",") if k.strip()] if keys else None
        click.echo(watch(run_id, patterns))
        return
    if keys is not None:
        raise click.UsageError("--keys goes with --watch")
    found = store.get_run(run_id)
    if found is None:
        raise click.ClickException(f"no run {run_id}")
    found = {**found, "stalled": store.is_stalled(found)}
    if output_format == "json":
        _echo_json(found)
        return
    crash = ("error_message", "error_log_s3_key", "crash_report_s3_key", "crash_analysis_s3_key")
    shown_apart = {*DOCUMENTS.values(), *crash, "objectives", "warnings"}
    fields = [(name, value) for name, value in found.items() if name not in shown_apart]
    _print_table(fields, ("field", "value"), title=f"run {run_id}")
    metrics = store.OBJECTIVE_COLUMNS
    _print_table(
        (
            [o["objective_name"], o["objective_alias"], o["direction"], o["weight"], *(o[m] for m in metrics)]
            for o in found["objectives"]
        ),
        ("objective", "alias", "direction", "weight", *metrics),
        title="objectives",
    )
    if any(found[name] for name in crash):
        _print_table(((name, found[name]) for name in crash), ("crash", "value"), title="crash report")
    if found["progress_json"]:
        progress_title = f"progress at step {found['last_step']}"
        _print_table(sorted(found["progress_json"].items()), ("metric", "value"), title=progress_title)
    if found["warnings"]:
        _print_table(sorted(found["warnings"].items()), ("field", "warning"), title="warnings")
    for title, name in (("config", "config_json"), ("summary", "final_metrics_json")):
        click.echo(f"{title}:")
        click.echo(json.dumps(plain(found[name]), indent=2, sort_keys=True, ensure_ascii=False))


@click.command()
@click.argument("objective")
@click.option("--metric", type=click.Choice(store.OBJECTIVE_COLUMNS), default="raw_mean", show_default=True)
@click.option(
    "--status",
    type=click.Choice([*store.RUN_STATUSES, "any"]),
    default="completed",
    show_default=True,
    help="Only runs of this status.",
)
@click.option("--filter", "where", metavar="FILTER", help=FILTER_HELP)
@click.option(
    "--include-unknown",
    is_flag=True,
    help="Count runs of status unknown too (known only from crash reports or attachments, never launched).",
)
@click.option(
    "--format", "output_format", type=click.Choice(("table", "json")), default="table", show_default=True
)
def compare(
    objective: str, metric: str, status: str, where: str | None, include_unknown: bool, output_format: str
) -> None:
    """Compare gradient methods on one objective, best first.

    Best is the highest average, or the lowest for an objective its runs minimize.
    """
    open_database()
    results = store.compare_gradient_methods(
        objective, metric, None if status == "any" else status, where=where, include_unknown=include_unknown
    )
    if output_format == "json":
        _echo_json(results)
        return
    if not results:
        matching = " matching the filter" if where and where.strip() else ""
        raise click.ClickException(f"no {status} run{matching} has a {metric} for objective {objective}")
    columns = ("gradient_method", "num_runs", "avg", "std", "best", "worst", "best_run_id")
    _print_table(
        ([result[c] for c in columns] for result in results),
        columns,
        title=f"{objective} {metric} ({results[0]['direction']}, status {status})",
    )


@click.command()
@click.option("--filter", "where", metavar="FILTER", help=FILTER_HELP)
@click.option(
    "--include-unknown",
    is_flag=True,
    help="Count runs of status unknown too (known only from crash reports or attachments, never launched).",
)
@click.option(
    "--format", "output_format", type=click.Choice(("table", "json")), default="table", show_default=True
)
def stats(where: str | None, include_unknown: bool, output_format: str) -> None:
    """Count runs by status and gradient method; show the crash rates."""
    open_database()
    numbers = store.get_stats(where=where, include_unknown=include_unknown)
    if output_format == "json":
        _echo_json(numbers)
        return
    overview = [
        ("runs", numbers["total_runs"]),
        ("objectives", numbers["num_objectives"]),
        ("crash rate", f"{numbers['crash_rate']:.1%}"),
        ("oldest run", numbers["oldest_run_at"]),
        ("newest run", numbers["newest_run_at"]),
    ]
    _print_table(overview, ("", "value"), title="training runs")
    _print_table(numbers["runs_by_status"].items(), ("status", "runs"))
    crash_rates = numbers["crash_rate_by_gradient_method"]
    by_method = sorted(numbers["runs_by_gradient_method"].items(), key=lambda item: -item[1])
    _print_table(
        ((method, runs, f"{crash_rates[method]:.1%}") for method, runs in by_method),
        ("gradient method", "runs", "crash rate"),
    )


@click.command()
@click.option("--status", type=click.Choice(store.INBOX_STATUSES), help="Only events of this status.")
@click.option("--source", type=click.Choice([s.value for s in Source]), help="Only events from this source.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many events."
)
@click.option(
    "--format", "output_format", type=click.Choice(("table", "json")), default="table", show_default=True
)
def events(status: str | None, source: str | None, limit: int, output_format: str) -> None:
    """List the newest inbox events and what became of them."""
    open_database()
    deliveries = store.list_deliveries(status, source, limit)
    columns = ("id", "received_at", "source", "kind", "status", "attempts", "last_error")
    if output_format == "json":
        shown = (*columns, "warnings", "dedupe_key", "processed_at")
        _echo_json([{c: getattr(d, c) for c in shown} for d in deliveries])
        return
    _print_table(
        ([*(getattr(d, c) for c in columns), "\n".join(d.warnings or ())] for d in deliveries),
        ("id", "received", "source", "kind", "status", "attempts", "last error", "warnings"),
        title=f"{len(deliveries)} event(s)",
    )


def _flatten(prefix: str, value: Any, row: dict[str, Any]) -> None:
    # Objects become dotted keys; lists (and empty objects) stay one cell of JSON text, keys sorted
    # because JSONB does not keep their order.
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, row)
    elif isinstance(value, Mapping | list):
        row[prefix] = json.dumps(plain(value), sort_keys=True)
    else:
        row[prefix] = value


def flat_run(run: Mapping[str, Any], objectives: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Flatten a run: its typed fields, config.* and summary.* leaves, and objective.NAME.METRIC."""
    row = {name: run[name] for name in SCALAR_COLUMNS}
    for prefix, document in (("config", run["config_json"]), ("summary", run["final_metrics_json"])):
        if isinstance(document, Mapping):
            for key, value in document.items():
                _flatten(f"{prefix}.{key}", value, row)
    for objective in objectives:
        for metric in store.OBJECTIVE_COLUMNS:
            row[f"objective.{objective['objective_name']}.{metric}"] = objective[metric]
    return row


def matching_runs(
    filters: Mapping[str, dict[str, Any]], where: str | None = None
) -> Iterator[dict[str, Any]]:
    """Yield every matching run flattened, by run id, a page per short transaction.

    Not one long store.iter_runs: on SQLite a transaction holds the write lock, which would
    stall ingestion, and the objectives' reads, for the whole export.
    """
    after: str | None = None
    while True:
        page_filters = dict(filters)
        if after is not None:
            # Every earlier page already met the caller's run_id bounds: after is the tighter one.
            page_filters["run_id"] = {**filters.get("run_id", {}), "gt": after}
        page = store.query_runs(page_filters or None, order_by="run_id", limit=EXPORT_PAGE, where=where)
        objectives = store.get_objectives_of_runs([found["run_id"] for found in page])
        for found in page:
            yield flat_run(found, objectives[found["run_id"]])
        if len(page) < EXPORT_PAGE:
            return
        after = page[-1]["run_id"]


def _ordered_columns(names: Iterable[str]) -> list[str]:
    """Order columns as typed fields, then config.*, summary.*, objective.* each sorted."""
    groups = {"config": 1, "summary": 2, "objective": 3}
    typed = {name: index for index, name in enumerate(SCALAR_COLUMNS)}
    return sorted(names, key=lambda n: (groups.get(n.split(".")[0], 0), typed.get(n, 0), n))


# Writes the runs that match to a text file (csv, jsonl) or a binary one (parquet); returns how many.
Writer = Callable[[Callable[[], Iterator[dict[str, Any]]], IO[Any]], int]


def _write_jsonl(matching: Callable[[], Iterator[dict[str, Any]]], output: IO[str]) -> int:
    written = 0
    for row in progress(matching(), "exporting runs"):
        ordered = {name: row[name] for name in _ordered_columns(row)}
        output.write(json.dumps(plain(ordered), ensure_ascii=False) + "\n")
        written += 1
    return written


def _write_csv(matching: Callable[[], Iterator[dict[str, Any]]], output: IO[str]) -> int:
    names: set[str] = set()
    for row in progress(matching(), "reading columns"):
        names.update(row)
    # A column that first appears between the two passes is left out: its runs changed meanwhile.
    writer = csv.DictWriter(output, _ordered_columns(names or SCALAR_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    written = 0
    for row in progress(matching(), "exporting runs"):
        writer.writerow({name: _csv_cell(value) for name, value in row.items()})
        written += 1
    return written


def _arrow_type(kinds: set[type]) -> pa.DataType:
    """Choose one Parquet column type for the Python types its values have."""
    import pyarrow as pa

    kinds = kinds - {type(None)}
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds and kinds <= {int, float}:
        return pa.float64()
    if kinds == {datetime}:
        return pa.timestamp("us", tz="UTC")
    return pa.string()


def _kind(value: Any) -> type:
    # Integers beyond 64 bits (a hash logged as a number) only fit as text.
    if type(value) is int and not -(2**63) <= value < 2**63:
        return str
    return type(value)


def _fits(value: Any, column: pa.DataType) -> Any:
    """Return the value as its column holds it; None when the run changed between the two passes."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_string(column):
        return value if isinstance(value, str) else json.dumps(plain(value))
    kind = _arrow_type({_kind(value)})
    if kind == column or (pa.types.is_floating(column) and pa.types.is_integer(kind)):
        return value
    return None


def _known_kinds(name: str, kinds: set[type]) -> set[type]:
    """The types a column's values have; for a column of nothing but nulls, the type the schema gives it."""
    if kinds - {type(None)}:
        return kinds
    if name in SCALAR_TYPES:
        return {SCALAR_TYPES[name]}
    if name.startswith("objective."):
        return {float}
    return kinds


def _write_parquet(matching: Callable[[], Iterator[dict[str, Any]]], output: IO[bytes]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    kinds: dict[str, set[type]] = {}
    for row in progress(matching(), "reading columns"):
        for name, value in row.items():
            kinds.setdefault(name, set()).add(_kind(value))
    names = _ordered_columns(kinds or {name: set() for name in SCALAR_COLUMNS})
    schema = pa.schema([(name, _arrow_type(_known_kinds(name, kinds.get(name, set())))) for name in names])
    written = 0
    with pq.ParquetWriter(output, schema) as writer:
        for batch in _batches(progress(matching(), "exporting runs"), EXPORT_PAGE):
            rows = [{name: _fits(row.get(name), schema.field(name).type) for name in names} for row in batch]
            writer.write_table(pa.Table.from_pylist(rows, schema))
            written += len(rows)
    return written


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@click.command()
@click.option("--format", "output_format", type=click.Choice(("csv", "parquet", "jsonl")), required=True)
@click.option(
    "--output",
    default="-",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File to write (default: stdout; parquet needs a file). Written in full or not at all.",
)
@click.option(
    "--where",
    "filters",
    multiple=True,
    callback=parse_where,
    metavar="FIELD OP VALUE",
    help="Filter, repeatable, as for `runs`.",
)
@click.option("--filter", "where", metavar="FILTER", help=FILTER_HELP + " Combines with --where (and).")
def export(output_format: str, output: str, filters: dict[str, dict[str, Any]], where: str | None) -> None:
    """Export every matching run, flattened, for pandas and friends.

    A row holds the typed fields, every config.* and summary.* leaf (nested keys joined with
    dots, W&B's own keys keep their slashes: summary.train/loss), lists as JSON text, and
    objective.NAME.METRIC for each objective. csv and parquet read the runs twice, first to learn
    the columns (and Parquet types), so memory stays bounded however many runs there are.
    NaN is nan in csv (pandas reads it as NaN), NaN in parquet and null in jsonl.
    """
    open_database()
    if output_format == "parquet" and output == "-":
        raise click.BadParameter("parquet needs --output FILE", param_hint="--output")
    writers: dict[str, Writer] = {"csv": _write_csv, "jsonl": _write_jsonl, "parquet": _write_parquet}
    write = writers[output_format]
    matching = functools.partial(matching_runs, filters, where)
    if output == "-":
        with click.open_file("-", "w") as stdout:
            write(matching, stdout)
        return
    with _replacing(output, binary=output_format == "parquet") as file:
        written = write(matching, file)
    click.echo(f"exported {written} run(s) to {output}")


@contextmanager
def _replacing(path: str, binary: bool) -> Iterator[IO[Any]]:
    """Write a temporary file beside ``path``, moved into place only when writing succeeded."""
    # click.open_file(atomic=True) moves the file into place even when writing failed.
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        opened = temporary.open("xb") if binary else temporary.open("x", encoding="utf-8", newline="")
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None
    try:
        with opened as file:
            yield file
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
