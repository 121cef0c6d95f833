"""The web process checks a pipeline event without building it: the verdict must be the worker's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.parsing import Invalid, Malformed, Parsed, check_pipeline, parse_pipeline, parse_stored
from tests.webhooks import FIXTURES, pipeline_event

PREFIX = b'{"type": "run.launched", "timestamp": "2026-11-20T10:00:00Z", "data": {"run_id": "r-1", "config": '


def outcome(parse: Callable[[bytes], Parsed], body: bytes) -> Any:
    """What a sender would be told: the event's kind, or the error's class, message and details."""
    try:
        return parse(body).kind
    except (Malformed, Invalid) as error:
        return type(error).__name__, str(error), getattr(error, "errors", None)


def assert_same_verdict(body: bytes) -> None:
    assert outcome(check_pipeline, body) == outcome(parse_pipeline, body)


@pytest.mark.parametrize("path", sorted((FIXTURES / "pipeline").glob("*.json")), ids=lambda path: path.stem)
def test_every_pipeline_fixture_gets_the_same_verdict(path: Path) -> None:
    body = path.read_bytes()
    assert outcome(check_pipeline, body) == parse_pipeline(body).kind


@pytest.mark.parametrize(
    ("kind", "field"), [("run.launched", "config"), ("run.finished", "summary"), ("run.progress", "metrics")]
)
def test_the_check_keeps_none_of_the_documents(kind: str, field: str) -> None:
    event = pipeline_event(kind, "r-1", step=1, **{field: {"loss": 0.25, "nested": {"x": [1]}}})
    checked = check_pipeline(json.dumps(event).encode())
    assert checked.kind == kind
    assert checked.event.model_dump()["data"][field] == {}


CONFIGS = {
    "bad literal": b'{"a": tru}',
    "bad escape": b'{"a": "\\x"}',
    "lone surrogate": b'{"a": "\\ud800"}',
    "invalid UTF-8 in a value": b'{"a": "\xff\xfe"}',
    "invalid UTF-8 in a key": b'{"\xff": 1}',
    "control character": b'{"a": "x\x01y"}',
    "trailing comma": b'{"a": 1,}',
    "leading zero": b'{"a": 01}',
    "bare minus": b'{"a": -}',
    "4,000 digits": b'{"a": ' + b"9" * 4000 + b"}",
    "5,000 digits": b'{"a": ' + b"9" * 5000 + b"}",
    "float overflow": b'{"a": 1e400}',
    "NaN and Infinity": b'{"a": NaN, "b": -Infinity, "c": Infinity}',
    "nested 250 deep": b'{"a": ' + b"[" * 250 + b"]" * 250 + b"}",
    "nested 10,000 deep": b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "duplicate keys": b'{"a": 1, "a": 2}',
    "NUL escape": b'{"a": "\\u0000"}',
    "a list": b"[1, 2]",
    "a string": b'"config"',
    "null": b"null",
    "unterminated": b'{"a": [1, 2',
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_launch_config_gets_the_same_verdict(config: bytes) -> None:
    assert_same_verdict(PREFIX + config + b"}}")


@pytest.mark.parametrize(
    "event",
    [
        pipeline_event("run.finished", "r-1", summary=None),
        pipeline_event("run.finished", "r-1", summary=[1]),
        pipeline_event("run.finished", "r-1", summary="done"),
        pipeline_event("run.progress", "r-1", step=3, metrics=None),
        pipeline_event("run.progress", "r-1", step=3, metrics={"loss": [0.5, {"x": None}]}),
        pipeline_event("run.progress", "r-1", step="3", metrics=7),
        pipeline_event("run.launched", "r-1"),
        pipeline_event("run.launched", "bad id!", config={}),
        pipeline_event("run.molecules", "r-1", batch_id="b", step=1, molecules=[{"smiles": "CCO", "reward": 1}]),
        pipeline_event("run.molecules", "r-1", batch_id="b", step=1, molecules=[{"smiles": 7}]),
        pipeline_event("run.molecules", "r-1", batch_id="", step=1, molecules=[]),
        pipeline_event("run.molecules", "r-1", batch_id="b", step=-1, molecules=[]),
        pipeline_event("run.molecules", "r-1", batch_id="b", step=1, molecules={"smiles": "CCO"}),
        pipeline_event("run.molecules", "r-1", batch_id="b", step=1, molecules=[{"smiles": "C", "scores": [1]}]),
        pipeline_event("run.molecules", "r-1", batch_id="b", step=1, molecules=[{"smiles": "C", "reward": "x"}]),
    ],
    ids=lambda event: f"{event['type']} {json.dumps(event['data'])[:40]}",
)
def test_summaries_metrics_and_missing_documents_get_the_same_verdict(event: dict[str, Any]) -> None:
    assert_same_verdict(json.dumps(event).encode())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
SUMMARY = json.dumps(pipeline_event("run.finished", "r-1", summary={"loss": 0.25, "epoch": [1, 2]})).encode()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["run.launched", "run.finished", "run.progress"]), document=json_values)
def test_any_json_document_gets_the_same_verdict(kind: str, document: Any) -> None:
    field = {"run.launched": "config", "run.finished": "summary", "run.progress": "metrics"}[kind]
    event = pipeline_event(
        kind, "r-1", **{field: document}, **({"step": 1} if kind == "run.progress" else {})
    )
    # NaN and Infinity as the sender's json.dumps writes them.
    assert_same_verdict(json.dumps(event).encode())


@settings(max_examples=300)
@given(position=st.integers(0, len(SUMMARY) - 1), byte=st.integers(0, 255), edit=st.sampled_from("rid"))
def test_a_body_with_one_byte_changed_gets_the_same_verdict(position: int, byte: int, edit: str) -> None:
    """Replace, insert or delete one byte anywhere in a valid event."""
    changed = {
        "r": SUMMARY[:position] + bytes([byte]) + SUMMARY[position + 1 :],
        "i": SUMMARY[:position] + bytes([byte]) + SUMMARY[position:],
        "d": SUMMARY[:position] + SUMMARY[position + 1 :],
    }[edit]
    assert_same_verdict(changed)


@pytest.mark.parametrize(
    "molecules",
    [
        [{"smiles": "CCO", "reward": 1, "scores": {"QED": 0.5}, "origin": "prior"}],
        [{"smiles": "C", "extra": 2**70}],
        [{"smiles": "C\u0000C"}],
        [],
    ],
    ids=["plain", "beyond 64 bits", "NUL", "empty"],
)
def test_a_stored_batch_is_read_back_as_the_strict_reading_reads_it(molecules: list[Any]) -> None:
    body = json.dumps(pipeline_event("run.molecules", "r-1", batch_id="b", step=1, molecules=molecules)).encode()

    def read(parse: Callable[[bytes], Parsed]) -> Any:
        try:
            return parse(body).event.model_dump()
        except (Malformed, Invalid) as error:
            return str(error)

    assert read(lambda body: parse_stored("pipeline", body, "run.molecules")) == read(parse_pipeline)
