"""A composition plugin for tests that misbehaves on request, in Python: the
Python rows of the hostile-case table in SECURITY.md (the Rust one is
tests/plugins/faulty). ``settings.mode`` picks the behaviour:

- ``ok``: one ConfigMap ``ok``;
- ``loop``: an infinite loop (the deadline ends it);
- ``oom``: keeps 1 MiB blocks until memory runs out (the memory cap ends it);
- ``exception``: raises an uncaught ``RuntimeError`` (a trap whose message
  carries the SDK's crash report);
- ``big-output``: one ConfigMap with 8 MiB of data, over the 4 MiB answer cap;
- ``read-file`` / ``socket``: tries to reach files / the network and returns
  one ConfigMap ``attempts`` whose ``data`` maps each attempt to
  ``"denied: <error>"`` or ``"allowed: <what it got>"``.
"""

from __future__ import annotations

import os
from typing import Callable, Dict

from tessera_sdk import CompositionRequest, Expansion, Metadata, composition

# Imported here, not inside the calls: componentize-py keeps only the modules
# imported while it builds the component (it snapshots the interpreter), so a
# module first imported inside `expand` would not be found at all.
try:
    import encodings.idna  # noqa: F401  socket's host names go through the idna codec

    import socket
except ImportError as e:  # the build has no socket module
    socket = None
    SOCKET_MISSING = f"{type(e).__name__}: {e}"
try:
    import urllib.request as urllib_request
except ImportError as e:
    urllib_request = None
    URLLIB_MISSING = f"{type(e).__name__}: {e}"

MODES = ["ok", "loop", "oom", "exception", "big-output", "read-file", "socket"]

METADATA = (
    Metadata("faulty-python", "0.1.0")
    .description("A composition plugin for tests, in Python, that misbehaves on request (settings.mode).")
    .handles("test.tessera.dev/v1", "Faulty")
    .settings_schema(
        {
            "type": "object",
            "properties": {"mode": {"type": "string", "enum": MODES}},
            "required": ["mode"],
        }
    )
)


def _attempt(what: Callable[[], str]) -> str:
    """``allowed: <what it got>``, or ``denied: <the error>``."""
    try:
        return f"allowed: {what()}"
    except Exception as e:  # every way a denial can show
        return f"denied: {type(e).__name__}: {e}"


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f"{len(f.read())} bytes"


def _write(path: str) -> str:
    with open(path, "w") as f:
        f.write("x")
    return "written"


def _environment() -> str:
    if not os.environ:
        raise LookupError("no environment variables")
    return ",".join(os.environ)


def _file_attempts() -> Dict[str, str]:
    return {
        "read /etc/passwd": _attempt(lambda: _read("/etc/passwd")),
        "read relative file": _attempt(lambda: _read("pyproject.toml")),
        "list .": _attempt(lambda: f"{len(os.listdir('.'))} entries"),
        "list /": _attempt(lambda: f"{len(os.listdir('/'))} entries"),
        "write /tmp/x": _attempt(lambda: _write("/tmp/x")),
        "environment": _attempt(_environment),
    }


def _need_socket() -> None:
    if socket is None:
        raise ImportError(SOCKET_MISSING)


def _connect() -> str:
    _need_socket()
    socket.create_connection(("127.0.0.1", 80), timeout=1).close()
    return "connected"


def _raw_connect() -> str:
    _need_socket()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.connect(("127.0.0.1", 80))
        return "connected"
    finally:
        s.close()


def _resolve() -> str:
    _need_socket()
    return f"{len(socket.getaddrinfo('example.com', 80))} addresses"


def _listen() -> str:
    _need_socket()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", 0))
        s.listen(1)
        return f"listening on {s.getsockname()}"
    finally:
        s.close()


def _udp() -> str:
    _need_socket()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("0.0.0.0", 0))
        return f"bound to {s.getsockname()}"
    finally:
        s.close()


def _http() -> str:
    if urllib_request is None:
        raise ImportError(URLLIB_MISSING)
    with urllib_request.urlopen("http://127.0.0.1:80/", timeout=1) as r:
        return f"HTTP {r.status}"


def _socket_attempts() -> Dict[str, str]:
    return {
        "tcp connect 127.0.0.1:80": _attempt(_connect),
        "raw socket connect 127.0.0.1:80": _attempt(_raw_connect),
        "resolve example.com": _attempt(_resolve),
        "tcp listen 0.0.0.0:0": _attempt(_listen),
        "udp bind 0.0.0.0:0": _attempt(_udp),
        "http get 127.0.0.1:80": _attempt(_http),
    }


@composition(METADATA)
def expand(request: CompositionRequest) -> Expansion:
    """Misbehaves as ``settings.mode`` says."""
    mode = request.settings().one_of("mode", MODES)
    if mode == "loop":
        n = 0
        while True:
            n += 1
    if mode == "oom":
        hoard = []
        while True:
            hoard.append(bytes(1 << 20) + b"\x01")
    if mode == "exception":
        raise RuntimeError("faulty plugin raised on purpose")
    if mode == "big-output":
        return Expansion().child(request.child("v1", "ConfigMap", "big").with_field("data", {"blob": "x" * (8 << 20)}))
    if mode == "read-file":
        return Expansion().child(request.child("v1", "ConfigMap", "attempts").with_field("data", _file_attempts()))
    if mode == "socket":
        return Expansion().child(request.child("v1", "ConfigMap", "attempts").with_field("data", _socket_attempts()))
    return Expansion().child(request.child("v1", "ConfigMap", "ok").with_field("data", {"key": "value"}))
