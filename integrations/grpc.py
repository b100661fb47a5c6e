"""``grpc``: every gRPC call, client and server, sync and ``grpc.aio``, is a span named
``package.Service/Method`` with ``rpc.system``, ``rpc.service``, ``rpc.method`` and
``rpc.grpc.status_code``, and is timed by ``rpc_client_call_duration_seconds`` /
``rpc_server_call_duration_seconds`` with the same labels. ``traceparent`` travels in the call's metadata,
so a call made inside a span gives a server span in the same trace.

Spans and propagation are OpenTelemetry's instrumentors (``opentelemetry-instrumentation-grpc``); the
metric, the span name without the wire path's leading slash and the status of a handler's uncaught
exception are obskit's own interceptors (``_grpc_calls``), since the contrib package records no metric.
Servers and channels created after ``init()`` are covered: the instrumentors replace ``grpc.server``,
``grpc.aio.server`` and the channel constructors, so one created before keeps working untraced. obskit's
own OTLP/gRPC exports run with instrumentation suppressed and are neither traced nor counted.

The integration never imports grpc itself, nor its hook (with OpenTelemetry's instrumentors) before the
application creates its first server or channel: once grpc is imported (by the application, or by obskit's
own OTLP/gRPC exporter), trampolines in place of the six constructors (``grpc.server``,
``grpc.insecure_channel``, ``grpc.secure_channel`` and their ``grpc.aio`` twins) switch the hook on at the
first call and hand it on, traced (``integrations/_first_call.py``). Nothing here opens a channel.
:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself (the trampolines waiting count as instrumented).
"""

from __future__ import annotations

import importlib
import sys
import threading

from obskit.integrations._contract import Integration, Teardown
from obskit.integrations._first_call import FirstCall
from obskit.integrations._import_hook import HookWhenImported

from obskit._config import Config

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_HOOK = "obskit.integrations._grpc_hook"
# What the hook replaces, so what the application's first server or channel goes through.
_CONSTRUCTORS = (("grpc", "insecure_channel"), ("grpc", "secure_channel"), ("grpc", "server"),
                 ("grpc.aio", "insecure_channel"), ("grpc.aio", "secure_channel"), ("grpc.aio", "server"))

_lock = threading.RLock()
_waiting: FirstCall | None = None


def instrument() -> bool:
    """Trace and time the servers and channels created from now on; False if on already or waiting for the
    first one."""
    with _lock:
        if _waiting is not None:
            return False
        return bool(importlib.import_module(_HOOK).instrument())


def uninstrument() -> None:
    """Stop instrumenting new servers and channels (those created meanwhile keep their interceptors), or stop
    waiting for the first one."""
    global _waiting
    with _lock:
        waiting, _waiting = _waiting, None
        if waiting is not None:
            waiting.disarm()
        hook = sys.modules.get(_HOOK)
        if hook is not None:
            hook.uninstrument()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect, or the trampolines wait to switch it on."""
    hook = sys.modules.get(_HOOK)
    return _waiting is not None or (hook is not None and bool(hook.is_instrumented()))


def _wait() -> bool:
    """grpc is imported: trampolines in place of its constructors; False if on (or waiting) already."""
    global _waiting
    with _lock:
        if is_instrumented():
            return False
        targets = [(importlib.import_module(module), name) for module, name in _CONSTRUCTORS]
        _waiting = FirstCall(targets, _switch_on, _lock, prepare=lambda: importlib.import_module(_HOOK))
        return True


def _switch_on(waiting: FirstCall) -> None:
    """The application's first server or channel (under the lock, the trampolines out): the hook in place."""
    global _waiting
    if _waiting is waiting:
        _waiting = None
        importlib.import_module(_HOOK).instrument()


_hook = HookWhenImported(("grpc",), _wait, uninstrument)


def _setup(config: Config) -> Teardown | None:
    return _hook.setup()


INTEGRATION = Integration(
    name="grpc",
    extra="grpc",
    requires={"grpcio": "1.60", "opentelemetry-instrumentation-grpc": "0.66b2"},
    setup=_setup,
)
