"""Every event kind has exactly one fate: a handler, or the ignored set."""

from handlers import HANDLERS, IGNORED
from ingest.events import EventKind


def test_every_kind_is_handled_or_ignored_and_never_both():
    assert set(HANDLERS) | IGNORED == set(EventKind)
    assert set(HANDLERS) & IGNORED == set()
