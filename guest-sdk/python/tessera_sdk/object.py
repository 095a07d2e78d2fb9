"""A Kubernetes object as JSON, with the accessors plugins need (mirrors
guest-sdk/src/object.rs)."""

from __future__ import annotations

import base64
import binascii
from typing import Dict, Iterable, List, Optional, Tuple

from ._json import JsonValue, dump, parse
from ._types import Error


class Object:
    """A Kubernetes object: a JSON object with ``apiVersion``, ``kind`` and
    ``metadata``. Field order is kept as built, so output is deterministic.
    The builder methods (``with_*``) change the object and return it."""

    __slots__ = ("_value",)

    def __init__(self, api_version: str, kind: str, name: str) -> None:
        """A new object with ``apiVersion``, ``kind`` and ``metadata.name``."""
        self._value: Dict[str, JsonValue] = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name},
        }

    @classmethod
    def from_value(cls, what: str, value: JsonValue) -> "Object":
        """Wraps a JSON value; it must be an object (else :class:`Error`
        ``"{what} must be a JSON object"``)."""
        if not isinstance(value, dict):
            raise Error(f"{what} must be a JSON object")
        obj = cls.__new__(cls)
        obj._value = value
        return obj

    @classmethod
    def parse(cls, what: str, text: str) -> "Object":
        """Parses JSON text into an object (else :class:`Error`
        ``"{what} is not valid JSON: ..."``)."""
        try:
            value = parse(text)
        except ValueError as e:
            raise Error(f"{what} is not valid JSON: {e}") from None
        return cls.from_value(what, value)

    @property
    def value(self) -> Dict[str, JsonValue]:
        """The JSON value (not a copy)."""
        return self._value

    def to_json(self) -> str:
        """Compact JSON text, in field order."""
        return dump(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Object) and self._value == other._value

    def __repr__(self) -> str:
        return f"Object({self.to_json()})"

    def _str_at(self, outer: str, key: str) -> Optional[str]:
        inner = self._value.get(outer)
        if not isinstance(inner, dict):
            return None
        found = inner.get(key)
        return found if isinstance(found, str) else None

    @property
    def api_version(self) -> str:
        """``apiVersion``, or ``""``."""
        found = self._value.get("apiVersion")
        return found if isinstance(found, str) else ""

    @property
    def kind(self) -> str:
        """``kind``, or ``""``."""
        found = self._value.get("kind")
        return found if isinstance(found, str) else ""

    @property
    def name(self) -> str:
        """``metadata.name``, or ``""``."""
        return self._str_at("metadata", "name") or ""

    @property
    def namespace(self) -> Optional[str]:
        """``metadata.namespace``, when set and not empty."""
        return self._str_at("metadata", "namespace") or None

    def _string_map(self, which: str) -> List[Tuple[str, str]]:
        metadata = self._value.get("metadata")
        if not isinstance(metadata, dict):
            return []
        found = metadata.get(which)
        if not isinstance(found, dict):
            return []
        return [(k, v) for k, v in found.items() if isinstance(v, str)]

    def labels(self) -> List[Tuple[str, str]]:
        """``metadata.labels`` with string values, in their order."""
        return self._string_map("labels")

    def annotations(self) -> List[Tuple[str, str]]:
        """``metadata.annotations`` with string values, in their order."""
        return self._string_map("annotations")

    def _one(self, which: str, key: str) -> Optional[str]:
        metadata = self._value.get("metadata")
        if not isinstance(metadata, dict):
            return None
        found = metadata.get(which)
        if not isinstance(found, dict):
            return None
        value = found.get(key)
        return value if isinstance(value, str) else None

    def label(self, key: str) -> Optional[str]:
        """One label's value (``None`` when absent or not a string)."""
        return self._one("labels", key)

    def annotation(self, key: str) -> Optional[str]:
        """One annotation's value."""
        return self._one("annotations", key)

    def _metadata_map(self, which: str) -> Dict[str, JsonValue]:
        metadata = self._value.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            metadata = self._value["metadata"] = {}
        found = metadata.setdefault(which, {})
        if not isinstance(found, dict):
            found = metadata[which] = {}
        return found

    def with_namespace(self, namespace: str) -> "Object":
        """Sets ``metadata.namespace``."""
        metadata = self._value.setdefault("metadata", {})
        if isinstance(metadata, dict):
            metadata["namespace"] = namespace
        return self

    def with_label(self, key: str, value: str) -> "Object":
        """Sets a label."""
        self._metadata_map("labels")[key] = value
        return self

    def with_annotation(self, key: str, value: str) -> "Object":
        """Sets an annotation."""
        self._metadata_map("annotations")[key] = value
        return self

    def with_field(self, key: str, value: JsonValue) -> "Object":
        """Sets a top-level field such as ``spec``, ``data`` or ``type``
        (Rust: ``with``, a keyword in Python)."""
        self._value[key] = value
        return self

    def with_secret_data(self, entries: Iterable[Tuple[str, str]]) -> "Object":
        """Sets ``data`` of a Secret from plain strings (base64-encoded here)."""
        return self.with_field("data", {k: base64_encode(v.encode("utf-8")) for k, v in entries})


_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_encode(data: bytes) -> str:
    """Standard base64 with padding, as Kubernetes uses for Secret ``data``."""
    return base64.b64encode(data).decode("ascii")


def base64_decode(text: str) -> Optional[bytes]:
    """Decodes standard base64; ``None`` when the text is not valid base64.
    Like the Rust SDK: any run of trailing ``=`` is accepted, padding is
    optional, nonzero unused bits in the last character are allowed."""
    body = text.rstrip("=")
    if len(body) % 4 == 1 or not all(c in _ALPHABET for c in body):
        return None
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
