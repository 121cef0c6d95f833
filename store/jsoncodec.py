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

import orjson

_MARKER = "$float"
_ESCAPED_MARKER = re.compile(r"^\$+float$")
_NEGATIVE_ZERO = re.compile(rb"-0\.0(?![0-9])")


def _suspect(data: bytes) -> bool:
    """Tell whether written JSON may hold a float JSONB would not give back as written (an
    integral one with an exponent, or -0.0), or a "$...float" key."""
    # One-byte searches first: they run at memory speed, longer ones several times slower.
    return (
        (b"$" in data and b'"$' in data)
        or (b"+" in data and (b"e+" in data or b"E+" in data))
        or (b"-0.0" in data and _NEGATIVE_ZERO.search(data) is not None)
    )


# A \u0000 escape that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def has_nul_escape(text: str) -> bool:
    """Tell whether JSON text holds a NUL character, which PostgreSQL cannot store in text."""
    return "\\u0000" in text and _NUL_ESCAPE.search(text) is not None


def _float_marker(value: float) -> str | None:
    if value - value == 0.0:
        # Finite. Of these only -0.0 and integral floats of 1e16 and more (written with an
        # exponent) would not come back from JSONB as they went in.
        if abs(value) >= 1e16 or (value == 0.0 and math.copysign(1.0, value) < 0.0):
            return repr(value)
        return None
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _has_non_finite(value: Any) -> bool:
    """Tell whether a document holds NaN or an infinity."""
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list | tuple):
        return isinstance(value, float) and value - value != 0.0
    for item in value:
        kind = type(item)
        if kind is float:
            # x - x is 0.0 for every finite x, NaN for NaN and the infinities.
            if item - item != 0.0:
                return True
        elif kind is not str and kind is not int and item is not None and _has_non_finite(item):
            return True
    return False


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


def _dumps_standard(value: Any, sort_keys: bool) -> str:
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
    if text is None or _suspect(text.encode()):
        text = json.dumps(_escape(value), **options)
    return text


def dumps(value: Any, sort_keys: bool = False) -> str:
    """Serialize to strict JSON, encoding non-finite floats reversibly."""
    # orjson writes a W&B summary much faster than json (bench/RESULTS.md), whose float repr()
    # dominated the worker's profile. It writes NaN and Infinity as null: a document with a
    # null may have held one, and takes the walk if it did. What orjson refuses (integers
    # beyond 64 bits, float subclasses, 255 levels of nesting) goes through json.
    options = orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        data = orjson.dumps(value, option=options)
        if _suspect(data) or (b"null" in data and _has_non_finite(value)):
            data = orjson.dumps(_escape(value), option=options)
        text = data.decode()
    except orjson.JSONEncodeError:
        text = _dumps_standard(value, sort_keys)
    if has_nul_escape(text):
        raise ValueError(
            "JSON documents must not contain NUL (\\u0000) characters: PostgreSQL cannot store them"
        )
    return text


# Each digit to 0, the decimal point kept, every other byte to a space: 19 digits in a row not
# after a point may be an integer beyond 64 bits, which orjson would read as a float. (Fractions
# have longer runs, 0.00019887927164895935; integral floats of 1e16 and more are markers.)
_DIGIT_RUNS = bytes(0x30 if 0x30 <= b <= 0x39 else b if b == 0x2E else 0x20 for b in range(256))
_LONG_INTEGER = b"0" * 19


def loads(text: str | bytes) -> Any:
    """Parse JSON written by :func:`dumps` (or any JSON, bare NaN tokens included)."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    # orjson reads a document several times faster than json, the most of reading runs in bulk.
    # It cannot call a hook for the "$float" markers, it reads an integer beyond 64 bits as a
    # float and it refuses bare NaN tokens and lone surrogates: those go through json.
    digits = data.translate(_DIGIT_RUNS)
    if b'"$' not in data and b" " + _LONG_INTEGER not in digits and not digits.startswith(_LONG_INTEGER):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data, object_hook=_unescape_object if b'"$' in data else None)
