"""JSON text in and out, as the Rust SDK (serde_json) reads and writes it."""

from __future__ import annotations

import json
from typing import Any

#: The JSON value type plugins handle: what :func:`json.loads` returns.
JsonValue = Any


def _reject_constant(name: str) -> Any:
    # serde_json accepts neither NaN nor Infinity; neither does the host.
    raise ValueError(f"{name} is not valid JSON")


def parse(text: str) -> JsonValue:
    """Parses JSON text strictly (no ``NaN``/``Infinity``, as serde_json)."""
    return json.loads(text, parse_constant=_reject_constant)


def dump(value: JsonValue) -> str:
    """Compact JSON text with keys in insertion order and non-ASCII kept,
    byte for byte what the Rust SDK's ``serde_json::to_string`` writes for
    strings, integers, booleans, null, lists and objects."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def show(value: JsonValue) -> str:
    """Shows a value in an error: strings quoted, long values cut (more than
    60 characters: the first 57 and ``...``), as the Rust SDK's ``show``."""
    text = dump(value)
    if len(text) > 60:
        return text[:57] + "..."
    return text
