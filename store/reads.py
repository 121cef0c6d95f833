"""The read side's questions: pages of runs, one run whole, objectives, comparisons, the Pareto
front, crash statistics and the inbox's deliveries, on the read replica when there is one.

Every answer is computed by the database over every matching run, except the Pareto front:
the database hands over the value columns only, and store.pareto finds the front.
"""

from __future__ import annotations

import base64
import difflib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Float,
    Integer,
    Select,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy import text as text_clause
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from store import extract, jsoncodec, stalled
from store.database import replica_transaction
from store.fields import (
    DOCUMENTS,
    SCALAR_COLUMNS,
    Field,
    JsonAccess,
    parse_time,
    resolve,
    sqlite_path,
    text_array,
)
from store.filters import OBJECTIVE_STATS, compile_filter
from store.models import RunObjective, S3Object, TrainingRun
from store.pareto import front
from store.query import run_with_objectives
from store.schema import JSON_COLUMNS, Document, UTCDateTime

# Rows a JSON-lines stream reads from the database at a time.
STREAM_BATCH = 1000


def list_objectives() -> list[dict[str, Any]]:
    """Return each objective's name, direction (the one most of its runs name) and number of runs."""
    minimizing = func.sum(case((RunObjective.direction == "minimize", 1), else_=0))
    statement = (
        select(RunObjective.objective_name, func.count().label("runs"), minimizing.label("minimizing"))
        .group_by(RunObjective.objective_name)
        .order_by(RunObjective.objective_name)
    )
    with replica_transaction() as session:
        rows = session.execute(statement).all()
    return [
        {
            "name": row.objective_name,
            "direction": "minimize" if row.minimizing * 2 > row.runs else "maximize",
            "runs": row.runs,
        }
        for row in rows
    ]


def run_detail(run_id: str) -> dict[str, Any] | None:
    """Return one run with every field, its objectives and its crash-report objects, or None."""
    with replica_transaction() as session:
        result = run_with_objectives(session.connection(), run_id)
        if result is None:
            return None
        result["stalled"] = stalled.is_stalled(result)
        result["s3_objects"] = [
            {
                "bucket": o.bucket,
                "key": o.key,
                "event_name": o.event_name,
                "size": o.size,
                "etag": o.etag,
                "updated_at": o.updated_at,
            }
            for o in session.scalars(select(S3Object).where(S3Object.run_id == run_id).order_by(S3Object.key))
        ]
        return result


# --- Fields: what a page shows, sorts and groups by --------------------------------------------

# Computed by the database when asked, never stored (store/stalled.py).
COMPUTED_FIELDS = ("stalled",)
DEFAULT_FIELDS = (*SCALAR_COLUMNS, *COMPUTED_FIELDS)
WHOLE_RUN_FIELDS = (*SCALAR_COLUMNS, *COMPUTED_FIELDS, *DOCUMENTS)
MAX_FIELDS = 45
MAX_LIMIT = 1000


@dataclass(frozen=True)
class ReadField:
    """A field of the read side: a typed column, a JSON path, a whole document, an objective's
    statistic or a computed field (stalled)."""

    name: str
    # The run's column or JSON document; for an objective's statistic, its run_objectives column;
    # for stalled, computed from the run's status and last event, its status.
    column: Column[Any]
    path: tuple[str, ...] = ()
    objective: str | None = None
    computed: bool = False

    @property
    def is_document(self) -> bool:
        return self.objective is None and not self.path and self.column.key in JSON_COLUMNS


def read_field(name: Any, parameter: str = "field") -> ReadField:
    """Resolve a field name, or raise ValueError naming it (and the closest known field)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{parameter}: a field name must be a non-empty string")
    name = name.strip()
    if name in DOCUMENTS:
        return ReadField(name, TrainingRun.__table__.columns[DOCUMENTS[name]])
    if name in COMPUTED_FIELDS:
        return ReadField(name, TrainingRun.__table__.c.status, computed=True)
    if name.startswith("objective."):
        objective, _, stat = name.removeprefix("objective.").rpartition(".")
        if not objective or stat not in OBJECTIVE_STATS:
            raise ValueError(
                f"{parameter}: {name!r} must be objective.NAME.STAT, STAT one of {', '.join(OBJECTIVE_STATS)}"
            )
        return ReadField(name, RunObjective.__table__.columns[stat], objective=objective)
    try:
        resolved = resolve(name)
    except ValueError as error:
        close = difflib.get_close_matches(name, [*SCALAR_COLUMNS, *COMPUTED_FIELDS, *DOCUMENTS], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{parameter}: {error}{hint}") from None
    return ReadField(name, resolved.column, resolved.path)


class RunSelect:
    """Expressions over training_runs and, outer-joined once per objective named, run_objectives."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.objectives: dict[str, Any] = {}

    def _objective(self, name: str) -> Any:
        if name not in self.objectives:
            self.objectives[name] = aliased(RunObjective, name=f"objective_{len(self.objectives)}")
        return self.objectives[name]

    def joined(self, statement: Select[Any]) -> Select[Any]:
        for name, table in self.objectives.items():
            statement = statement.outerjoin(
                table, and_(table.run_id == TrainingRun.run_id, table.objective_name == name)
            )
        return statement

    def value(self, field: ReadField) -> ColumnElement[Any]:
        """The field's value as Python gets it: columns typed, JSON decoded."""
        if field.computed:
            return stalled.stalled_value()
        if field.objective is not None:
            statistic: ColumnElement[Any] = getattr(self._objective(field.objective), field.column.key)
            return statistic
        if not field.path:
            return field.column
        if self.dialect == "postgresql":
            node = field.column.op("#>")(literal(list(field.path), type_=text_array()))
            return type_coerce(node, Document)
        # json_quote turns what json_extract gives (SQL text for a JSON string) back into JSON.
        return type_coerce(func.json_quote(func.json_extract(field.column, sqlite_path(field.path))), JSON)

    def rendered(self, field: ReadField) -> ColumnElement[Any]:
        """The field's value as an argument of the database's JSON object builder."""
        if field.computed:
            if self.dialect == "postgresql":
                return stalled.stalled_condition()
            return func.json(case((stalled.stalled_condition(), "true"), else_="false"))
        if field.objective is not None:
            return self.value(field)
        if field.path:
            if self.dialect == "postgresql":
                return field.column.op("#>")(literal(list(field.path), type_=text_array()))
            return func.json_extract(field.column, sqlite_path(field.path))
        if field.is_document:
            return field.column if self.dialect == "postgresql" else func.json(field.column)
        if self.dialect == "sqlite" and isinstance(field.column.type, UTCDateTime):
            # SQLite keeps naive UTC text; PostgreSQL (in UTC) writes ISO 8601 with the offset.
            return func.replace(field.column, " ", "T") + "+00:00"
        return field.column

    def sort_key(self, field: ReadField) -> ColumnElement[Any]:
        """The expression rows are ordered by for this field."""
        if field.is_document:
            raise ValueError(f"order_by: cannot sort by the whole document {field.name!r}")
        if field.objective is not None or field.computed:
            return self.value(field)
        if field.path:
            return JsonAccess(Field(field.name, field.column, field.path), self.dialect).sortable()
        return field.column

    def group_key(self, field: ReadField) -> ColumnElement[Any]:
        """The expression rows are grouped by for this field."""
        if field.objective is not None:
            raise ValueError(f"by: cannot group by an objective's statistic ({field.name!r})")
        return self.sort_key(field)

    def nullable(self, field: ReadField) -> bool:
        if field.computed:
            return False
        return field.objective is not None or bool(field.path) or bool(field.column.nullable)


def filter_conditions(where: str | None, dialect: str) -> list[ColumnElement[bool]]:
    """Compile a filter-language string to conditions on training_runs (none when blank)."""
    if where is None or not where.strip():
        return []
    return [compile_filter(where, dialect)]


# --- Pages of runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    field: ReadField
    descending: bool

    @property
    def text(self) -> str:
        return ("-" if self.descending else "") + self.field.name


def parse_order(order_by: str | None) -> Order:
    """Read ``field`` or ``-field`` (descending); the default is the newest runs first."""
    raw = (order_by or "-created_at").strip()
    descending = raw.startswith("-")
    name = raw.lstrip("-")
    if not name:
        raise ValueError(f"order_by: {order_by!r} names no field")
    return Order(read_field(name, "order_by"), descending)


def parse_fields(fields: Sequence[str] | None, default: Sequence[str]) -> list[ReadField]:
    names = list(fields) if fields else list(default)
    if len(names) > MAX_FIELDS:
        raise ValueError(f"fields: at most {MAX_FIELDS} fields, not {len(names)}")
    unique = list(dict.fromkeys(name.strip() for name in names))
    return [read_field(name, "fields") for name in unique]


def encode_cursor(order: Order, value: Any, run_id: str) -> str:
    """An opaque token for the page after the row with this sort value and run id."""
    data = orjson.dumps([order.text, value, run_id], option=orjson.OPT_NON_STR_KEYS)
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[Any, str]:
    """Return the sort value and run id a cursor continues after, or raise ValueError."""
    try:
        text, value, run_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise ValueError("cursor: not a cursor this API gave out") from None
    if text != order.text or not isinstance(run_id, str):
        raise ValueError(f"cursor: it continues an ordering by {text!r}, not {order.text!r}")
    field = order.field
    if value is not None and field.objective is None and not field.path:
        if isinstance(field.column.type, UTCDateTime):
            value = parse_time(value, "cursor")
    return value, run_id


def _after(select_: RunSelect, order: Order, value: Any, run_id: str) -> ColumnElement[bool]:
    """The keyset condition: rows after (value, run_id) in the order, NULLs last, run_id ascending."""
    key = select_.sort_key(order.field)
    if select_.dialect == "postgresql" and order.field.path and value is not None:
        value = literal(value, type_=Document)
    if value is None:
        return and_(key.is_(None), TrainingRun.run_id > run_id)
    # `key <= value` (or >=) on its own lets an index on the key start at the cursor.
    within = key <= value if order.descending else key >= value
    past = key < value if order.descending else key > value
    condition = and_(within, or_(past, TrainingRun.run_id > run_id))
    if select_.nullable(order.field):
        condition = or_(condition, key.is_(None))
    return condition


def _ordering(select_: RunSelect, order: Order) -> list[Any]:
    key = select_.sort_key(order.field)
    ordered = key.desc() if order.descending else key.asc()
    if select_.nullable(order.field):
        ordered = ordered.nulls_last()
    return [ordered, TrainingRun.run_id.asc()]


def check_page_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: must be an integer from 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


def page_runs(
    where: str | None = None,
    order_by: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    fields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Return one page of matching runs, how many match in all, and the cursor of the next page.

    Pages continue after the last row's sort key and run id (keyset pagination), so runs that
    arrive meanwhile neither repeat nor push a run out of the pages that follow.
    """
    limit = check_page_limit(limit)
    order = parse_order(order_by)
    wanted = parse_fields(fields, DEFAULT_FIELDS)
    with replica_transaction() as session:
        dialect = session.get_bind().dialect.name
        conditions = filter_conditions(where, dialect)
        total = session.scalar(select(func.count()).select_from(TrainingRun).where(*conditions))
        if dialect == "postgresql":
            # The page walks an index in order and stops at limit + 1 rows; parallel workers
            # under a Gather Merge read ahead of it until their queues fill. bench/api.py's page
            # filtered on a JSON path: 51 ms with workers, 14 without (the count keeps them).
            session.execute(select(func.set_config("max_parallel_workers_per_gather", "0", True)))
        runs = RunSelect(dialect)
        columns = [runs.value(field).label(f"f{i}") for i, field in enumerate(wanted)]
        sort_key = runs.sort_key(order.field).label("sort_key")
        page_conditions = list(conditions)
        if cursor:
            page_conditions.append(_after(runs, order, *decode_cursor(cursor, order)))
        statement = runs.joined(
            select(*columns, sort_key, TrainingRun.run_id.label("cursor_run_id")).select_from(TrainingRun)
        )
        rows = session.execute(
            statement.where(*page_conditions).order_by(*_ordering(runs, order)).limit(limit + 1)
        ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        sort_value = last.sort_key
        if order.field.path and dialect == "postgresql":
            sort_value = orjson.loads(jsoncodec.dumps(sort_value))
        next_cursor = encode_cursor(order, _plain(sort_value), last.cursor_run_id)
    return {
        "total": total,
        "runs": [{field.name: row[i] for i, field in enumerate(wanted)} for row in rows],
        "next_cursor": next_cursor,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def stream_runs(
    where: str | None = None, order_by: str | None = None, fields: Sequence[str] | None = None
) -> Iterator[bytes]:
    """Yield every matching run as JSON lines, in chunks, each object rendered by the database.

    Documents come as stored: a float JSON cannot hold (NaN, Infinity, -0.0, an integral float
    of 1e16 or more) is written ``{"$float": "NaN"}`` (store.jsoncodec). Rows are read through a
    server-side cursor (PostgreSQL) or step by step (SQLite): memory stays bounded.
    """
    order = parse_order(order_by)
    wanted = parse_fields(fields, WHOLE_RUN_FIELDS)
    with replica_transaction() as session:
        dialect = session.get_bind().dialect.name
        conditions = filter_conditions(where, dialect)
        runs = RunSelect(dialect)
        pairs: list[Any] = []
        for field in wanted:
            pairs += [cast(literal(field.name), Text), runs.rendered(field)]
        builder = func.json_build_object(*pairs) if dialect == "postgresql" else func.json_object(*pairs)
        statement = runs.joined(select(cast(builder, Text)).select_from(TrainingRun))
        statement = statement.where(*conditions).order_by(*_ordering(runs, order))
        if dialect == "postgresql":
            # JSON renders timestamps in the session's time zone. A cursor is planned to return
            # its first tenth of rows fast (cursor_tuple_fraction): for query 1 that walked
            # every run in created_at order rather than sort the 3,602 the method's index
            # finds, at twice the cost; a stream reads every row.
            session.execute(
                select(
                    func.set_config("TimeZone", "UTC", True),
                    func.set_config("cursor_tuple_fraction", "1", True),
                )
            )
        # On the connection, not the ORM session, whose result wraps every row again (a third of
        # the client's time for 3,602 short lines).
        streamed = statement.execution_options(stream_results=True, yield_per=STREAM_BATCH)
        for lines in session.connection().execute(streamed).scalars().partitions():
            yield ("\n".join(lines) + "\n").encode()


# --- Comparisons, the Pareto front and crash statistics ---------------------------------------------

METRICS = extract.OBJECTIVE_COLUMNS
# Columns of training_runs that run_objectives keeps a copy of (the store keeps them in sync).
COPIED_COLUMNS = ("gradient_method", "status")
DIRECTIONS = ("maximize", "minimize")


def _metric(metric: Any) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric: {metric!r} is not one of {', '.join(METRICS)}")
    return str(metric)


def _objective_name(name: Any, parameter: str = "objective") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{parameter}: an objective name is required")
    return name.strip()


def _direction_of(session: Any, objective: str) -> str:
    """The objective's direction as its runs name it (maximize when none does).

    Runs take it from their config, so they agree: the first one the index holds is enough.
    """
    direction = session.scalar(
        select(RunObjective.direction)
        .where(RunObjective.objective_name == objective, RunObjective.direction.is_not(None))
        .limit(1)
    )
    return "minimize" if direction == "minimize" else "maximize"


def _room_to_aggregate(session: Any, dialect: str) -> None:
    """Give this transaction's sorts and hash tables room: the default work_mem sorts large groups on disk."""
    if dialect == "postgresql":
        session.execute(text_clause("SET LOCAL work_mem = '64MB'"))


def compare_groups(
    objective: str,
    metric: str = "raw_mean",
    by: str = "gradient_method",
    where: str | None = None,
) -> dict[str, Any]:
    """Summarise one objective per group of runs: n, mean, std, min, max, quartiles and the best run.

    Every matching run with a value counts, and the database computes it all in one pass over
    the values sorted per group (window functions; percentile_cont on PostgreSQL). Quartiles
    interpolate linearly between the two nearest ranks, as percentile_cont and Python's
    statistics.quantiles(method="inclusive") do.
    """
    objective = _objective_name(objective)
    metric = _metric(metric)
    group_field = read_field(by or "gradient_method", "by")
    with replica_transaction() as session:
        dialect = session.get_bind().dialect.name
        direction = _direction_of(session, objective)
        _room_to_aggregate(session, dialect)
        conditions = filter_conditions(where, dialect)
        runs = RunSelect(dialect)
        value_table = aliased(RunObjective, name="compared")
        value = getattr(value_table, metric)
        key = runs.group_key(group_field)
        matched = (
            select(key.label("key"), value.label("value"), value_table.run_id.label("run_id"))
            .select_from(TrainingRun)
            .join(
                value_table,
                and_(value_table.run_id == TrainingRun.run_id, value_table.objective_name == objective),
            )
            .where(value.is_not(None), *conditions)
        )
        if not conditions and group_field.name in COPIED_COLUMNS:
            # run_objectives keeps copies of these two: its index answers without training_runs.
            matched = select(
                getattr(value_table, group_field.name).label("key"),
                value.label("value"),
                value_table.run_id.label("run_id"),
            ).where(value_table.objective_name == objective, value.is_not(None))
        matched_rows = matched.subquery("matched")
        best_first = matched_rows.c.value.desc() if direction == "maximize" else matched_rows.c.value.asc()
        windows = [
            func.row_number()
            .over(partition_by=matched_rows.c.key, order_by=[best_first, matched_rows.c.run_id])
            .label("best_rank")
        ]
        if dialect == "sqlite":
            windows += [
                (
                    func.row_number().over(partition_by=matched_rows.c.key, order_by=matched_rows.c.value) - 1
                ).label("rank"),
                func.count().over(partition_by=matched_rows.c.key).label("n"),
            ]
        copied = not conditions and group_field.name in COPIED_COLUMNS
        best_run_id: ColumnElement[Any]
        if dialect == "postgresql" and copied:
            # No window: the best run of each group is one look in the objective's value index.
            ranked = matched_rows
            other = aliased(RunObjective, name="best")
            best_value = func.max(ranked.c.value) if direction == "maximize" else func.min(ranked.c.value)
            best_run_id = (
                select(func.min(other.run_id))
                .where(
                    other.objective_name == objective,
                    getattr(other, metric) == best_value,
                    getattr(other, group_field.name).is_not_distinct_from(ranked.c.key),
                )
                .scalar_subquery()
            )
        else:
            ranked = select(matched_rows, *windows).subquery("ranked")
            best_run_id = func.min(case((ranked.c.best_rank == 1, ranked.c.run_id)))
        if dialect == "postgresql":
            # One sort for the three; and unlike SQL arithmetic it never fails on a float underflow.
            shares = literal(list(QUARTILES.values()), type_=ARRAY(Float))
            quartiles = [func.percentile_cont(shares).within_group(ranked.c.value).label("quartiles")]
        else:
            quartiles = [_quantile(ranked, share).label(name) for name, share in QUARTILES.items()]
        spread = (
            func.stddev_samp(ranked.c.value)
            if dialect == "postgresql"
            else func.sum(ranked.c.value * ranked.c.value)
        )
        rows = session.execute(
            select(
                ranked.c.key,
                func.count().label("n"),
                func.avg(ranked.c.value).label("mean"),
                spread.label("spread"),
                func.min(ranked.c.value).label("min"),
                func.max(ranked.c.value).label("max"),
                *quartiles,
                best_run_id.label("best_run_id"),
            )
            .group_by(ranked.c.key)
            .order_by(ranked.c.key)
        ).all()
    groups = []
    for row in rows:
        q1, median, q3 = row.quartiles if dialect == "postgresql" else (row.q1, row.median, row.q3)
        std = row.spread if dialect == "postgresql" else _std_from_sums(row.n, row.mean, row.spread)
        groups.append(
            {
                "key": row.key,
                "n": row.n,
                "mean": row.mean,
                "std": std,
                "min": row.min,
                "max": row.max,
                "median": median,
                "q1": q1,
                "q3": q3,
                "best": row.max if direction == "maximize" else row.min,
                "best_run_id": row.best_run_id,
            }
        )
    return {
        "objective": objective,
        "metric": metric,
        "by": group_field.name,
        "direction": direction,
        "groups": groups,
    }


QUARTILES = {"q1": 0.25, "median": 0.5, "q3": 0.75}


def _quantile(ranked: Any, share: float) -> ColumnElement[Any]:
    """Linear interpolation between the ranks around (n - 1) * share, in one aggregate (SQLite)."""
    position = (ranked.c.n - 1) * share
    low = cast(position, Integer)  # positions are never negative: SQLite's truncation is floor
    fraction = position - low
    return func.sum(
        case(
            (ranked.c.rank == low, ranked.c.value * (1 - fraction)),
            (ranked.c.rank == low + 1, ranked.c.value * fraction),
            else_=0.0,
        )
    )


def _std_from_sums(n: int, mean: float, sum_of_squares: float) -> float | None:
    if n < 2:
        return None
    return math.sqrt(max((sum_of_squares - n * mean * mean) / (n - 1), 0.0))


def parse_objectives(spec: str | Sequence[str]) -> list[tuple[str, str | None]]:
    """Read ``A:max,B:min,C`` into (name, direction or None for the objective's own)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    parsed: list[tuple[str, str | None]] = []
    for item in items:
        name, _, suffix = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        name = _objective_name(name, "objectives")
        if suffix and suffix not in ("max", "min"):
            raise ValueError(f"objectives: {item.strip()!r} must end in :max, :min or nothing")
        parsed.append((name, {"max": "maximize", "min": "minimize"}.get(suffix)))
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        raise ValueError("objectives: each objective may be named once")
    if not 2 <= len(parsed) <= 6:
        raise ValueError(f"objectives: name 2 to 6 objectives, not {len(parsed)}")
    return parsed


def pareto(
    objectives: str | Sequence[str],
    metric: str = "raw_mean",
    where: str | None = None,
    with_points: bool = False,
) -> dict[str, Any]:
    """Return the exact Pareto front of the matching runs that have every objective's value, and
    with ``with_points`` every such run's id, gradient method and values, column by column.

    The database hands over each run's values only; store.pareto finds the front.
    """
    wanted = parse_objectives(objectives)
    metric = _metric(metric)
    with replica_transaction() as session:
        dialect = session.get_bind().dialect.name
        directions = [direction or _direction_of(session, name) for name, direction in wanted]
        conditions = filter_conditions(where, dialect)
        tables = [aliased(RunObjective, name=f"objective_{i}") for i in range(len(wanted))]
        values = [getattr(table, metric) for table in tables]
        # The objectives' index holds every value: training_runs is read only to filter.
        first = tables[0]
        # run_objectives keeps a copy of the run's gradient method: the points need no other table.
        statement = select(first.run_id, *values, first.gradient_method).where(
            first.objective_name == wanted[0][0]
        )
        for table, (name, _) in zip(tables[1:], wanted[1:], strict=True):
            statement = statement.join(
                table, and_(table.run_id == first.run_id, table.objective_name == name)
            )
        if conditions:
            statement = statement.join(TrainingRun, TrainingRun.run_id == first.run_id)
        rows = session.execute(statement.where(*conditions, *[value.is_not(None) for value in values])).all()
        signs = [1.0 if direction == "maximize" else -1.0 for direction in directions]
        points = [tuple(sign * v for sign, v in zip(signs, row[1:-1], strict=True)) for row in rows]
        members = sorted((rows[i] for i in front(points)), key=lambda row: row[0])
        details = _run_columns(session, [row[0] for row in members], ("gradient_method", "status"))
    names = [name for name, _ in wanted]
    answer: dict[str, Any] = {
        "objectives": [{"name": n, "direction": d} for n, d in zip(names, directions, strict=True)],
        "metric": metric,
        "considered": len(rows),
        "front": [
            {"run_id": row[0], "values": dict(zip(names, row[1:-1], strict=True)), **details[row[0]]}
            for row in members
        ],
    }
    if with_points:
        # Columns, not one object per run: a quarter of the bytes, and no per-run parsing in a browser.
        columns = list(zip(*rows, strict=True)) or [()] * (len(names) + 2)
        answer["points"] = {
            "run_id": list(columns[0]),
            "gradient_method": list(columns[-1]),
            "values": {name: list(column) for name, column in zip(names, columns[1:-1], strict=True)},
        }
    return answer


def _run_columns(session: Any, run_ids: list[str], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    table = TrainingRun.__table__
    for start in range(0, len(run_ids), 1000):
        chunk = run_ids[start : start + 1000]
        rows = session.execute(
            select(table.c.run_id, *[table.c[c] for c in columns]).where(table.c.run_id.in_(chunk))
        )
        for row in rows:
            found[row.run_id] = {c: row._mapping[c] for c in columns}
    return found


STAT_STATUSES = ("completed", "crashed", "failed", "running")
UTC_MIDNIGHT = datetime(2000, 1, 1, tzinfo=UTC)


def run_stats(by: str = "gradient_method", where: str | None = None) -> dict[str, Any]:
    """Count matching runs per group (by status, with the crash rate) and per UTC day of creation.

    One scan: the database counts runs per (group, day, status), Python adds those few rows up.
    """
    group_field = read_field(by or "gradient_method", "by")
    with replica_transaction() as session:
        dialect = session.get_bind().dialect.name
        conditions = filter_conditions(where, dialect)
        _room_to_aggregate(session, dialect)
        runs = RunSelect(dialect)
        key = runs.group_key(group_field).label("key")
        if dialect == "postgresql":
            session.execute(text_clause("SET LOCAL TimeZone = 'UTC'"))
            # The UTC day as whole days from a UTC midnight: integer arithmetic, where date_trunc
            # converts each timestamp to calendar fields (a third of the query's CPU).
            day = func.date_bin(timedelta(days=1), TrainingRun.created_at, UTC_MIDNIGHT)
        else:
            day = func.substr(TrainingRun.created_at, 1, 10)
        rows = session.execute(
            select(key, day.label("day"), TrainingRun.status, func.count().label("runs"))
            .select_from(TrainingRun)
            .where(*conditions)
            .group_by(key, day, TrainingRun.status)
        ).all()
    groups: dict[Any, dict[str, Any]] = {}
    days: dict[str, dict[str, Any]] = {}
    for row in rows:
        day_text = row.day if isinstance(row.day, str) else row.day.date().isoformat()
        group = _counts(groups, _hashable(row.key), "key", row.key)
        daily = _counts(days, day_text, "day", day_text)
        for counts in (group, daily):
            counts["runs"] += row.runs
            if row.status in STAT_STATUSES:
                counts[row.status] += row.runs
    ordered = sorted(groups.values(), key=lambda g: _sort_key(g["key"]))
    for group in ordered:
        group["crash_rate"] = group["crashed"] / group["runs"]
    return {
        "by": group_field.name,
        "total": sum(g["runs"] for g in ordered),
        "groups": ordered,
        "per_day": [days[d] for d in sorted(days)],
    }


def _counts(table: dict[Any, dict[str, Any]], index: Any, name: str, value: Any) -> dict[str, Any]:
    if index not in table:
        table[index] = {name: value, "runs": 0, **dict.fromkeys(STAT_STATUSES, 0)}
    return table[index]


def _hashable(key: Any) -> Any:
    # A JSON path's group may be an object or a list: group those by their JSON text.
    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS) if isinstance(key, dict | list) else key


def _sort_key(key: Any) -> tuple[int, Any]:
    # NULL last, numbers before strings, anything else by its JSON text, like the database's order.
    if key is None:
        return (3, "")
    if isinstance(key, bool) or not isinstance(key, int | float | str):
        return (2, orjson.dumps(key, option=orjson.OPT_SORT_KEYS))
    return (0, key) if not isinstance(key, str) else (1, key)
