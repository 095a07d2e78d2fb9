"""The typed values a plugin reads and returns (mirrors guest-sdk/src/types.rs
and tessera-types)."""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass, field as dataclass_field
from typing import Any, Dict, List, Optional, Tuple

from ._json import JsonValue, dump


class Error(Exception):
    """The plugin refuses its input. Raise it (the field readers do): the host
    shows ``message`` (and ``field``) to the user as the plugin's answer, the
    WIT ``err(plugin-error)``, not as a crash. Any other exception is a crash.
    """

    def __init__(self, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.field: Optional[str] = field

    @classmethod
    def at(cls, field: str, message: str) -> "Error":
        """An error about one field, given by its dotted path (``spec.replicas``)."""
        return cls(message, field)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"Error(message={self.message!r}, field={self.field!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Error) and (self.message, self.field) == (other.message, other.field)

    def __hash__(self) -> int:
        return hash((self.message, self.field))


class Severity(enum.Enum):
    """How serious a finding is."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class ConditionStatus(enum.Enum):
    """Status of a condition, as in Kubernetes ``metav1.Condition``."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Operation(enum.Enum):
    """The operation under review."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass
class Finding:
    """One observation a plugin reports about its input or output."""

    severity: Severity
    message: str
    field: Optional[str] = None

    @classmethod
    def info(cls, message: str) -> "Finding":
        """An informational finding."""
        return cls(Severity.INFO, message)

    @classmethod
    def warning(cls, message: str) -> "Finding":
        """A warning."""
        return cls(Severity.WARNING, message)

    @classmethod
    def error(cls, message: str) -> "Finding":
        """An error: a policy verdict built with :meth:`Verdict.from_findings`
        denies when it has one."""
        return cls(Severity.ERROR, message)

    def at(self, field: str) -> "Finding":
        """Names the field the finding is about (a dotted path); returns self."""
        self.field = field
        return self


@dataclass
class Condition:
    """A condition the plugin wants set on the composite's status."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


@dataclass
class UserInfo:
    """Who asked for the operation."""

    username: str = ""
    uid: str = ""
    groups: List[str] = dataclass_field(default_factory=list)


@dataclass
class Context:
    """Facts about the evaluation."""

    #: Where the evaluation runs: ``cli``, ``controller``, ...
    caller: str
    #: True when the result will not be applied.
    dry_run: bool


class Metadata:
    """What a plugin says about itself: name, version, the kinds it handles
    and the JSON schema of its settings. The builder methods return self."""

    def __init__(self, name: str, version: str) -> None:
        self.name: str = name
        self.version: str = version
        self.description_text: str = ""
        self.kinds: List[Tuple[str, str]] = []
        self.schema: Optional[JsonValue] = None

    def description(self, description: str) -> "Metadata":
        """A one-line description."""
        self.description_text = description
        return self

    def handles(self, api_version: str, kind: str) -> "Metadata":
        """Adds a kind the plugin expands or checks."""
        self.kinds.append((api_version, kind))
        return self

    def settings_schema(self, schema: JsonValue) -> "Metadata":
        """The JSON schema (draft 2020-12) the host checks settings against
        before the first call."""
        self.schema = schema
        return self

    def __repr__(self) -> str:
        return f"Metadata({self.name!r}, {self.version!r}, kinds={self.kinds!r})"


def rust_debug(text: str) -> str:
    """``text`` quoted as Rust's ``{:?}`` writes a string, so messages match
    the Rust plugins' ``format!("{label:?}")`` byte for byte for the usual
    text (control and other non-printable characters become ``\\u{..}``
    as in Rust; Rust's printable table is approximated with Unicode
    categories)."""
    out = ['"']
    for ch in text:
        if ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\0":
            out.append("\\0")
        elif ch != " " and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"):
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_text(value: JsonValue) -> str:
    return dump(value)


__all__: List[str] = [
    "Error", "Severity", "ConditionStatus", "Operation", "Finding", "Condition",
    "UserInfo", "Context", "Metadata", "rust_debug",
]
