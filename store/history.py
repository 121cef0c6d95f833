"""Each run's metric history: bounded, packed in chunks, the same whatever order its points arrive in.

Thinning. Steps fall in buckets of ``stride`` steps, a power of two starting at 1; a run keeps the
first point of each bucket it has points in, and its latest point. When that makes more than
``max_points``, the stride doubles until it does not: two buckets become one, whose first point
is the first of the two, so at least half the buckets remain (never below a quarter of the limit,
as promised). Which points are kept depends only on the set of steps seen: a point dropped is
never the first of its bucket, nor the latest, however many more arrive, so nothing dropped
would have to come back, and duplicates and arrival order change nothing. Two events that give
one key different values at one step keep the same one of them whichever came first.

Chunks. A run's points are stored by step ranges that are dyadic intervals, [k * width,
(k + 1) * width) with width a power of two of at least the stride, so each bucket lies in one
chunk and an event reads and writes one row (two when the latest point moves to another chunk).
A chunk that grows past CHUNK_POINTS splits in halves. In a chunk (``encode_chunk``), points are
packed as binary: steps, times, and per key a presence bitmap, an integer bitmap and 8 bytes per
point, a double or a 64-bit integer, so NaN, the infinities and -0.0 come back as they went in.
Each key's column is at an offset known from the number of points, so a read takes only the keys
it wants from the database (substr), and PostgreSQL reads only their part of the TOASTed value.
Values neither holds (text, true/false, null, larger integers) go in the JSON ``extras`` column.
"""

from __future__ import annotations

import math
import re
import struct
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import translate
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from store import jsoncodec
from store.models import RunHistory, RunHistoryChunk
from store.records import Record, changes

DEFAULT_KEYS = ("train/*", "eval/*", "objectives/*", "reward*")
DEFAULT_MAX_KEYS = 64
DEFAULT_MAX_POINTS = 1000
# Points per chunk: rows of a few kB, few enough that an event rewrites little, many enough that
# a row's overhead is small next to its values.
CHUNK_POINTS = 32
# Steps from here on are left out of the history: the top interval is [0, TOP).
TOP = 1 << 62
_INT64 = 1 << 63
_FLOAT = {float}
# Where a point has no value of a key.
ABSENT: Any = object()


@dataclass(frozen=True)
class HistoryPolicy:
    """Which keys a run's history keeps, how many of them, and how many points."""

    keys: tuple[str, ...] = DEFAULT_KEYS
    max_keys: int = DEFAULT_MAX_KEYS
    max_points: int = DEFAULT_MAX_POINTS

    def __post_init__(self) -> None:
        if self.max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        if self.max_points < 4:
            raise ValueError("max_points must be at least 4")

    def keeps(self, key: str) -> bool:
        """Tell whether ``key`` matches one of the glob patterns."""
        return _keeps(self.keys, key)


DEFAULT_POLICY = HistoryPolicy()


# Runs log the same few dozen keys at every step.
@lru_cache(maxsize=4096)
def _keeps(patterns: tuple[str, ...], key: str) -> bool:
    return _matcher(patterns)(key) is not None


@lru_cache(maxsize=16)
def _matcher(patterns: tuple[str, ...]) -> Any:
    if not patterns:
        return re.compile(r"(?!)").match
    return re.compile("|".join(f"(?:{translate(pattern)})" for pattern in patterns)).match


class HistoryRecord(Record):
    table = RunHistory.__table__
    columns = tuple(column.key for column in RunHistory.__table__.columns)
    key = ("run_id",)


class ChunkRecord(Record):
    table = RunHistoryChunk.__table__
    columns = tuple(column.key for column in RunHistoryChunk.__table__.columns)
    key = ("run_id", "start")


# Encoding


@lru_cache(maxsize=1024)
def _struct(layout: str) -> struct.Struct:
    return struct.Struct("<" + layout)


def column_size(points: int) -> int:
    """Return the bytes of one key's column in a chunk of ``points`` points."""
    return 2 * ((points + 7) // 8) + 8 * points


def encode_chunk(
    steps: Sequence[int], times: Sequence[float], columns: Sequence[Sequence[Any]]
) -> tuple[bytes, dict[str, dict[str, Any]] | None]:
    """Pack a chunk: its steps (ascending), their times (NaN when unknown) and one column per key
    index, a value per step or ABSENT; return the packed data and the values it cannot hold,
    ``{key index: {point index: value}}``, or None."""
    n = len(steps)
    out = bytearray(_struct(f"{n}q{n}d").pack(*steps, *times))
    width = (n + 7) // 8
    full = ((1 << n) - 1).to_bytes(width, "little") + bytes(width)
    doubles = _struct(f"{n}d")
    extras: dict[str, dict[str, Any]] = {}
    for key, column in enumerate(columns):
        if set(map(type, column)) == _FLOAT:
            out += full
            out += doubles.pack(*column)
            continue
        present = integers = 0
        layout: list[str] = []
        slots: list[Any] = []
        for index, value in enumerate(column):
            kind = type(value)
            if kind is float:
                present |= 1 << index
                layout.append("d")
                slots.append(value)
            elif kind is int and -_INT64 <= value < _INT64:
                present |= 1 << index
                integers |= 1 << index
                layout.append("q")
                slots.append(value)
            else:
                layout.append("d")
                slots.append(0.0)
                if value is not ABSENT:
                    extras.setdefault(str(key), {})[str(index)] = value
        out += present.to_bytes(width, "little") + integers.to_bytes(width, "little")
        out += _struct("".join(layout)).pack(*slots)
    return bytes(out), extras or None


def decode_steps(data: bytes, points: int) -> tuple[int, ...]:
    """Unpack a chunk's steps, from its data or the data's first 8 x ``points`` bytes."""
    return _struct(f"{points}q").unpack_from(data)


def decode_times(data: bytes, points: int, offset: int = 0) -> tuple[float, ...]:
    """Unpack a chunk's times, at ``offset`` in ``data`` (8 x ``points`` in the whole data)."""
    return _struct(f"{points}d").unpack_from(data, offset)


def decode_column(
    data: bytes, points: int, odd: Mapping[str, Any] | None, offset: int = 0
) -> list[Any] | None:
    """Unpack one key's column at ``offset`` in ``data``, ABSENT where a point has no value; None
    when the chunk holds no column for the key."""
    if len(data) < offset + column_size(points):
        return None
    width = (points + 7) // 8
    present = int.from_bytes(data[offset : offset + width], "little")
    integers = int.from_bytes(data[offset + width : offset + 2 * width], "little")
    at = offset + 2 * width
    if integers == 0:
        values = list(_struct(f"{points}d").unpack_from(data, at))
    elif integers == present:
        values = list(_struct(f"{points}q").unpack_from(data, at))
    else:
        doubles = _struct(f"{points}d").unpack_from(data, at)
        longs = _struct(f"{points}q").unpack_from(data, at)
        values = [longs[i] if integers >> i & 1 else doubles[i] for i in range(points)]
    if present != (1 << points) - 1:
        odd = odd or {}
        values = [values[i] if present >> i & 1 else odd.get(str(i), ABSENT) for i in range(points)]
    return values


@dataclass
class DecodedChunk:
    steps: tuple[int, ...]
    times: tuple[float, ...]
    # Key index -> one value per point, ABSENT where the point has none.
    columns: dict[int, list[Any]]


def decode_chunk(data: bytes, points: int, extras: Mapping[str, Any] | None) -> DecodedChunk:
    """Unpack a whole chunk: its steps, times and every key's column."""
    size = column_size(points)
    base = 16 * points
    columns: dict[int, list[Any]] = {}
    for key in range((len(data) - base) // size if size else 0):
        column = decode_column(data, points, (extras or {}).get(str(key)), base + key * size)
        assert column is not None
        columns[key] = column
    return DecodedChunk(decode_steps(data, points), decode_times(data, points, 8 * points), columns)


# Thinning and chunk layout


def bucket_count(steps: Iterable[int], stride: int, last: int) -> int:
    """Count the points kept at ``stride``: one per bucket, and the latest unless it is its bucket's first."""
    firsts: dict[int, int] = {}
    for step in steps:
        bucket = step // stride
        if bucket not in firsts or step < firsts[bucket]:
            firsts[bucket] = step
    return len(firsts) + (firsts[last // stride] != last)


def layout(steps: Sequence[int], start: int, width: int, stride: int) -> list[tuple[int, int, Sequence[int]]]:
    """Split the dyadic interval [start, start + width) holding ``steps`` (ascending) into chunks
    of at most CHUNK_POINTS points, none narrower than ``stride``; empty ones are left out."""
    if not steps:
        return []
    if len(steps) <= CHUNK_POINTS or width // 2 < stride:
        return [(start, width, steps)]
    half = width // 2
    middle = start + half
    cut = next((i for i, step in enumerate(steps) if step >= middle), len(steps))
    return layout(steps[:cut], start, half, stride) + layout(steps[cut:], middle, half, stride)


# Writing


def _read_histories(
    session: Session, run_ids: list[str]
) -> dict[str, tuple[dict[str, Any], dict[str, Any] | None]]:
    """Read the history rows of runs, each with its chunk of the greatest start (None without chunks)."""
    histories, chunks = RunHistory.__table__, RunHistoryChunk.__table__
    others = chunks.alias("others")
    top = select(func.max(others.c.start)).where(others.c.run_id == histories.c.run_id).scalar_subquery()
    chunk_columns = [column.label(f"chunk_{column.key}") for column in chunks.columns]
    statement = (
        select(histories, *chunk_columns)
        .select_from(
            histories.outerjoin(chunks, and_(chunks.c.run_id == histories.c.run_id, chunks.c.start == top))
        )
        .where(histories.c.run_id.in_(run_ids))
    )
    found = {}
    for row in session.connection().execute(statement):
        values = row._mapping
        meta = {column.key: values[column.key] for column in histories.columns}
        chunk = {column.key: values[f"chunk_{column.key}"] for column in chunks.columns}
        found[meta["run_id"]] = (meta, chunk if chunk["start"] is not None else None)
    return found


class _Chunk:
    """A chunk being edited: its record, and its points as columns in ascending steps."""

    def __init__(
        self, record: ChunkRecord, steps: list[int], times: list[float], columns: list[list[Any]]
    ) -> None:
        self.record = record
        self._steps = steps
        self._times = times
        # Per key index, a value or ABSENT per step.
        self._columns = columns
        self._unpacked = True
        self.dirty = False

    @classmethod
    def read(cls, record: ChunkRecord) -> _Chunk:
        """Make a chunk of a record as read; its points are unpacked when first looked at (a unit
        of work reads the latest chunk of each of its runs, most of which get no point)."""
        chunk = cls(record, [], [], [])
        chunk._unpacked = False
        return chunk

    def _unpack(self) -> None:
        decoded = decode_chunk(self.record.data, self.record.points, self.record.extras)
        self._steps, self._times = list(decoded.steps), list(decoded.times)
        self._columns = [decoded.columns[key] for key in range(len(decoded.columns))]
        self._unpacked = True

    @property
    def steps(self) -> list[int]:
        if not self._unpacked:
            self._unpack()
        return self._steps

    @property
    def times(self) -> list[float]:
        if not self._unpacked:
            self._unpack()
        return self._times

    @property
    def columns(self) -> list[list[Any]]:
        if not self._unpacked:
            self._unpack()
        return self._columns

    @property
    def start(self) -> int:
        return int(self.record.start)

    @property
    def width(self) -> int:
        return int(self.record.width)

    def holds(self, step: int) -> bool:
        return self.start <= step < self.start + self.width

    def index(self, step: int) -> int | None:
        """Return the position of ``step``, None when the chunk has no point there."""
        i = bisect_left(self.steps, step)
        return i if i < len(self.steps) and self.steps[i] == step else None

    def first_in(self, low: int, high: int) -> int | None:
        """Return the first step in [low, high), or None."""
        i = bisect_left(self.steps, low)
        return self.steps[i] if i < len(self.steps) and self.steps[i] < high else None

    def _widen(self, keys: int) -> None:
        while len(self.columns) < keys:
            self.columns.append([ABSENT] * len(self.steps))

    def insert(self, step: int, time: float, values: Mapping[int, Any]) -> None:
        self._widen(max(values) + 1)
        i = bisect_left(self.steps, step)
        self.steps.insert(i, step)
        self.times.insert(i, time)
        for key, column in enumerate(self.columns):
            column.insert(i, values.get(key, ABSENT))
        self.dirty = True

    def remove(self, step: int) -> None:
        i = self.index(step)
        assert i is not None
        del self.steps[i]
        del self.times[i]
        for column in self.columns:
            del column[i]
        self.dirty = True

    def merge(self, i: int, time: float, values: Mapping[int, Any]) -> bool:
        """Merge another event's values at the point's step; return whether it changed."""
        changed = False
        if time == time and not self.times[i] <= time:
            self.times[i] = time
            changed = True
        self._widen(max(values) + 1)
        for key, value in values.items():
            old = self.columns[key][i]
            # Either may arrive first: of two different values, keep the same one whatever the order.
            if old is ABSENT or (old is not value and _order(value) > _order(old)):
                self.columns[key][i] = value
                changed = True
        self.dirty |= changed
        return changed

    def rows(self) -> dict[int, tuple[float, list[Any]]]:
        """Return the points, step -> (time, values by key index)."""
        return {
            step: (self.times[i], [column[i] for column in self.columns]) for i, step in enumerate(self.steps)
        }


def _chunk_of(
    record: ChunkRecord, rows: Mapping[int, tuple[float, list[Any]]], steps: Sequence[int]
) -> _Chunk:
    """Make a chunk of the points ``rows`` has at ``steps`` (ascending)."""
    keys = max((len(rows[step][1]) for step in steps), default=0)
    columns = [
        [rows[step][1][key] if key < len(rows[step][1]) else ABSENT for step in steps] for key in range(keys)
    ]
    chunk = _Chunk(record, list(steps), [rows[step][0] for step in steps], columns)
    chunk.dirty = True
    return chunk


def _order(value: Any) -> tuple[str, str]:
    return type(value).__name__, jsoncodec.dumps(value, sort_keys=True)


_HISTORIES = "run_histories"


class RunHistoryEditor:
    """Add points to one run's history within a transaction that holds the run's lock."""

    def __init__(
        self, session: Session, run_id: str, policy: HistoryPolicy, meta: Any = None, top: Any = None
    ) -> None:
        """Edit the run's history, its row ``meta`` read with its chunk of the greatest start, ``top``."""
        self.session = session
        self.run_id = run_id
        self.policy = policy
        self.meta: HistoryRecord | None = None
        if meta is not None:
            self.meta = HistoryRecord(meta)
            changes(session).read([self.meta])
        self.chunks: dict[int, _Chunk] = {}
        # Every chunk that starts here or above is in self.chunks, and every other chunk ends
        # here or below: 0 when all are, TOP when none is known.
        self.cached_from = 0 if self.meta is None else TOP
        if top is not None:
            self.cached_from = self._adopt(top).start
        self.keys: list[str] = list(self.meta.keys) if self.meta is not None else []
        self.dropped_keys: set[str] = set()
        # Whether a chunk was deleted since the pending changes were last written.
        self.deleted = False
        changes(session).before_write.append(self.finish)

    @property
    def all_loaded(self) -> bool:
        return self.cached_from == 0

    @classmethod
    def of(
        cls, session: Session, run_id: str, policy: HistoryPolicy, neighbours: Iterable[str] = ()
    ) -> RunHistoryEditor:
        """Return the transaction's editor of the run's history, the same for every call on the run.

        The first call reads the history rows of ``run_id`` and of its ``neighbours`` (the other
        runs of a unit of work) in one statement, each with the chunk a live run adds its next
        point to: then adding a point at a new latest step reads nothing more.
        """
        editors = session.info.setdefault(_HISTORIES, {})
        editor = editors.get(run_id)
        if editor is not None:
            editor.policy = policy
            return editor
        wanted = sorted({run_id, *neighbours} - set(editors))
        found = _read_histories(session, wanted)
        for wanted_id in wanted:
            editors[wanted_id] = cls(session, wanted_id, policy, *found.get(wanted_id, (None, None)))
        return editors[run_id]

    # Reading chunks

    def _read(self, statement: Any) -> Any:
        """Run a read of the run's chunks on the connection, without writing the transaction's
        pending changes first as the session would: the editor holds every chunk it changed.
        Chunks it deleted are still in the database until they are written, and are written first."""
        if self.deleted:
            changes(self.session).write(self.session)
            self.deleted = False
        return self.session.connection().execute(statement)

    def _adopt(self, row: Any) -> _Chunk:
        values = row if isinstance(row, Mapping) else row._mapping
        start = int(values["start"])
        chunk = self.chunks.get(start)
        if chunk is None:
            record = ChunkRecord(dict(values))
            changes(self.session).read([record])
            chunk = self.chunks[start] = _Chunk.read(record)
        return chunk

    def _select(self, *conditions: Any, descending: bool = False) -> _Chunk | None:
        table = RunHistoryChunk.__table__
        order = table.c.start.desc() if descending else table.c.start
        row = self._read(
            select(table).where(table.c.run_id == self.run_id, *conditions).order_by(order).limit(1)
        ).first()
        return None if row is None else self._adopt(row)

    def load_all(self) -> None:
        """Read every chunk of the run (for many points at once, or to thin)."""
        if self.all_loaded:
            return
        table = RunHistoryChunk.__table__
        for row in self._read(select(table).where(table.c.run_id == self.run_id)):
            self._adopt(row)
        self.cached_from = 0

    def _chunk_at(self, step: int) -> _Chunk | None:
        for chunk in self.chunks.values():
            if chunk.holds(step):
                return chunk
        if step >= self.cached_from:
            return None
        chunk = self._select(RunHistoryChunk.start <= step, descending=True)
        return chunk if chunk is not None and chunk.holds(step) else None

    def _free_interval(self, step: int) -> tuple[int, int]:
        """Return the widest dyadic interval holding ``step`` that no chunk overlaps."""
        low, high = 0, TOP
        for chunk in self.chunks.values():
            if chunk.start + chunk.width <= step:
                low = max(low, chunk.start + chunk.width)
            elif chunk.start > step:
                high = min(high, chunk.start)
        if step >= self.cached_from:
            low = max(low, self.cached_from)
        else:
            before = self._select(RunHistoryChunk.start <= step, descending=True)
            after = self._select(RunHistoryChunk.start > step)
            if before is not None:
                low = max(low, before.start + before.width)
            if after is not None:
                high = min(high, after.start)
        width = TOP
        while True:
            start = step - step % width
            if start >= low and start + width <= high:
                return start, width
            width //= 2

    # Adding points

    def key_indexes(self, metrics: Mapping[str, Any]) -> dict[int, Any]:
        """Return the metrics (of kept keys) by key index, adding new keys to the run's."""
        keys = self.keys
        known = {name: index for index, name in enumerate(keys)}
        kept: dict[int, Any] = {}
        for name, value in metrics.items():
            index = known.get(name)
            if index is None:
                if len(keys) >= self.policy.max_keys:
                    self.dropped_keys.add(name)
                    continue
                index = known[name] = len(keys)
                keys.append(name)
            kept[index] = value
        if self.meta is not None and len(keys) != len(self.meta.keys):
            # A copy: records find changes by comparing with the list as read.
            self.meta.keys = list(keys)
        return kept

    def add(self, step: int, time: float, metrics: Mapping[str, Any]) -> bool:
        """Add one point; return whether the stored history changed."""
        if step >= TOP:
            return False
        values = self.key_indexes(metrics)
        if not values:
            return False
        if self.meta is None:
            self.meta = HistoryRecord(
                {"run_id": self.run_id, "keys": list(self.keys), "stride": 1, "points": 0, "last_step": step}
            )
            changes(self.session).add(self.meta)
            last = None
        else:
            last = int(self.meta.last_step)
        stride = int(self.meta.stride)
        chunk = self._chunk_at(step)
        at = chunk.index(step) if chunk is not None else None
        if chunk is not None and at is not None:
            return chunk.merge(at, time, values)
        bucket = step - step % stride
        first = chunk.first_in(bucket, bucket + stride) if chunk is not None else None
        is_first = first is None or step < first
        is_last = last is None or step > last
        if not (is_first or is_last):
            return False
        if chunk is None:
            start, width = self._free_interval(step)
            record = ChunkRecord(
                {"run_id": self.run_id, "start": start, "width": width, "points": 0, "data": b""}
            )
            changes(self.session).add(record)
            chunk = self.chunks[start] = _Chunk(record, [], [], [])
        chunk.insert(step, time, values)
        points = int(self.meta.points) + 1
        if is_first and first is not None and first != last:
            chunk.remove(first)
            points -= 1
        if is_last and last is not None:
            holder = self._chunk_at(last)
            assert holder is not None
            bucket_of_last = last - last % stride
            if holder.first_in(bucket_of_last, last) is not None:
                holder.remove(last)
                points -= 1
            self.meta.last_step = step
        self.meta.points = points
        self._relayout(chunk, stride)
        if points > self.policy.max_points:
            self._thin()
        return True

    def _relayout(self, chunk: _Chunk, stride: int) -> None:
        if len(chunk.steps) <= CHUNK_POINTS or chunk.width // 2 < stride:
            return
        self._replace([chunk], layout(chunk.steps, chunk.start, chunk.width, stride))

    def _replace(self, old: list[_Chunk], new: list[tuple[int, int, Sequence[int]]]) -> None:
        """Replace chunks by a layout of their points, reusing the records of the same start."""
        rows: dict[int, tuple[float, list[Any]]] = {}
        records: dict[int, ChunkRecord] = {}
        for chunk in old:
            rows.update(chunk.rows())
            records[chunk.start] = chunk.record
            del self.chunks[chunk.start]
        tracker = changes(self.session)
        for start, width, steps in new:
            record = records.pop(start, None)
            if record is None:
                record = ChunkRecord(
                    {"run_id": self.run_id, "start": start, "width": width, "points": 0, "data": b""}
                )
                tracker.add(record)
            record.width = width
            self.chunks[start] = _chunk_of(record, rows, steps)
        for record in records.values():
            tracker.delete(record)
            self.deleted = True

    def _thin(self) -> None:
        """Widen the stride until the points kept fit in max_points, and drop the others."""
        assert self.meta is not None
        self.load_all()
        steps = sorted(step for chunk in self.chunks.values() for step in chunk.steps)
        last = int(self.meta.last_step)
        stride = int(self.meta.stride)
        while bucket_count(steps, stride, last) > self.policy.max_points:
            stride *= 2
        firsts: dict[int, int] = {}
        for step in steps:
            firsts.setdefault(step // stride, step)
        kept = sorted(set(firsts.values()) | {last})
        self.meta.stride = stride
        self.meta.points = len(kept)
        self._replace(list(self.chunks.values()), layout(kept, 0, TOP, stride))

    def finish(self) -> None:
        """Pack the chunks changed since the last call into their records (before each write)."""
        for chunk in list(self.chunks.values()):
            if not chunk.steps:
                # Its only point was the latest, which moved on.
                changes(self.session).delete(chunk.record)
                del self.chunks[chunk.start]
                self.deleted = True
            elif chunk.dirty:
                record = chunk.record
                record.data, extras = encode_chunk(chunk.steps, chunk.times, chunk.columns)
                record.points = len(chunk.steps)
                if extras != record.extras:
                    record.extras = extras
                chunk.dirty = False


def history_rows(
    run_id: str,
    steps: Sequence[int],
    times: Sequence[float],
    series: Mapping[str, Sequence[Any]],
    policy: HistoryPolicy = DEFAULT_POLICY,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return the ``run_histories`` row and the ``run_history_chunks`` rows of a whole history at
    once, for bulk loads: ``steps`` ascending and distinct, one value or ABSENT per step in each
    series (the keys in this order), thinned as points added one by one would be."""
    if not steps:
        raise ValueError("a history needs at least one step")
    last = steps[-1]
    stride = 1
    while bucket_count(steps, stride, last) > policy.max_points:
        stride *= 2
    firsts: dict[int, int] = {}
    for index, step in enumerate(steps):
        firsts.setdefault(step // stride, index)
    kept = sorted(set(firsts.values()) | {len(steps) - 1})
    kept_steps = [steps[i] for i in kept]
    columns = [[column[i] for i in kept] for column in series.values()]
    chunks = []
    offset = 0
    for start, width, chunk_steps in layout(kept_steps, 0, TOP, stride):
        end = offset + len(chunk_steps)
        data, extras = encode_chunk(
            chunk_steps, [times[i] for i in kept[offset:end]], [column[offset:end] for column in columns]
        )
        chunks.append(
            {
                "run_id": run_id,
                "start": start,
                "width": width,
                "points": len(chunk_steps),
                "data": data,
                "extras": extras,
            }
        )
        offset = end
    meta = {
        "run_id": run_id,
        "keys": list(series),
        "stride": stride,
        "points": len(kept),
        "last_step": last,
        "wandb_history_lines": None,
    }
    return meta, chunks


def epoch(time: datetime | float | None) -> float:
    """Return a point's time as seconds since the epoch, NaN when unknown."""
    if time is None:
        return math.nan
    if isinstance(time, datetime):
        return time.timestamp()
    return float(time)


def add_points(
    session: Session,
    run_id: str,
    points: Iterable[tuple[int, datetime | float | None, Mapping[str, Any]]],
    policy: HistoryPolicy,
    neighbours: Iterable[str] = (),
) -> tuple[bool, set[str]]:
    """Add points ``(step, time, metrics)`` to the run's history, in a transaction holding the run's
    lock (and those of its ``neighbours``, whose histories are read with it); return whether the
    history changed and the keys left out for HISTORY_MAX_KEYS."""
    # Only points with a kept key and a step below TOP are added: without any, the run's
    # history is not even read.
    points = [
        (step, time, kept)
        for step, time, metrics in points
        if step < TOP
        and (kept := {k: v for k, v in metrics.items() if isinstance(k, str) and policy.keeps(k)})
    ]
    if not points:
        return False, set()
    editor = RunHistoryEditor.of(session, run_id, policy, neighbours)
    if len(points) > 4:
        editor.load_all()
    changed = False
    for step, time, metrics in points:
        changed |= editor.add(step, epoch(time), metrics)
    dropped, editor.dropped_keys = editor.dropped_keys, set()
    return changed, dropped


def set_wandb_history_lines(session: Session, run_id: str, policy: HistoryPolicy, lines: int) -> None:
    """Record how many history lines W&B reported when the run's history was read (nothing
    when the run has no history to record it in: the next sync reads it again)."""
    editor = RunHistoryEditor.of(session, run_id, policy)
    if editor.meta is not None and editor.meta.wandb_history_lines != lines:
        editor.meta.wandb_history_lines = lines
