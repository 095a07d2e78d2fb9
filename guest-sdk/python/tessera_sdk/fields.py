"""Reading fields of ``spec`` and settings with errors that name the field
(mirrors guest-sdk/src/fields.rs; the messages are the same, word for word).

The Rust names map as: ``str`` → :meth:`Fields.string`, ``opt_str`` →
:meth:`Fields.opt_string`, ``int`` → :meth:`Fields.integer`, ``opt_int`` →
:meth:`Fields.opt_integer`, ``int_in``/``opt_int_in`` →
:meth:`Fields.integer_in`/:meth:`Fields.opt_integer_in`; the others keep
their Rust names.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from ._json import JsonValue, show
from ._types import Error

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


def _is_integer(value: JsonValue) -> bool:
    # serde_json's `as_i64`: an integer (not a float such as 3.0, not a
    # boolean) that fits in an i64.
    return isinstance(value, int) and not isinstance(value, bool) and _I64_MIN <= value <= _I64_MAX


class Fields:
    """A read-only view of a JSON object at a dotted path (``spec``,
    ``spec.autoscaling``, ``settings``). Every reader raises an :class:`Error`
    that names the full path of the field and shows the offending value."""

    def __init__(self, path: str, value: Optional[JsonValue]) -> None:
        self._path = path
        self._value = value

    @property
    def path(self) -> str:
        """The dotted path of this view."""
        return self._path

    def path_of(self, key: str) -> str:
        """The dotted path of ``key`` in this view."""
        return f"{self._path}.{key}"

    def get(self, key: str) -> Optional[JsonValue]:
        """The raw value of ``key``; ``None`` when absent or ``null`` (or when
        this view is not an object)."""
        if not isinstance(self._value, dict):
            return None
        return self._value.get(key)

    def _required(self, key: str) -> JsonValue:
        value = self.get(key)
        if value is None:
            path = self.path_of(key)
            raise Error.at(path, f"{path} is required")
        return value

    def _wrong(self, key: str, expected: str, got: JsonValue) -> Error:
        path = self.path_of(key)
        return Error.at(path, f"{path} must be {expected}, got {show(got)}")

    def string(self, key: str) -> str:
        """A required string."""
        value = self._required(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def opt_string(self, key: str) -> Optional[str]:
        """An optional string."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def one_of(self, key: str, allowed: Sequence[str]) -> str:
        """A required string that must be one of ``allowed``."""
        value = self.string(key)
        if value in allowed:
            return value
        path = self.path_of(key)
        raise Error.at(path, f"{path} must be one of {', '.join(allowed)}, got {show(value)}")

    def integer(self, key: str) -> int:
        """A required integer (an i64; ``3.0`` is not an integer)."""
        value = self._required(key)
        if not _is_integer(value):
            raise self._wrong(key, "an integer", value)
        return int(value)

    def opt_integer(self, key: str) -> Optional[int]:
        """An optional integer."""
        value = self.get(key)
        if value is None:
            return None
        if not _is_integer(value):
            raise self._wrong(key, "an integer", value)
        return int(value)

    def opt_integer_in(self, key: str, minimum: int, maximum: int) -> Optional[int]:
        """An optional integer that must lie in ``minimum..=maximum``."""
        n = self.opt_integer(key)
        if n is None:
            return None
        if minimum <= n <= maximum:
            return n
        path = self.path_of(key)
        raise Error.at(path, f"{path} must be between {minimum} and {maximum}, got {n}")

    def integer_in(self, key: str, minimum: int, maximum: int) -> int:
        """A required integer that must lie in ``minimum..=maximum``."""
        self._required(key)
        n = self.opt_integer_in(key, minimum, maximum)
        assert n is not None, "checked present above"
        return n

    def opt_bool(self, key: str) -> Optional[bool]:
        """An optional boolean."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false", value)
        return value

    def quantity(self, key: str) -> str:
        """A required Kubernetes quantity such as ``20Gi`` or ``500m``."""
        value = self._required(key)
        if isinstance(value, str) and is_quantity(value):
            return value
        raise self._wrong(key, "a quantity such as 20Gi", value)

    def opt_str_list(self, key: str) -> Optional[List[str]]:
        """An optional list of strings."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self._wrong(key, "a list of strings", value)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self._wrong(f"{key}[{i}]", "a string", item)
        return list(value)

    def opt_object(self, key: str) -> Optional["Fields"]:
        """A view of an optional nested object."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        return Fields(self.path_of(key), value)

    def opt_map(self, key: str) -> Optional[Dict[str, JsonValue]]:
        """The keys of a nested object mapped to their values, in order."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        return value


def is_dns1035_label(text: str, max_len: int) -> bool:
    """Whether ``text`` is a DNS-1035 label of at most ``max_len`` characters:
    lowercase letters, digits and ``-``, starting with a letter and ending with
    a letter or digit. Kubernetes requires it of Service names (``max_len``
    63)."""
    if not text or len(text) > max_len or not text.isascii():
        return False
    if not ("a" <= text[0] <= "z"):
        return False
    if not ("a" <= text[-1] <= "z" or "0" <= text[-1] <= "9"):
        return False
    return all("a" <= c <= "z" or "0" <= c <= "9" or c == "-" for c in text)


_SUFFIXES = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"}


def is_quantity(text: str) -> bool:
    """Whether ``text`` is a Kubernetes quantity: an optional sign, digits
    with an optional fraction, then a binary or decimal suffix or an
    exponent (``20Gi``, ``500m``, ``1.5``, ``1e3``)."""
    if not text.isascii():
        return False
    i = 0
    n = len(text)
    if i < n and text[i] in "+-":
        i += 1
    start = i
    while i < n and text[i].isdigit():
        i += 1
    digits = i - start
    if i < n and text[i] == ".":
        i += 1
        frac = i
        while i < n and text[i].isdigit():
            i += 1
        digits += i - frac
    if digits == 0:
        return False
    suffix = text[i:]
    if suffix in _SUFFIXES:
        return True
    if suffix[:1] in ("e", "E"):
        rest = suffix[1:]
        if rest[:1] in ("+", "-"):
            rest = rest[1:]
        return bool(rest) and all("0" <= c <= "9" for c in rest)
    return False
