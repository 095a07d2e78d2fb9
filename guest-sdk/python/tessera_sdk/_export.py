"""The export glue: ``@composition`` and ``@policy`` turn one function into
the ``WitWorld`` class componentize-py exports (mirrors the Rust SDK's
``export_composition!`` / ``export_policy!``)."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Callable, NoReturn, TypeVar, Union

from . import host
from ._types import Error, Metadata
from .requests import CompositionRequest, Expansion, Review, Verdict

#: How much of a crash the SDK writes to stderr (the host folds stderr into
#: its one-line crash message): the exception's text is cut at
#: ``CRASH_MESSAGE_CHARS``, the traceback keeps its innermost
#: ``CRASH_FRAMES`` frames, and the whole report at most ``CRASH_REPORT_BYTES``.
CRASH_MESSAGE_CHARS = 500
CRASH_FRAMES = 8
CRASH_REPORT_BYTES = 4096

MetadataSource = Union[Metadata, Callable[[], Metadata]]
F = TypeVar("F", bound=Callable[..., Any])


def crash_report(exc: BaseException, where: str) -> str:
    """The bounded text a crash writes to stderr: exception type, message and
    the innermost frames of its traceback."""
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the crash
        message = "<message unavailable>"
    if len(message) > CRASH_MESSAGE_CHARS:
        message = message[:CRASH_MESSAGE_CHARS] + "..."
    frames = traceback.extract_tb(exc.__traceback__)
    # Leave out the SDK's own glue frame; keep the innermost frames.
    frames = [f for f in frames if not f.filename.endswith("_export.py")]
    dropped = max(0, len(frames) - CRASH_FRAMES)
    kept = traceback.StackSummary.from_list(frames[dropped:])
    lines = [f"tessera_sdk: {where} raised {name}: {message}"]
    if kept:
        header = "Traceback (most recent call last"
        header += f"; {dropped} outer frames left out):" if dropped else "):"
        lines.append(header)
        lines.extend(line.rstrip("\n") for line in kept.format())
    report = "\n".join(lines) + "\n"
    raw = report.encode("utf-8")
    if len(raw) > CRASH_REPORT_BYTES:
        report = raw[: CRASH_REPORT_BYTES - 4].decode("utf-8", errors="ignore") + "...\n"
    return report


def _crash(exc: BaseException, where: str) -> NoReturn:
    """Writes the bounded crash report to stderr and traps: the host reports
    a crashed plugin (kind ``trap``) with this text as its stderr."""
    try:
        sys.stderr.write(crash_report(exc, where))
        sys.stderr.flush()
    finally:
        # `abort()` is wasi-libc's `unreachable` trap: nothing more is printed
        # (letting the exception escape would make componentize-py print the
        # whole, unbounded traceback again before it traps).
        os.abort()


def _metadata_into_wit(source: MetadataSource) -> Any:
    from wit_world.imports import types as t

    meta = source() if callable(source) else source
    if not isinstance(meta, Metadata):
        raise TypeError(f"metadata must be a tessera_sdk.Metadata, got {type(meta).__name__}")
    from ._json import dump

    return t.PluginMetadata(
        name=meta.name,
        version=meta.version,
        description=meta.description_text,
        kinds=[t.KindRef(api_version=a, kind=k) for a, k in meta.kinds],
        settings_schema=None if meta.schema is None else dump(meta.schema),
    )


def _refusal(error: Error) -> Exception:
    from componentize_py_types import Err
    from wit_world.imports import types as t

    return Err(t.PluginError(message=error.message, field=error.field))


def _load_bindings(world: str) -> None:
    """Imports the world's generated binding modules now, while the app module
    is imported. componentize-py imports the app when it builds the component
    (pre-initialisation) and snapshots the interpreter; a binding module first
    imported later, inside a call, is not found. Natively (unit tests, no
    bindings on the path) this does nothing."""
    import importlib

    names = ["componentize_py_types", "wit_world.imports.types", "wit_world.imports.host"]
    if world == "composition":
        names += ["wit_world.imports.composition_types", "wit_world.imports.credentials"]
    else:
        names += ["wit_world.imports.policy_types"]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            if "wit_world" in sys.modules:
                raise  # a build for this world must have them all
            return


def _install(fn: Callable[..., Any], world: type) -> None:
    module = sys.modules.get(fn.__module__)
    target = module.__dict__ if module is not None else fn.__globals__
    if "WitWorld" in target and target["WitWorld"] is not world:
        raise RuntimeError(f"{fn.__module__} exports a plugin twice: use @composition or @policy once per plugin")
    target["WitWorld"] = world


def _evaluate(
    fn: Callable[[Any], Any], call: str, request: Callable[[], Any], answer_type: type
) -> Any:
    """Runs one evaluation of ``fn`` (the ``call`` export) on the typed
    ``request()``: its answer must
    be an ``answer_type``; :class:`Error` refuses the input, any other
    exception crashes the plugin."""
    host._start_evaluation()
    try:
        answer = fn(request())
        if not isinstance(answer, answer_type):
            raise TypeError(
                f"{call} must return a tessera_sdk.{answer_type.__name__}, got {type(answer).__name__}"
            )
        return answer._into_wit()
    except Error as e:
        refusal = _refusal(e)
    except BaseException as e:
        _crash(e, call)
    raise refusal


def _export_metadata(metadata: MetadataSource) -> Any:
    """The ``metadata`` export of either world: the plugin's metadata in WIT
    form; any exception in building it crashes the plugin."""
    try:
        return _metadata_into_wit(metadata)
    except BaseException as e:
        _crash(e, "metadata")


def composition(metadata: MetadataSource) -> Callable[[F], F]:
    """Exports the decorated ``expand(request: CompositionRequest) ->
    Expansion`` as a composition plugin with this metadata (a
    :class:`Metadata`, or a function returning one). Use it once, in the
    module componentize-py is given; the function stays callable as is (for
    unit tests). Raising :class:`Error` refuses the input; any other
    exception crashes the plugin."""

    def register(fn: F) -> F:
        class WitWorld:
            def metadata(self) -> Any:
                return _export_metadata(metadata)

            def expand(self, request: Any) -> Any:
                return _evaluate(fn, "expand", lambda: CompositionRequest._from_wit(request), Expansion)

        _load_bindings("composition")
        _install(fn, WitWorld)
        return fn

    return register


def policy(metadata: MetadataSource) -> Callable[[F], F]:
    """Exports the decorated ``validate(review: Review) -> Verdict`` as a
    policy plugin with this metadata; see :func:`composition`."""

    def register(fn: F) -> F:
        class WitWorld:
            def metadata(self) -> Any:
                return _export_metadata(metadata)

            def validate(self, review: Any) -> Any:
                return _evaluate(fn, "validate", lambda: Review._from_wit(review), Verdict)

        _load_bindings("policy")
        _install(fn, WitWorld)
        return fn

    return register
