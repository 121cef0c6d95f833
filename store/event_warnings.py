"""The warnings of the events being applied: values a typed column could not hold, and the like.

The store records each warning on its run and here; the worker (or a replay) collects them
around the events it applies and keeps them on the inbox event. Collecting costs a list while
nothing is said.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_collected: ContextVar[list[str] | None] = ContextVar("event_warnings", default=None)


@contextmanager
def collecting() -> Iterator[list[str]]:
    """Yield the list that the warnings said in the block are appended to."""
    warnings: list[str] = []
    token = _collected.set(warnings)
    try:
        yield warnings
    finally:
        _collected.reset(token)


def say(message: str) -> None:
    """Record a warning for the event being applied (nowhere, when nobody collects)."""
    collected = _collected.get()
    if collected is not None:
        collected.append(message)
