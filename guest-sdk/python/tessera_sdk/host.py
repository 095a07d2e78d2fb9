"""What the host offers a plugin: logging, reads of other resources (only
those the plugin's binding allows), and derived secrets (mirrors
guest-sdk/src/host.rs).

The generated bindings (``wit_world``, made by componentize-py from
wit/tessera.wit when the plugin is built) are imported on first use, so this
module also imports natively, for unit tests that replace the calls.
"""

from __future__ import annotations

import enum
from typing import List, Optional

from ._json import parse
from ._types import Error
from .object import Object

#: The host's log byte budget of one evaluation (the host keeps at most
#: 1 KiB of a line): once this much was sent nothing more can be kept.
LOG_BUDGET = 64 << 10

_log_sent = 0


def _start_evaluation() -> None:
    """Called by the export glue as each evaluation starts: a reused instance
    keeps its module state, the host gives each evaluation a fresh budget."""
    global _log_sent
    _log_sent = 0


class LogLevel(enum.Enum):
    """Log levels for :func:`log`."""

    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


def _truncate_utf8(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def log(level: LogLevel, message: str) -> None:
    """Writes a log line through the host, which keeps a bounded number of
    lines and bytes per evaluation. Sends at most the first 64 KiB of a
    message and, once 64 KiB were sent in this evaluation, an empty line
    (counted as dropped), so logging never fails an evaluation."""
    global _log_sent
    from wit_world.imports import host as wit_host

    offered = "" if _log_sent >= LOG_BUDGET else _truncate_utf8(message, LOG_BUDGET)
    _log_sent += len(offered.encode("utf-8"))
    wit_host.log(wit_host.LogLevel(level.value), offered)


def debug(message: str) -> None:
    """Logs at debug level."""
    log(LogLevel.DEBUG, message)


def info(message: str) -> None:
    """Logs at info level."""
    log(LogLevel.INFO, message)


def warn(message: str) -> None:
    """Logs at warn level."""
    log(LogLevel.WARN, message)


def error(message: str) -> None:
    """Logs at error level."""
    log(LogLevel.ERROR, message)


def _parse(what: str, text: str) -> Object:
    try:
        value = parse(text)
    except ValueError as e:
        raise Error(f"host returned invalid JSON for {what}: {e}") from None
    return Object.from_value(what, value)


def get_resource(api_version: str, kind: str, namespace: Optional[str], name: str) -> Optional[Object]:
    """Reads one object; ``None`` when it does not exist. Raises
    :class:`Error` (the host's message) when the binding does not allow
    reading this kind."""
    from componentize_py_types import Err
    from wit_world.imports import host as wit_host
    from wit_world.imports import types as wit_types

    target = wit_types.ResourceRef(api_version=api_version, kind=kind, namespace=namespace, name=name)
    try:
        found = wit_host.get_resource(target)
    except Err as e:
        raise Error(str(e.value)) from None
    return None if found is None else _parse(f"{kind} {name}", found)


def list_resources(
    api_version: str, kind: str, namespace: Optional[str] = None, label_selector: Optional[str] = None
) -> List[Object]:
    """Lists objects of a kind, optionally in one namespace and filtered by a
    label selector (``key=value,key2=value2``). Raises :class:`Error` when
    the binding does not allow it."""
    from componentize_py_types import Err
    from wit_world.imports import host as wit_host

    try:
        found = wit_host.list_resources(api_version, kind, namespace, label_selector)
    except Err as e:
        raise Error(str(e.value)) from None
    return [_parse(kind, text) for text in found]


def derive_secret(purpose: str, length: int) -> str:
    """A secret of ``length`` characters from ``[A-Za-z0-9]``, derived by the
    host from the key it holds, the identity of the composite being expanded
    and ``purpose``. Deterministic, yet not guessable without the host's key.
    Only composition plugins may call it (the policy world has no
    credentials interface)."""
    try:
        from wit_world.imports import credentials
    except ImportError as e:
        raise RuntimeError(f"derive_secret is only available to composition plugins ({e})") from None
    return credentials.derive_secret(purpose, length)
