"""Run fields as users name them: typed columns and paths into the JSON documents.

A field is a typed column (``batch_size``) or a path into a JSON document:
``config.training.gradient_accumulation_steps``, ``summary.train/loss``,
``progress.train/loss``. Names are checked against the schema and paths are
bound as parameters; nothing the user writes is pasted into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    type_coerce,
)
from sqlalchemy.types import TypeEngine

from store.schema import JSON_COLUMNS, RUN_COLUMNS, UTCDateTime, training_runs

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import ARRAY

# What an integer column holds: -limit to limit - 1.
INTEGER_RANGES: dict[type[TypeEngine[Any]], int] = {Integer: 2**31, BigInteger: 2**63}

DOCUMENTS = {"config": "config_json", "summary": "final_metrics_json", "progress": "progress_json"}
SCALAR_COLUMNS = tuple(c for c in RUN_COLUMNS if c not in JSON_COLUMNS)
# Each typed column's Python type, for readers that must type a column none of whose values is set.
SCALAR_TYPES: dict[str, type] = {
    name: datetime if isinstance(column.type, UTCDateTime) else column.type.python_type
    for name, column in training_runs.columns.items()
    if name in SCALAR_COLUMNS
}


@dataclass(frozen=True)
class Field:
    """A resolved filter field: a typed column, or a document column and a key path."""

    name: str
    column: Column[Any]
    path: tuple[str, ...] = ()

    @property
    def is_json(self) -> bool:
        return bool(self.path)


def resolve(name: Any) -> Field:
    """Resolve a user-supplied field name, or raise ValueError naming it."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"field name must be a non-empty string, not {name!r}")
    if name in SCALAR_COLUMNS:
        return Field(name, training_runs.columns[name])
    prefix, _, rest = name.partition(".")
    document = DOCUMENTS.get(prefix) or (prefix if prefix in JSON_COLUMNS else None)
    if document and rest:
        path = tuple(rest.split("."))
        if any(not part or '"' in part for part in path):
            raise ValueError(f"invalid JSON path in field {name!r}")
        return Field(name, training_runs.columns[document], path)
    raise ValueError(
        f"unknown field {name!r}: use a column ({', '.join(SCALAR_COLUMNS)}) "
        "or a JSON path starting with config., summary. or progress."
    )


def parse_time(value: Any, field: str) -> datetime:
    """Read a time given as a datetime, a Unix timestamp or an ISO-8601 string (UTC unless it says)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{field} is not an ISO-8601 time: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"{field} must be a datetime or an ISO-8601 string")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def sqlite_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{part}"' for part in path)


class JsonAccess:
    """Typed access to one JSON path, per backend."""

    def __init__(self, field: Field, dialect: str) -> None:
        self.field = field
        self.dialect = dialect

    def _pg_node(self) -> ColumnElement[Any]:
        return self.field.column.op("#>")(literal(list(self.field.path), type_=text_array()))

    def json_type(self) -> ColumnElement[str]:
        if self.dialect == "postgresql":
            return func.jsonb_typeof(self._pg_node())
        return func.json_type(self.field.column, sqlite_path(self.field.path))

    def number(self) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            node = self._pg_node()
            text = self.field.column.op("#>>")(literal(list(self.field.path), type_=text_array()))
            return case((func.jsonb_typeof(node) == "number", cast(text, Float)))
        path = sqlite_path(self.field.path)
        extracted = type_coerce(func.json_extract(self.field.column, path), Float)
        return case((func.json_type(self.field.column, path).in_(["integer", "real"]), extracted))

    def text(self) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            node = self._pg_node()
            text = self.field.column.op("#>>")(literal(list(self.field.path), type_=text_array()))
            return case((func.jsonb_typeof(node) == "string", type_coerce(text, String)))
        path = sqlite_path(self.field.path)
        extracted = type_coerce(func.json_extract(self.field.column, path), String)
        return case((func.json_type(self.field.column, path) == "text", extracted))

    def boolean_is(self, value: bool) -> ColumnElement[bool]:
        if self.dialect == "postgresql":
            text = self.field.column.op("#>>")(literal(list(self.field.path), type_=text_array()))
            return and_(self.json_type() == "boolean", text == ("true" if value else "false"))
        return self.json_type() == ("true" if value else "false")

    def is_null(self) -> ColumnElement[bool]:
        kind = self.json_type()
        return or_(kind.is_(None), kind == "null")

    def sortable(self) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return self._pg_node()
        return func.json_extract(self.field.column, sqlite_path(self.field.path))


def text_array() -> ARRAY[str]:
    """PostgreSQL's text[], for a JSON path: its dialect is imported only once a statement is built for it."""
    from sqlalchemy.dialects.postgresql import ARRAY
    from sqlalchemy.types import Text

    return ARRAY(Text)
