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
Values neither holds (text, true/false, null, larger integers) follow as JSON (store/jsoncodec.py).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import translate
from functools import lru_cache
from typing import Any

from sqlalchemy import select
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
_HEADER = struct.Struct("<HH")
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
        return _matcher(self.keys)(key) is not None


DEFAULT_POLICY = HistoryPolicy()


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


def encode_chunk(points: Sequence[tuple[int, float, Mapping[int, Any]]]) -> bytes:
    """Pack points ``(step, time, {key index: value})``, in ascending steps; time may be NaN."""
    n = len(points)
    keys = 1 + max((max(values) for _, _, values in points if values), default=-1)
    out = bytearray(_HEADER.pack(n, keys))
    out += _struct(f"{n}q{n}d").pack(*(p[0] for p in points), *(p[1] for p in points))
    width = (n + 7) // 8
    extras: dict[str, dict[str, Any]] = {}
    for key in range(keys):
        present = integers = 0
        layout: list[str] = []
        slots: list[Any] = []
        for index, (_, _, values) in enumerate(points):
            value = values.get(key, ABSENT)
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
    if extras:
        out += jsoncodec.dumps(extras).encode()
    return bytes(out)


@dataclass
class DecodedChunk:
    steps: tuple[int, ...]
    times: tuple[float, ...]
    # Key index -> one value per point, ABSENT where the point has none.
    columns: dict[int, list[Any]]


def decode_chunk(data: bytes, wanted: Iterable[int] | None = None) -> DecodedChunk:
    """Unpack a chunk: its steps, times, and the columns of the ``wanted`` keys (all when None)."""
    n, keys = _HEADER.unpack_from(data)
    steps = _struct(f"{n}q").unpack_from(data, 4)
    times = _struct(f"{n}d").unpack_from(data, 4 + 8 * n)
    width = (n + 7) // 8
    size = 2 * width + 8 * n
    base = 4 + 16 * n
    end = base + keys * size
    extras = jsoncodec.loads(data[end:]) if len(data) > end else {}
    full = (1 << n) - 1
    columns: dict[int, list[Any]] = {}
    for key in range(keys) if wanted is None else wanted:
        if key >= keys:
            continue
        at = base + key * size
        present = int.from_bytes(data[at : at + width], "little")
        integers = int.from_bytes(data[at + width : at + 2 * width], "little")
        at += 2 * width
        if integers == 0:
            values = list(_struct(f"{n}d").unpack_from(data, at))
        elif integers == present:
            values = list(_struct(f"{n}q").unpack_from(data, at))
        else:
            doubles = _struct(f"{n}d").unpack_from(data, at)
            longs = _struct(f"{n}q").unpack_from(data, at)
            values = [longs[i] if integers >> i & 1 else doubles[i] for i in range(n)]
        if present != full:
            odd = extras.get(str(key), {})
            values = [values[i] if present >> i & 1 else odd.get(str(i), ABSENT) for i in range(n)]
        columns[key] = values
    return DecodedChunk(steps, times, columns)


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


class _Chunk:
    """A chunk being edited: its record and its points, step -> [time, {key index: value}]."""

    def __init__(self, record: ChunkRecord, points: dict[int, list[Any]]) -> None:
        self.record = record
        self.points = points
        self.dirty = False

    @property
    def start(self) -> int:
        return int(self.record.start)

    @property
    def width(self) -> int:
        return int(self.record.width)

    def holds(self, step: int) -> bool:
        return self.start <= step < self.start + self.width


def _decoded_points(data: bytes) -> dict[int, list[Any]]:
    chunk = decode_chunk(data)
    points: dict[int, list[Any]] = {
        step: [time, {}] for step, time in zip(chunk.steps, chunk.times, strict=True)
    }
    for key, column in chunk.columns.items():
        for step, value in zip(chunk.steps, column, strict=True):
            if value is not ABSENT:
                points[step][1][key] = value
    return points


def _order(value: Any) -> tuple[str, str]:
    return type(value).__name__, jsoncodec.dumps(value, sort_keys=True)


def _merge(point: list[Any], time: float, values: Mapping[int, Any]) -> bool:
    """Merge another event's values at the same step into a point; return whether it changed."""
    changed = False
    if time == time and not point[0] <= time:
        point[0] = time
        changed = True
    stored = point[1]
    for key, value in values.items():
        old = stored.get(key, ABSENT)
        if old is ABSENT:
            stored[key] = value
            changed = True
        elif old is not value and _order(old) != _order(value):
            # Either may arrive first: keep the same one whatever the order.
            if _order(value) > _order(old):
                stored[key] = value
                changed = True
    return changed


_HISTORIES = "run_histories"


class RunHistoryEditor:
    """Add points to one run's history within a transaction that holds the run's lock."""

    def __init__(self, session: Session, run_id: str, policy: HistoryPolicy) -> None:
        self.session = session
        self.run_id = run_id
        self.policy = policy
        row = session.execute(select(RunHistory.__table__).where(RunHistory.run_id == run_id)).first()
        self.meta: HistoryRecord | None = None
        if row is not None:
            self.meta = HistoryRecord(dict(row._mapping))
            changes(session).read([self.meta])
        self.chunks: dict[int, _Chunk] = {}
        self.all_loaded = self.meta is None
        self.keys: list[str] = list(self.meta.keys) if self.meta is not None else []
        self.dropped_keys: set[str] = set()

    @classmethod
    def of(cls, session: Session, run_id: str, policy: HistoryPolicy) -> RunHistoryEditor:
        """Return the transaction's editor of the run's history, the same for every call on the run."""
        editors = session.info.setdefault(_HISTORIES, {})
        editor = editors.get(run_id)
        if editor is None or editor.policy != policy:
            if editor is not None:
                editor.finish()
            editor = editors[run_id] = cls(session, run_id, policy)
        return editor

    # Reading chunks

    def _adopt(self, row: Any) -> _Chunk:
        start = int(row.start)
        chunk = self.chunks.get(start)
        if chunk is None:
            record = ChunkRecord(dict(row._mapping))
            changes(self.session).read([record])
            chunk = self.chunks[start] = _Chunk(record, _decoded_points(record.data))
        return chunk

    def _select(self, *conditions: Any, descending: bool = False) -> _Chunk | None:
        table = RunHistoryChunk.__table__
        order = table.c.start.desc() if descending else table.c.start
        row = self.session.execute(
            select(table).where(table.c.run_id == self.run_id, *conditions).order_by(order).limit(1)
        ).first()
        return None if row is None else self._adopt(row)

    def load_all(self) -> None:
        """Read every chunk of the run (for many points at once, or to thin)."""
        if self.all_loaded:
            return
        table = RunHistoryChunk.__table__
        for row in self.session.execute(select(table).where(table.c.run_id == self.run_id)):
            self._adopt(row)
        self.all_loaded = True

    def _chunk_at(self, step: int) -> _Chunk | None:
        for chunk in self.chunks.values():
            if chunk.holds(step):
                return chunk
        if self.all_loaded:
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
        if not self.all_loaded:
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
        """Return the metrics the history keeps, by key index, adding new keys to the run's."""
        keys = self.keys
        known = {name: index for index, name in enumerate(keys)}
        kept: dict[int, Any] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not self.policy.keeps(name):
                continue
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
        if chunk is not None and step in chunk.points:
            changed = _merge(chunk.points[step], time, values)
            chunk.dirty |= changed
            return changed
        bucket = step // stride
        first = min((s for s in chunk.points if s // stride == bucket), default=None) if chunk else None
        is_first = first is None or step < first
        is_last = last is None or step > last
        if not (is_first or is_last):
            return False
        if chunk is None:
            start, width = self._free_interval(step)
            record = ChunkRecord({"run_id": self.run_id, "start": start, "width": width, "data": b""})
            changes(self.session).add(record)
            chunk = self.chunks[start] = _Chunk(record, {})
        chunk.points[step] = [time, dict(values)]
        chunk.dirty = True
        points = int(self.meta.points) + 1
        if is_first and first is not None and first != last:
            del chunk.points[first]
            points -= 1
        if is_last and last is not None:
            holder = self._chunk_at(last)
            assert holder is not None
            bucket_of_last = last // stride
            if any(s < last and s // stride == bucket_of_last for s in holder.points):
                del holder.points[last]
                holder.dirty = True
                points -= 1
            self.meta.last_step = step
        self.meta.points = points
        self._relayout(chunk, stride)
        if points > self.policy.max_points:
            self._thin()
        return True

    def _relayout(self, chunk: _Chunk, stride: int) -> None:
        if len(chunk.points) <= CHUNK_POINTS or chunk.width // 2 < stride:
            return
        self._replace([chunk], layout(sorted(chunk.points), chunk.start, chunk.width, stride))

    def _replace(self, old: list[_Chunk], new: list[tuple[int, int, Sequence[int]]]) -> None:
        """Replace chunks by a layout of their points, reusing the records of the same start."""
        points: dict[int, list[Any]] = {}
        records: dict[int, ChunkRecord] = {}
        for chunk in old:
            points.update(chunk.points)
            records[chunk.start] = chunk.record
            del self.chunks[chunk.start]
        tracker = changes(self.session)
        for start, width, steps in new:
            record = records.pop(start, None)
            if record is None:
                record = ChunkRecord({"run_id": self.run_id, "start": start, "width": width, "data": b""})
                tracker.add(record)
            record.width = width
            chunk = self.chunks[start] = _Chunk(record, {step: points[step] for step in steps})
            chunk.dirty = True
        for record in records.values():
            tracker.delete(record)

    def _thin(self) -> None:
        """Widen the stride until the points kept fit in max_points, and drop the others."""
        assert self.meta is not None
        self.load_all()
        steps = sorted(step for chunk in self.chunks.values() for step in chunk.points)
        last = int(self.meta.last_step)
        stride = int(self.meta.stride)
        while bucket_count(steps, stride, last) > self.policy.max_points:
            stride *= 2
        firsts: dict[int, int] = {}
        for step in steps:
            firsts.setdefault(step // stride, step)
        kept = sorted(set(firsts.values()) | {last})
        kept_set = set(kept)
        for chunk in self.chunks.values():
            for step in [s for s in chunk.points if s not in kept_set]:
                del chunk.points[step]
        self.meta.stride = stride
        self.meta.points = len(kept)
        self._replace(list(self.chunks.values()), layout(kept, 0, TOP, stride))

    def finish(self) -> None:
        """Pack the chunks changed since the last call into their records."""
        for chunk in list(self.chunks.values()):
            if not chunk.points:
                # Its only point was the latest, which moved on.
                changes(self.session).delete(chunk.record)
                del self.chunks[chunk.start]
            elif chunk.dirty:
                steps = sorted(chunk.points)
                chunk.record.data = encode_chunk(
                    [(step, chunk.points[step][0], chunk.points[step][1]) for step in steps]
                )
                chunk.dirty = False


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
) -> tuple[bool, set[str]]:
    """Add points ``(step, time, metrics)`` to the run's history, in a transaction holding the run's
    lock; return whether the history changed and the keys left out for HISTORY_MAX_KEYS."""
    editor = RunHistoryEditor.of(session, run_id, policy)
    points = list(points)
    if len(points) > 4:
        editor.load_all()
    changed = False
    for step, time, metrics in points:
        changed |= editor.add(step, epoch(time), metrics)
    editor.finish()
    dropped, editor.dropped_keys = editor.dropped_keys, set()
    return changed, dropped
