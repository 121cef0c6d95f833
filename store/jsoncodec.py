"""Reversible JSON for documents that carry NaN, Infinity and floats JSONB would change.

W&B summaries contain NaN, Infinity and -Infinity, which strict JSON and
PostgreSQL JSONB refuse; and JSONB stores numbers as decimals, so ``1e+16``
comes back as the integer ``10000000000000000`` and ``-0.0`` as ``0.0``. Such a
float is stored as ``{"$float": "<repr>"}``; a genuine one-key object whose key
is ``$float`` (or ``$$float``...) gets one more ``$``, so that decoding gives
back exactly what went in.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_MARKER = "$float"
_ESCAPED_MARKER = re.compile(r"^\$+float$")
# Substrings of json.dumps output that may hold a float JSONB would not give back as written.
_SUSPECT = ('"$', "e+", "E+", "-0.0")


# A \u0000 escape that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def has_nul_escape(text: str) -> bool:
    """Tell whether JSON text holds a NUL character, which PostgreSQL cannot store in text."""
    return "\\u0000" in text and _NUL_ESCAPE.search(text) is not None


def _float_marker(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    if ("e+" in text and value.is_integer()) or (value == 0 and math.copysign(1, value) < 0):
        return text
    return None


def _escape(value: Any) -> Any:
    if isinstance(value, float) and (marker := _float_marker(value)) is not None:
        return {_MARKER: marker}
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
    if key == _MARKER and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return obj
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
    # Only documents that may hold a float to mark, or a "$...float" key, need the walk.
    if text is None or any(suspect in text for suspect in _SUSPECT):
        text = json.dumps(_escape(value), **options)
    if has_nul_escape(text):
        raise ValueError(
            "JSON documents must not contain NUL (\\u0000) characters: PostgreSQL cannot store them"
        )
    return text


def loads(text: str | bytes) -> Any:
    """Parse JSON written by :func:`dumps` (or any JSON, bare NaN tokens included)."""
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8")
    if '"$' not in text:
        return json.loads(text)
    return json.loads(text, object_hook=_unescape_object)
