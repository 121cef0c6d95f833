"""Filters and orderings over runs, from user-supplied field names to safe SQL.

A field is a typed column (``batch_size``) or a path into a JSON document:
``config.training.gradient_accumulation_steps``, ``summary.train/loss``,
``progress.train/loss``. Names are checked against the schema and paths are
bound as parameters; nothing the user writes is pasted into SQL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.sql.elements import KeyedColumnElement

from store import extract
from store.database import read_transaction
from store.models import TrainingRun, UTCDateTime
from store.runs import JSON_COLUMNS, RUN_COLUMNS, parse_time, run_to_dict

DOCUMENTS = {"config": "config_json", "summary": "final_metrics_json", "progress": "progress_json"}
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "min", "max", "in", "like")
SCALAR_COLUMNS = tuple(c for c in RUN_COLUMNS if c not in JSON_COLUMNS)


@dataclass(frozen=True)
class Field:
    """A resolved filter field: a typed column, or a document column and a key path."""

    name: str
    column: KeyedColumnElement[Any]
    path: tuple[str, ...] = ()

    @property
    def is_json(self) -> bool:
        return bool(self.path)


def resolve(name: Any) -> Field:
    """Resolve a user-supplied field name, or raise ValueError naming it."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"field name must be a non-empty string, not {name!r}")
    if name in SCALAR_COLUMNS:
        return Field(name, TrainingRun.__table__.columns[name])
    prefix, _, rest = name.partition(".")
    document = DOCUMENTS.get(prefix) or (prefix if prefix in JSON_COLUMNS else None)
    if document and rest:
        path = tuple(rest.split("."))
        if any(not part or '"' in part for part in path):
            raise ValueError(f"invalid JSON path in field {name!r}")
        return Field(name, TrainingRun.__table__.columns[document], path)
    raise ValueError(
        f"unknown field {name!r}: use a column ({', '.join(SCALAR_COLUMNS)}) "
        "or a JSON path starting with config., summary. or progress."
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{part}"' for part in path)


class JsonAccess:
    """Typed access to one JSON path, per backend."""

    def __init__(self, field: Field, dialect: str) -> None:
        self.field = field
        self.dialect = dialect

    def _pg_node(self) -> ColumnElement[Any]:
        return self.field.column.op("#>")(literal(list(self.field.path), type_=_text_array()))

    def json_type(self) -> ColumnElement[str]:
        if self.dialect == "postgresql":
            return func.jsonb_typeof(self._pg_node())
        return func.json_type(self.field.column, _sqlite_path(self.field.path))

    def number(self) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            node = self._pg_node()
            text = self.field.column.op("#>>")(literal(list(self.field.path), type_=_text_array()))
            return case((func.jsonb_typeof(node) == "number", cast(text, Float)))
        path = _sqlite_path(self.field.path)
        extracted = type_coerce(func.json_extract(self.field.column, path), Float)
        return case((func.json_type(self.field.column, path).in_(["integer", "real"]), extracted))

    def text(self) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            node = self._pg_node()
            text = self.field.column.op("#>>")(literal(list(self.field.path), type_=_text_array()))
            return case((func.jsonb_typeof(node) == "string", type_coerce(text, String)))
        path = _sqlite_path(self.field.path)
        extracted = type_coerce(func.json_extract(self.field.column, path), String)
        return case((func.json_type(self.field.column, path) == "text", extracted))

    def boolean_is(self, value: bool) -> ColumnElement[bool]:
        if self.dialect == "postgresql":
            text = self.field.column.op("#>>")(literal(list(self.field.path), type_=_text_array()))
            return and_(self.json_type() == "boolean", text == ("true" if value else "false"))
        return self.json_type() == ("true" if value else "false")

    def is_null(self) -> ColumnElement[bool]:
        kind = self.json_type()
        return or_(kind.is_(None), kind == "null")

    def sortable(self) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return self._pg_node()
        return func.json_extract(self.field.column, _sqlite_path(self.field.path))


def _text_array():  # type: ignore[no-untyped-def]
    from sqlalchemy.dialects.postgresql import ARRAY
    from sqlalchemy.types import Text

    return ARRAY(Text)


def _coerce_for_column(field: Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(field.column.type, UTCDateTime):
        return parse_time(value, field.name)
    python_type = field.column.type.python_type
    if python_type in (int, float):
        if _is_number(value):
            return value
        if isinstance(value, str):
            try:
                return (
                    float(value)
                    if python_type is float or "." in value or "e" in value.lower()
                    else int(value)
                )
            except ValueError:
                pass
        raise ValueError(f"{field.name} compares with numbers, not {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"{field.name} compares with strings, not {value!r}")
    if field.name == "status":
        return extract.normalize_status(value)
    return value


_COMPARISONS = {
    "eq": lambda x, v: x == v,
    "ne": lambda x, v: x != v,
    "gt": lambda x, v: x > v,
    "gte": lambda x, v: x >= v,
    "min": lambda x, v: x >= v,
    "lt": lambda x, v: x < v,
    "lte": lambda x, v: x <= v,
    "max": lambda x, v: x <= v,
}


def _column_condition(field: Field, op: str, value: Any) -> ColumnElement[bool]:
    column = field.column
    if op == "in":
        values = [_coerce_for_column(field, v) for v in _sequence(field, value)]
        return column.in_(values) if values else false()
    if op == "like":
        if not isinstance(value, str):
            raise ValueError(f"like on {field.name} needs a string pattern")
        return column.like(value)
    value = _coerce_for_column(field, value)
    if value is None:
        if op == "eq":
            return column.is_(None)
        if op == "ne":
            return column.is_not(None)
        raise ValueError(f"{op} on {field.name} needs a value, not null")
    if op == "ne":
        return or_(column != value, column.is_(None))
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field.name} cannot be compared with {value}")
    return _COMPARISONS[op](column, value)


def _json_condition(field: Field, op: str, value: Any, dialect: str) -> ColumnElement[bool]:
    access = JsonAccess(field, dialect)
    if op == "in":
        values = _sequence(field, value)
        return or_(*[_json_condition(field, "eq", v, dialect) for v in values]) if values else false()
    if op == "like":
        if not isinstance(value, str):
            raise ValueError(f"like on {field.name} needs a string pattern")
        return access.text().like(value)
    if value is None:
        if op == "eq":
            return access.is_null()
        if op == "ne":
            return ~access.is_null()
        raise ValueError(f"{op} on {field.name} needs a value, not null")
    if isinstance(value, bool):
        if op not in ("eq", "ne"):
            raise ValueError(f"{op} on {field.name} cannot compare booleans")
        matches = access.boolean_is(value)
        return matches if op == "eq" else ~matches
    if _is_number(value):
        if not math.isfinite(value):
            raise ValueError(f"{field.name} cannot be compared with {value}")
        expression = access.number()
    elif isinstance(value, str):
        expression = access.text()
    else:
        raise ValueError(f"{field.name} compares with a number, string, boolean or null, not {value!r}")
    if op == "ne":
        return or_(expression != value, expression.is_(None))
    return _COMPARISONS[op](expression, value)


def _sequence(field: Field, value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence | set | frozenset):
        raise ValueError(f"'in' on {field.name} needs a list of values")
    return list(value)


def condition(name: str, spec: Any, dialect: str) -> ColumnElement[bool]:
    """Build the condition for one ``filters`` entry."""
    field = resolve(name)
    operations = spec.items() if isinstance(spec, Mapping) else [("eq", spec)]
    clauses = []
    for op, value in operations:
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r} on {name!r}; expected one of {', '.join(OPERATORS)}")
        if field.is_json:
            clauses.append(_json_condition(field, op, value, dialect))
        else:
            clauses.append(_column_condition(field, op, value))
    return and_(true(), *clauses)


def where(filters: Mapping[str, Any] | None, dialect: str) -> list[ColumnElement[bool]]:
    """Build the conditions for a ``filters`` mapping."""
    if filters is None:
        return []
    if not isinstance(filters, Mapping):
        raise ValueError("filters must be a mapping of field to value or {operator: value}")
    return [condition(name, spec, dialect) for name, spec in filters.items()]


def ordering(order_by: str | Sequence[str] | None, dialect: str) -> list[ColumnElement[Any]]:
    """Build ORDER BY clauses (``-field`` descending), with run_id as the tiebreak."""
    names = [order_by] if isinstance(order_by, str) else list(order_by or [])
    clauses: list[ColumnElement[Any]] = []
    for raw in names:
        if not isinstance(raw, str) or not raw.lstrip("-"):
            raise ValueError(f"invalid order_by {raw!r}")
        descending = raw.startswith("-")
        field = resolve(raw.lstrip("-"))
        expression = JsonAccess(field, dialect).sortable() if field.is_json else field.column
        ordered = expression.desc() if descending else expression.asc()
        # NULLS LAST only where NULLs can be: on a NOT NULL column it would keep PostgreSQL
        # from reading its btree index backwards (created_at DESC is the default order).
        nullable = field.is_json or field.column.nullable
        clauses.append(ordered.nulls_last() if nullable else ordered)
    clauses.append(TrainingRun.run_id.asc())
    return clauses


def check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer or None, not {limit!r}")
    return limit


def query_runs(
    filters: Mapping[str, Any] | None = None,
    order_by: str | Sequence[str] | None = "-created_at",
    limit: int | None = 100,
    columns: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Return runs matching every filter, as dicts of their fields (all, or ``columns``)."""
    limit = check_limit(limit)
    with read_transaction() as session:
        dialect = session.get_bind().dialect.name
        statement = select(TrainingRun).where(*where(filters, dialect)).order_by(*ordering(order_by, dialect))
        if columns is not None:
            wanted = [resolve(c) for c in columns]
            if any(f.is_json for f in wanted):
                raise ValueError("columns must name run fields, not JSON paths")
            statement = (
                select(*[f.column for f in wanted])
                .where(*where(filters, dialect))
                .order_by(*ordering(order_by, dialect))
            )
            return [dict(row._mapping) for row in session.execute(statement.limit(limit))]
        return [run_to_dict(run) for run in session.scalars(statement.limit(limit))]


def iter_runs(
    filters: Mapping[str, Any] | None = None,
    order_by: str | Sequence[str] | None = "run_id",
    batch_size: int = 1000,
) -> Any:
    """Yield every matching run as a dict, reading the database in batches."""
    with read_transaction() as session:
        dialect = session.get_bind().dialect.name
        statement = (
            select(TrainingRun)
            .where(*where(filters, dialect))
            .order_by(*ordering(order_by, dialect))
            .execution_options(yield_per=batch_size)
        )
        for run in session.scalars(statement):
            yield run_to_dict(run)
            session.expunge(run)
