"""Every event kind has exactly one fate, a handler or the ignored set; each handler takes its kind's model."""

import pytest

from handlers import HANDLERS, IGNORED, Context, Route
from handlers.events import EventKind
from ingest.parsing import parse_stored
from ingest.settings import Settings
from tests.webhooks import FIXTURES


def test_every_kind_is_handled_or_ignored_and_never_both():
    assert set(HANDLERS) | IGNORED == set(EventKind)
    assert set(HANDLERS) & IGNORED == set()


def test_every_fixture_is_read_as_the_model_its_kinds_handler_takes():
    checked = set()
    for path in sorted(FIXTURES.glob("*/*.json")):
        parsed = parse_stored(path.parent.name, path.read_bytes())
        if parsed.kind in IGNORED:
            continue
        route = HANDLERS[parsed.kind]
        assert isinstance(route, Route)
        assert isinstance(parsed.event, route.model), path.name
        checked.add(parsed.kind)

    assert {EventKind.RUN_LAUNCHED, EventKind.RUN_FINISHED, EventKind.S3_OBJECTS} <= checked


def test_a_handler_is_never_given_another_kinds_model():
    event = parse_stored("pipeline", (FIXTURES / "pipeline" / "run_started__basic.json").read_bytes()).event

    with pytest.raises(TypeError, match="run_launched takes a RunLaunched, not a RunStarted"):
        HANDLERS[EventKind.RUN_LAUNCHED](event, Context(settings=Settings()))
