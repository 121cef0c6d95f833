"""Documents survive the trip through the JSON codec and both databases, exactly."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import store
from store import jsoncodec

text = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)
keys = st.one_of(text, st.sampled_from(["$float", "$$float", "train/loss", "_wandb", ""]))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
    st.sampled_from(["NaN", "Infinity", "$float"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)


def same(a, b) -> bool:
    """Compare JSON values exactly: NaN equals NaN, 1 is not 1.0, -0.0 is not 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@given(documents)
def test_the_codec_gives_back_exactly_what_it_was_given(document):
    text = jsoncodec.dumps(document)

    assert "NaN" not in text.replace('"NaN"', "") and "Infinity" not in text.replace(
        '"Infinity"', ""
    ).replace('"-Infinity"', "")
    assert same(jsoncodec.loads(text), document)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(keys, documents, max_size=6))
def test_a_config_written_and_read_back_is_equal_on_both_databases(db, document):
    store.insert_run("r1", config_dict=document)

    assert same(store.get_run("r1")["config_json"], document)


def test_a_nul_character_is_refused_on_both_databases_with_a_clear_error(db):
    with pytest.raises(ValueError, match="NUL"):
        store.insert_run("r1", config_dict={"name": "a\x00b"})
    assert store.get_run("r1") is None


class Score(float):
    """A float subclass, as numpy's float64 is."""


def nested(levels: int) -> list:
    document: list = [1.5]
    for _ in range(levels - 1):
        document = [document]
    return document


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"seed": 2**80, "loss": math.nan}, {"seed": 2**80, "loss": math.nan}),
        (nested(300), nested(300)),
        ({"score": Score(0.5), "inf": Score(-math.inf)}, {"score": 0.5, "inf": -math.inf}),
        (
            {1: "integer key", "none": None, "keys": {"$float": "x"}},
            {"1": "integer key", "none": None, "keys": {"$float": "x"}},
        ),
    ],
    ids=["integer beyond 64 bits", "300 levels of nesting", "float subclass", "odd keys"],
)
def test_documents_beyond_the_fast_writer_still_come_back_exactly(document, expected):
    assert same(jsoncodec.loads(jsoncodec.dumps(document)), expected)


@pytest.mark.parametrize(
    "document",
    [
        {"hash": 2**64 + 1, "negative": -(2**63) - 1, "in": [10**30]},
        12345678901234567890123,
        {"tiny": 1e-20, "small": 0.00019887927164895935, "text": "12345678901234567890"},
        [float("nan"), {"$float": "x"}],
    ],
)
def test_documents_orjson_cannot_read_exactly_come_back_exactly(document):
    text = jsoncodec.dumps(document)
    for written in (text, text.encode(), memoryview(text.encode())):
        assert same(jsoncodec.loads(written), document)


def test_an_escaped_lone_surrogate_still_reads():
    assert jsoncodec.loads('["\\ud800"]') == ["\ud800"]


def test_bare_nan_tokens_still_read():
    assert same(jsoncodec.loads("[NaN, Infinity, -Infinity, 1]"), [math.nan, math.inf, -math.inf, 1])
