"""Reversible JSON for documents that carry NaN and Infinity.

W&B summaries contain NaN, Infinity and -Infinity, which strict JSON and
PostgreSQL JSONB refuse. A non-finite float is stored as ``{"$float": "NaN"}``;
a genuine one-key object whose key is ``$float`` (or ``$$float``...) gets one
more ``$`` so that decoding gives back exactly what went in.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_MARKER = "$float"
_ESCAPED_MARKER = re.compile(r"^\$+float$")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _non_finite_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _escape(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {_MARKER: _non_finite_name(value)}
    if isinstance(value, dict):
        escaped = {key: _escape(item) for key, item in value.items()}
        if len(escaped) == 1:
            (key,) = escaped
            if isinstance(key, str) and _ESCAPED_MARKER.match(key):
                return {"$" + key: escaped[key]}
        return escaped
    if isinstance(value, list | tuple):
        return [_escape(item) for item in value]
    return value


def _unescape_object(obj: dict[str, Any]) -> Any:
    if len(obj) != 1:
        return obj
    ((key, value),) = obj.items()
    if key == _MARKER and value in _NON_FINITE:
        return _NON_FINITE[value]
    if _ESCAPED_MARKER.match(key):
        return {key[1:]: value}
    return obj


def dumps(value: Any, sort_keys: bool = False) -> str:
    """Serialize to strict JSON, encoding non-finite floats reversibly."""
    options: dict[str, Any] = {
        "ensure_ascii": False,
        "separators": (",", ":"),
        "allow_nan": False,
        "sort_keys": sort_keys,
    }
    try:
        text = json.dumps(value, **options)
    except ValueError:
        text = None
    # Only documents holding a non-finite float or a "$...float" key need the walk.
    if text is None or '"$' in text:
        text = json.dumps(_escape(value), **options)
    return text


def loads(text: str | bytes) -> Any:
    """Parse JSON written by :func:`dumps` (or any JSON, bare NaN tokens included)."""
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8")
    if '"$' not in text:
        return json.loads(text)
    return json.loads(text, object_hook=_unescape_object)
