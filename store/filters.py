"""The filter language: one string, parsed by a small recursive-descent parser and compiled to
parameter-bound SQL over ``training_runs``, on SQLite and PostgreSQL alike.

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
                | field "is" ["not"] "null"
    op         := "=" | "!=" | "<" | "<=" | ">" | ">=" | "like" | "ilike"
    field      := typed column | "config." path | "summary." path | "progress." path
                | "objective." NAME "." (raw_mean | normalized_mean | raw_std | normalized_std | weight)
                | "stalled"
    value      := number | 'single-quoted string' | true | false

Keywords are case-insensitive, field names are not. A path is keys joined by dots; a bare key
holds letters, digits, ``_`` and ``/`` (``summary.train/loss``), any other key goes in backticks
(``summary.`odd key```, a backtick in it doubled). In a string a quote is doubled: ``'it''s'``.

Truth follows SQL's three-valued logic: a comparison with no value to compare (a missing path,
NULL, NaN or an infinity, a JSON value of another kind than the literal, a run without that
objective) is unknown, and so is its negation: ``not x > 1`` never matches a run without ``x``.
``stalled`` is true for a run still ``running`` with no event for ``STALE_AFTER_SECONDS``
(store/stalled.py), false for every other run: it is never unknown. It compares with true and
false only.

Each condition is compiled twice, as "is true" and as "is false", each of which is false
whenever the value is missing; ``not`` swaps them, ``and`` and ``or`` combine them by De
Morgan, so the SQL never negates a condition that could be unknown.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Float,
    Numeric,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.sql.functions import Function

from store import extract, stalled
from store.fields import (
    DOCUMENTS,
    INTEGER_RANGES,
    SCALAR_COLUMNS,
    Field,
    JsonAccess,
    parse_time,
    sqlite_path,
    text_array,
)
from store.schema import UTCDateTime, run_objectives, training_runs

if TYPE_CHECKING:
    from sqlalchemy import FromClause

OBJECTIVE_STATS = ("raw_mean", "normalized_mean", "raw_std", "normalized_std", "weight")
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "like", "ilike")
# Fields the database computes rather than stores.
COMPUTED_FIELDS = ("stalled",)
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "like", "ilike", "true", "false"})
MAX_DEPTH = 100
# "is false" of each operator: over values that exist, its complement.
_OPPOSITE = {"=": "!=", "!=": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">", "in": "not in", "not in": "in"}
_ORDERING = frozenset({"<", "<=", ">", ">="})
_COMPARE: dict[str, Callable[[ColumnElement[Any], Any], ColumnElement[bool]]] = {
    "=": lambda x, v: x == v,
    "!=": lambda x, v: x != v,
    "<": lambda x, v: x < v,
    "<=": lambda x, v: x <= v,
    ">": lambda x, v: x > v,
    ">=": lambda x, v: x >= v,
}
_NON_FINITE = ("NaN", "Infinity", "-Infinity")


class FilterError(ValueError):
    """A filter that does not parse or does not fit the schema, with where and why."""

    def __init__(self, problem: str, text: str, position: int, hint: str | None = None) -> None:
        self.problem = problem
        self.position = position
        before = text[:position]
        self.line = before.count("\n") + 1
        self.column = position - (before.rfind("\n") + 1) + 1
        self.hint = hint
        message = f"{problem} at {self.line}:{self.column}"
        super().__init__(f"{message}; {hint}" if hint else message)


# Parsing


@dataclass(frozen=True)
class Token:
    kind: str  # keyword, field, number, string, op, "(", ")", ",", end
    value: Any
    position: int
    text: str


_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_BARE_KEY = re.compile(r"[\w/]+")
_OPERATOR = re.compile(r"!=|<=|>=|=|<|>")


def _tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            tokens.append(Token("end", None, position, "end of filter"))
            return tokens
        char = text[position]
        if char in "(),":
            tokens.append(Token(char, char, position, char))
            position += 1
        elif match := _OPERATOR.match(text, position):
            tokens.append(Token("op", match.group(), position, match.group()))
            position = match.end()
        elif match := _NUMBER.match(text, position):
            tokens.append(Token("number", _number(match.group(), text, position), position, match.group()))
            position = match.end()
        elif char == "'":
            value, end = _quoted(text, position, "'", "string")
            tokens.append(Token("string", value, position, text[position:end]))
            position = end
        elif char == "`" or char.isalpha() or char == "_":
            keys, end = _field_keys(text, position)
            word = text[position:end]
            if len(keys) == 1 and char != "`" and word.lower() in KEYWORDS:
                tokens.append(Token("keyword", word.lower(), position, word))
            else:
                tokens.append(Token("field", tuple(keys), position, word))
            position = end
        else:
            hint = None
            if char == '"':
                hint = "strings go in single quotes"
            elif (
                tokens
                and tokens[-1].kind == "field"
                and position == tokens[-1].position + len(tokens[-1].text)
            ):
                hint = "a key with characters other than letters, digits, _ and / goes in backticks"
            raise FilterError(f"unexpected character {char!r}", text, position, hint)


def _number(literal_text: str, text: str, position: int) -> int | float:
    if not any(c in literal_text for c in ".eE"):
        return int(literal_text)
    value = float(literal_text)
    if not math.isfinite(value):
        raise FilterError(f"number {literal_text} is out of range", text, position)
    return value


def _quoted(text: str, start: int, quote: str, what: str) -> tuple[str, int]:
    """Read a quoted string or key from ``start`` (its opening quote); a doubled quote is one."""
    parts = []
    position = start + 1
    while True:
        end = text.find(quote, position)
        if end < 0:
            raise FilterError(f"unterminated {what}", text, start, f"close it with {quote}")
        parts.append(text[position:end])
        if text.startswith(quote * 2, end):
            parts.append(quote)
            position = end + 2
            continue
        value = "".join(parts)
        if "\x00" in value:
            raise FilterError(f"{what} contains a NUL character", text, start)
        return value, end + 1


def _field_keys(text: str, start: int) -> tuple[list[str], int]:
    keys = []
    position = start
    while True:
        if position < len(text) and text[position] == "`":
            key, position = _quoted(text, position, "`", "quoted key")
        elif match := _BARE_KEY.match(text, position):
            key, position = match.group(), match.end()
        else:
            raise FilterError("expected a key after '.'", text, position)
        keys.append(key)
        if position < len(text) and text[position] == ".":
            position += 1
        else:
            return keys, position


@dataclass(frozen=True)
class Target:
    """What a field names: a typed column, a path in a JSON document, or an objective's statistic."""

    name: str
    kind: str  # column, json, objective, stalled
    # The run's column, the run's JSON document, or the objective's statistic in run_objectives;
    # for stalled, computed from the run's status and last event, its status.
    column: Column[Any]
    path: tuple[str, ...] = ()
    objective: str = ""


@dataclass(frozen=True)
class Comparison:
    target: Target
    op: str  # one of OPERATORS, "in", "not in", "is null", "is not null"
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Any_:
    items: tuple[Node, ...]


Node = Comparison | Not | All | Any_


def _suggest(name: str, candidates: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _target(keys: tuple[str, ...], text: str, position: int) -> Target:
    name = ".".join(keys)
    head, rest = keys[0], keys[1:]
    if not rest and head in SCALAR_COLUMNS:
        return Target(head, "column", column=training_runs.columns[head])
    if not rest and head == "stalled":
        return Target(head, "stalled", training_runs.c.status)
    if rest and head in DOCUMENTS:
        if any('"' in key for key in rest):
            raise FilterError(f"a key with a double quote cannot be queried in {name!r}", text, position)
        return Target(name, "json", column=training_runs.columns[DOCUMENTS[head]], path=rest)
    if head == "objective":
        if len(rest) != 2:
            raise FilterError(
                f"expected objective.NAME.STAT in {name!r}",
                text,
                position,
                f"STAT is one of {', '.join(OBJECTIVE_STATS)}; a NAME with a dot goes in backticks",
            )
        objective, stat = rest
        if stat not in OBJECTIVE_STATS:
            suggestion = _suggest(stat, OBJECTIVE_STATS)
            raise FilterError(
                f"unknown objective statistic {stat!r}",
                text,
                position,
                suggestion or f"expected one of {', '.join(OBJECTIVE_STATS)}",
            )
        return Target(name, "objective", column=run_objectives.columns[stat], objective=objective)
    prefixes = [f"{p}." for p in (*DOCUMENTS, "objective")]
    if rest:
        close = difflib.get_close_matches(f"{head}.", prefixes, n=1, cutoff=0.6)
        suggestion = f"did you mean {close[0] + '.'.join(rest)!r}?" if close else None
    else:
        suggestion = _suggest(head, (*SCALAR_COLUMNS, *COMPUTED_FIELDS))
    raise FilterError(
        f"unknown field {name!r}",
        text,
        position,
        suggestion
        or "expected a typed column (status, batch_size...) or a path starting with config., summary., "
        "progress. or objective.",
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def error(self, expected: str, token: Token | None = None) -> FilterError:
        token = token or self.token
        found = token.text if token.kind == "end" else repr(token.text)
        return FilterError(f"expected {expected}, found {found}", self.text, token.position)

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        if self.token.kind == "keyword" and self.token.value in words:
            self.index += 1
            return True
        return False

    def expect(self, kind: str, expected: str) -> Token:
        if self.token.kind != kind:
            raise self.error(expected)
        return self.advance()

    def parse(self) -> Node:
        node = self.or_expr()
        if self.token.kind != "end":
            raise self.error("'and', 'or' or the end of the filter")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Any_(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.keyword("and"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else All(tuple(items))

    def not_expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"filter nested deeper than {MAX_DEPTH} levels", self.text, self.token.position)
        if self.keyword("not"):
            node: Node = Not(self.not_expr())
        elif self.token.kind == "(":
            self.advance()
            node = self.or_expr()
            self.expect(")", "')'")
        elif self.token.kind == "field":
            node = self.comparison()
        else:
            raise self.error("a field, 'not' or '('")
        self.depth -= 1
        return node

    def comparison(self) -> Comparison:
        field = self.advance()
        target = _target(field.value, self.text, field.position)
        operator = self.token
        if self.keyword("is"):
            op = "is not null" if self.keyword("not") else "is null"
            self.expect_keyword("null", "'null'")
            return Comparison(target, op, ())
        if self.keyword("not"):
            self.expect_keyword("in", "'in'")
            return self.in_list(target, "not in", operator)
        if self.keyword("in"):
            return self.in_list(target, "in", operator)
        if self.token.kind == "op" or self.keyword("like", "ilike"):
            op = operator.value
            if operator.kind == "op":
                self.advance()
            value = self.value()
            return Comparison(target, op, (_checked(target, op, value, self.text),))
        raise self.error("an operator (= != < <= > >= like ilike in, not in, is null, is not null)")

    def expect_keyword(self, word: str, expected: str) -> None:
        if not self.keyword(word):
            raise self.error(expected)

    def in_list(self, target: Target, op: str, operator: Token) -> Comparison:
        self.expect("(", "'(' and a list of values")
        values = [self.value()]
        while self.token.kind == ",":
            self.advance()
            values.append(self.value())
        self.expect(")", "',' or ')'")
        kinds = {_kind(value.value) for value in values}
        if len(kinds) > 1:
            raise FilterError(
                "the values of an 'in' list must all be numbers, all strings or all booleans",
                self.text,
                operator.position,
            )
        return Comparison(target, op, tuple(_checked(target, "=", value, self.text) for value in values))

    def value(self) -> Token:
        token = self.token
        if token.kind in ("number", "string") or self.keyword("true", "false"):
            if token.kind in ("number", "string"):
                self.advance()
            else:
                token = Token("boolean", token.value == "true", token.position, token.text)
            return token
        if token.kind == "keyword" and token.value == "null":
            raise FilterError(
                "null is not a value", self.text, token.position, "use 'is null' or 'is not null'"
            )
        raise self.error("a value (a number, a 'string', true or false)")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "string"


def _checked(target: Target, op: str, token: Token, text: str) -> Any:
    """Return the literal as the field compares it, or raise FilterError saying why it cannot."""
    value, kind = token.value, _kind(token.value)

    def refuse(problem: str) -> FilterError:
        return FilterError(problem, text, token.position)

    if op in ("like", "ilike"):
        if kind != "string":
            raise refuse(f"{op} needs a 'pattern' string, not {token.text}")
        if target.kind in ("objective", "stalled") or (
            target.kind == "column" and target.column.type.python_type is not str
        ):
            raise refuse(f"{op} needs a text field; {target.name} is not one")
        if re.search(r"(?<!\\)(?:\\\\)*\\$", value):
            raise refuse("a pattern cannot end with a lone escape character \\")
        return value
    if kind == "boolean" and op in _ORDERING:
        raise refuse(f"booleans compare only with = and !=, not {op}")
    if target.kind == "json":
        return value
    if target.kind == "stalled":
        if kind != "boolean":
            raise refuse(f"stalled compares with true or false, not {token.text}")
        return value
    if target.kind == "objective":
        if kind != "number":
            raise refuse(f"{target.name} compares with numbers, not {token.text}")
        return _as_float(value, target, refuse)
    column = target.column
    if isinstance(column.type, UTCDateTime):
        if kind != "string":
            raise refuse(f"{target.name} compares with times ('2026-11-30T12:00:00Z'), not {token.text}")
        try:
            return parse_time(value, target.name)
        except ValueError as error:
            raise refuse(str(error)) from None
    python_type = column.type.python_type
    if python_type in (int, float):
        if kind != "number":
            raise refuse(f"{target.name} compares with numbers, not {token.text}")
        if python_type is float:
            return _as_float(value, target, refuse)
        limit = INTEGER_RANGES.get(type(column.type), 2**63)
        if isinstance(value, int) and not -limit <= value < limit:
            raise refuse(f"{value} is out of the range of {target.name} ({-limit} to {limit - 1})")
        return value
    if kind != "string":
        raise refuse(f"{target.name} compares with strings, not {token.text}")
    if target.name == "status" and op in ("=", "!="):
        try:
            return extract.normalize_status(value)
        except ValueError:
            known = (*extract.STATUSES, *extract.WANDB_STATES)
            hint = _suggest(value.lower(), known) or f"expected one of {', '.join(extract.STATUSES)}"
            raise FilterError(f"unknown status {token.text}", text, token.position, hint) from None
    return value


def _as_float(value: int | float, target: Target, refuse: Callable[[str], FilterError]) -> float:
    try:
        return float(value)
    except OverflowError:
        raise refuse(f"{value} is out of the range of {target.name}") from None


def parse_field(name: str) -> Target:
    """Resolve one field name as the filter language writes it, or raise FilterError."""
    if not isinstance(name, str):
        raise FilterError(f"a field must be a string, not {type(name).__name__}", "", 0)
    tokens = _tokens(name)
    if len(tokens) != 2 or tokens[0].kind != "field":
        raise FilterError(f"{name!r} is not a field", name, tokens[0].position)
    return _target(tokens[0].value, name, 0)


def parse(text: str) -> Node | None:
    """Parse and check a filter; None when it is blank. Raise FilterError when it is not valid."""
    if not isinstance(text, str):
        raise FilterError(f"a filter must be a string, not {type(text).__name__}", "", 0)
    if not text.strip():
        return None
    return _Parser(text).parse()


# Compiling


def matching_run_ids(text: str | None, dialect: str) -> Select[str] | None:
    """Return ``SELECT run_id`` of the runs a filter matches, for ``run_id IN (...)`` in statements
    over other tables (``run_objectives``); None for a blank or None filter."""
    node = parse(text) if text is not None else None
    if node is None:
        return None
    return select(training_runs.c.run_id).where(_compile(node, True, dialect))


def compile_filter(text: str | None, dialect: str) -> ColumnElement[bool]:
    """Compile a filter to a condition on ``training_runs`` for ``dialect`` (``sqlite`` or
    ``postgresql``); a blank or None filter is ``true()``. Raise FilterError when it is not valid.

    Use it in any statement over ``training_runs``, inside the store's transaction::

        dialect = session.get_bind().dialect.name
        select(func.count()).select_from(training_runs).where(compile_filter(text, dialect))

    and over ``run_objectives`` through the run ids (matching_run_ids). The condition correlates
    only with ``training_runs``, so it can sit in a query that also reads ``run_objectives``. It is
    true where the filter is true, and false or NULL elsewhere: to negate it, compile
    ``not (...)`` rather than negating the SQL.
    """
    node = parse(text) if text is not None else None
    if node is None:
        return true()
    return _compile(node, True, dialect)


def _compile(node: Node, truth: bool, dialect: str) -> ColumnElement[bool]:
    """Compile "``node`` is true" (or "is false"): TRUE where it is, FALSE or NULL elsewhere; no NOT
    over what may be NULL, so AND and OR of such conditions treat NULL as FALSE, as WHERE does."""
    if isinstance(node, Not):
        return _compile(node.item, not truth, dialect)
    if isinstance(node, All | Any_):
        parts = [_compile(item, truth, dialect) for item in node.items]
        return and_(*parts) if isinstance(node, All) == truth else or_(*parts)
    return _comparison(node, truth, dialect)


def _comparison(node: Comparison, truth: bool, dialect: str) -> ColumnElement[bool]:
    op, target = node.op, node.target
    if op in ("is null", "is not null"):
        missing = _missing(target, dialect)
        return missing if (op == "is null") == truth else not_(missing)
    if not truth:
        op = _OPPOSITE.get(op, f"not {op}")
    if target.kind == "stalled":
        return _stalled_is(set(node.values) if op in ("=", "in") else {True, False} - set(node.values))
    if target.kind == "objective":
        return _objective_holds(target, dialect, lambda value: _apply(value, op, node.values, dialect))
    if target.kind == "json":
        json_value = _JsonValue(target, dialect)
        values = tuple(json_value.literal(v) for v in node.values)
        return _apply(json_value.of_kind(_kind(node.values[0])), op, values, dialect)
    return _apply(target.column, op, node.values, dialect)


def _stalled_is(wanted: set[bool]) -> ColumnElement[bool]:
    """Whether a run's stalled state is one of ``wanted``: it is always one of true and false."""
    if len(wanted) != 1:
        return true() if wanted else false()
    condition = stalled.stalled_condition()
    return condition if True in wanted else not_(condition)


def _apply(value: ColumnElement[Any], op: str, values: tuple[Any, ...], dialect: str) -> ColumnElement[bool]:
    """Compare a value with the literals: NULL where the value is NULL."""
    if op in ("in", "not in"):
        return value.in_(values) if op == "in" else value.not_in(values)
    (literal_value,) = values
    if op.endswith("like"):
        return _like(value, op, literal_value, dialect)
    if isinstance(literal_value, str) and op in _ORDERING and dialect == "postgresql":
        # By code point, as SQLite and Python compare, whatever the database's collation.
        value = value.collate("C")
    return _COMPARE[op](value, literal_value)


def _like(value: ColumnElement[Any], op: str, pattern: str, dialect: str) -> ColumnElement[bool]:
    negated = op.startswith("not ")
    if op.endswith("ilike"):
        return value.not_ilike(pattern, escape="\\") if negated else value.ilike(pattern, escape="\\")
    if dialect == "sqlite":
        # SQLite's LIKE ignores case; GLOB does not.
        matched = value.bool_op("GLOB")(_glob(pattern))
        return not_(matched) if negated else matched
    return value.not_like(pattern, escape="\\") if negated else value.like(pattern, escape="\\")


def _glob(pattern: str) -> str:
    """Translate a LIKE pattern (``%``, ``_``, ``\\`` escaping) to a GLOB one."""
    out = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(f"[{char}]" if char in "*?[" else char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        else:
            out.append(f"[{char}]" if char in "*?[" else char)
    return "".join(out)


def _objective_holds(
    target: Target, dialect: str, condition: Callable[[Any], ColumnElement[bool]] | None
) -> ColumnElement[bool]:
    """Whether the run has the objective with a value (meeting ``condition``, when given)."""
    objective = run_objectives.alias()
    value: ColumnElement[Any] = objective.c[target.column.key]
    conditions = [objective.c.objective_name == target.objective, value.is_not(None)]
    if condition is not None:
        conditions.append(condition(value))
    if dialect == "sqlite":
        # SQLite builds the list of ids once; a correlated EXISTS would run once per run.
        return training_runs.c.run_id.in_(select(objective.c.run_id).where(*conditions))
    # PostgreSQL turns EXISTS into a semi-join, or under OR into a hashed subplan.
    return exists().where(objective.c.run_id == training_runs.c.run_id, *conditions).correlate(training_runs)


def _missing(target: Target, dialect: str) -> ColumnElement[bool]:
    """Whether the field has no value (never unknown)."""
    if target.kind == "objective":
        return not_(_objective_holds(target, dialect, None))
    if target.kind == "json":
        return _JsonValue(target, dialect).missing()
    if target.kind == "stalled":
        return false()
    return target.column.is_(None)


def select_field(target: Target, dialect: str, objectives: dict[str, FromClause]) -> ColumnElement[Any]:
    """Return the SQL that reads a field's value, decoded like the column it comes from.

    An objective's statistic is read from an alias of ``run_objectives`` in ``objectives``
    (by objective name), created here when missing: join each to ``training_runs`` with
    objective_join.
    """
    if target.kind == "column":
        return target.column
    if target.kind == "stalled":
        return stalled.stalled_value()
    if target.kind == "objective":
        if target.objective not in objectives:
            objectives[target.objective] = run_objectives.alias()
        statistic: ColumnElement[Any] = objectives[target.objective].c[target.column.key]
        return statistic
    if dialect == "postgresql":
        return target.column.op("#>")(_pg_path(target.path))
    # SQLite's -> gives JSON text (json_extract would give a string and an object alike as text).
    return type_coerce(target.column.op("->")(sqlite_path(target.path)), target.column.type)


def objective_join(name: str, objective: FromClause) -> ColumnElement[bool]:
    """The condition joining an alias of ``run_objectives`` (select_field) to its run."""
    return and_(objective.c.run_id == training_runs.c.run_id, objective.c.objective_name == name)


class _JsonValue(JsonAccess):
    """A JSON path's value as SQL: each kind is NULL where the value is of another kind."""

    def __init__(self, target: Target, dialect: str) -> None:
        super().__init__(Field(target.name, target.column, target.path), dialect)

    def literal(self, value: Any) -> Any:
        """The literal as the value of its kind compares with it."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return value
        if self.dialect != "postgresql":
            # SQLite binds no integer beyond 64 bits, and holds such JSON numbers as doubles.
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                return float(value) if abs(value) < 2**1024 else math.copysign(math.inf, value)
            return value
        # PostgreSQL compares JSON numbers as NUMERIC: exactly, and any JSON number fits.
        return literal(Decimal(repr(value)) if isinstance(value, float) else Decimal(value), Numeric())

    def of_kind(self, kind: str) -> ColumnElement[Any]:
        if kind == "number":
            return self.numeric()
        if kind == "boolean":
            return self.boolean()
        return self.text()

    def _read_once(self, kind: str, type_: Any) -> ColumnElement[Any]:
        """PostgreSQL's function of migration 0008 that reads the path's value of this kind,
        decompressing the document once where a CASE would name it two or three times."""
        return Function(f"training_db_json_{kind}", self.field.column, _pg_path(self.field.path), type_=type_)

    def text(self) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return self._read_once("string", String)
        return super().text()

    def boolean(self) -> ColumnElement[Any]:
        """'true' or 'false' where the value is a boolean."""
        if self.dialect == "postgresql":
            return self._read_once("boolean", String)
        kind = self.json_type()
        return case((kind.in_(["true", "false"]), kind))

    def numeric(self) -> ColumnElement[Any]:
        """The number at the path, or the finite float of a ``{"$float": ...}`` marker there."""
        if self.dialect == "postgresql":
            return self._read_once("number", Numeric)
        kind = self.json_type()
        marker_path = (*self.field.path, "$float")
        marker = self._text_at(marker_path)
        whole = func.json_extract(self.field.column, sqlite_path(self.field.path))
        is_marker = and_(
            func.json_type(self.field.column, sqlite_path(marker_path)) == "text",
            whole == func.json_object("$float", marker),
        )
        return case(
            (kind.in_(["integer", "real"]), type_coerce(whole, Float)),
            (and_(kind == "object", is_marker, marker.not_in(_NON_FINITE)), cast(marker, Float)),
        )

    def missing(self) -> ColumnElement[bool]:
        """Whether the path is absent, null, NaN or an infinity (as the typed columns hold them)."""
        if self.dialect == "postgresql":
            return self._read_once("missing", Boolean)
        kind = self.json_type()
        markers = [f'{{"$float":"{m}"}}' for m in _NON_FINITE]
        whole = self._text_at(self.field.path)
        return or_(kind.is_(None), kind == "null", and_(kind == "object", whole.in_(markers)))

    def _text_at(self, path: tuple[str, ...]) -> ColumnElement[Any]:
        return type_coerce(func.json_extract(self.field.column, sqlite_path(path)), String)


def _pg_path(path: tuple[str, ...]) -> Any:
    return literal(list(path), type_=text_array())
