"""The switch behind :mod:`obskit.integrations.grpc`; imported only once grpc is.

Spans and ``traceparent`` come from OpenTelemetry's four instrumentors, which replace ``grpc.server``,
``grpc.aio.server`` and the channel constructors (sync and asyncio); obskit's interceptors
(``_grpc_sync``, ``_grpc_aio``) go in through the same functions, ordered so they run inside the contrib
span, after ``traceparent`` is in the metadata:

- sync channels: the contrib wraps the channel it gets, so obskit's constructor goes in first (innermost);
- asyncio channels and both servers: the contrib puts its interceptor at the front of the list it is
  handed, so obskit's constructor goes in after it and hands it a list with obskit's first.

An instrumentor the application switched on itself is left on, and left to it; obskit's interceptors are
added anyway (the contrib records no metric). Undone in reverse order, so every function gets back what
it replaced. The calls made after this are covered: servers and channels created before are not.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]
from obskit.integrations import _grpc_aio, _grpc_sync
from obskit.integrations._contract import DidNotEnable
from obskit.integrations._grpc_calls import Recorder

from obskit._runtime._safe import report_internal_error

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_CONTRIB = "opentelemetry.instrumentation.grpc"
# Parameters from ``interceptors`` on, by position: contrib's wrappers read keyword arguments only, and
# add ``interceptors`` as one, so a list given by position would reach grpc twice (TypeError).
_SERVER_TAIL = ("interceptors", "options", "maximum_concurrent_rpcs", "compression", "xds")
_AIO_CHANNEL_TAIL = ("interceptors",)

_lock = threading.Lock()
_undo: list[Callable[[], None]] = []


Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def _patch(owner: Any, name: str, wrap: Wrap) -> Callable[[], None]:
    """Replace ``owner.name`` by ``wrap(original)``; the undo puts the original back, or, if someone has
    wrapped it since, leaves theirs in place and makes obskit's a pass-through."""
    original = getattr(owner, name)
    inner = wrap(original)
    live = True

    @functools.wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        return (inner if live else original)(*args, **kwargs)

    setattr(owner, name, patched)

    def undo() -> None:
        nonlocal live
        live = False
        if getattr(owner, name) is patched:
            setattr(owner, name, original)

    return undo


def _first(make: Callable[[], Sequence[Any]], position: int, tail: tuple[str, ...]) -> Wrap:
    """A wrap for a function taking ``interceptors``: ``make()`` goes ahead of the caller's, by keyword."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                if len(args) - position <= len(tail):
                    kwargs.update(zip(tail, args[position:], strict=False))
                    args = args[:position]
                    kwargs["interceptors"] = [*make(), *(kwargs.get("interceptors") or ())]
            except Exception as exc:
                report_internal_error("grpc: adding obskit's interceptors", exc)
            return original(*args, **kwargs)

        return call

    return wrap


def _intercepted(interceptor: Any) -> Wrap:
    """A wrap for a sync channel constructor: the channel it returns, intercepted."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def channel(*args: Any, **kwargs: Any) -> Any:
            made = original(*args, **kwargs)
            try:
                return grpc.intercept_channel(made, interceptor)
            except Exception as exc:
                report_internal_error("grpc: intercepting a channel", exc)
                return made

        return channel

    return wrap


def _contrib(cls: type) -> Callable[[], None] | None:
    """Switch one contrib instrumentor on; None when it is on already (the application's, not obskit's).

    Its singleton is looked at before it is constructed: constructing it again runs ``__init__``, which
    would reset the filter and hooks the application instrumented it with.
    """
    existing = cls.__dict__.get("_instance")
    if existing is not None and existing.is_instrumented_by_opentelemetry:
        return None
    instrumentor: Any = cls()
    from opentelemetry.instrumentation.dependencies import DependencyConflictError

    try:
        instrumentor.instrument(raise_exception_on_conflict=True)
    except DependencyConflictError as exc:
        raise DidNotEnable(str(exc)) from None
    return instrumentor.uninstrument  # type: ignore[no-any-return]


def _steps(recorder: Recorder) -> list[Callable[[], Callable[[], None] | None]]:
    import opentelemetry.instrumentation.grpc as contrib

    sync_client = _intercepted(_grpc_sync.ClientInterceptor(recorder))
    aio_client = functools.partial(_grpc_aio.client_interceptors, recorder)
    return [
        lambda: _patch(grpc, "insecure_channel", sync_client),
        lambda: _patch(grpc, "secure_channel", sync_client),
        lambda: _contrib(contrib.GrpcInstrumentorClient),
        lambda: _contrib(contrib.GrpcAioInstrumentorClient),
        lambda: _patch(grpc.aio, "insecure_channel", _first(aio_client, 3, _AIO_CHANNEL_TAIL)),
        lambda: _patch(grpc.aio, "secure_channel", _first(aio_client, 4, _AIO_CHANNEL_TAIL)),
        lambda: _contrib(contrib.GrpcInstrumentorServer),
        lambda: _patch(grpc, "server", _first(lambda: [_grpc_sync.ServerInterceptor(recorder)], 2,
                                              _SERVER_TAIL)),
        lambda: _contrib(contrib.GrpcAioInstrumentorServer),
        lambda: _patch(grpc.aio, "server", _first(lambda: [_grpc_aio.ServerInterceptor(recorder)], 2,
                                                  _SERVER_TAIL)),
    ]


def instrument() -> bool:
    """Trace and time the channels and servers created from now on; False if already instrumented."""
    with _lock:
        if _undo:
            return False
        done: list[Callable[[], None]] = []
        try:
            for step in _steps(Recorder()):
                undo = step()
                if undo is not None:
                    done.append(undo)
        except BaseException:
            _run(done)
            raise
        _undo.extend(done)
        return True


def _run(undo: list[Callable[[], None]]) -> None:
    for step in reversed(undo):
        try:
            step()
        except Exception as exc:
            report_internal_error("grpc: switching off", exc)


def uninstrument() -> None:
    """Put every function back; channels and servers created meanwhile keep their interceptors."""
    with _lock:
        undo = list(_undo)
        _undo.clear()
    _run(undo)


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return bool(_undo)
