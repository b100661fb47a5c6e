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

grpc is not imported by ``init()``: the hook is switched on when the application imports grpc, or at once
if it already has. Nothing here opens a channel. :func:`instrument`, :func:`uninstrument` and
:func:`is_instrumented` are for code that manages the instrumentation itself.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration, Teardown
from obskit.integrations._import_hook import HookWhenImported

from obskit._config import Config

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]


def instrument() -> bool:
    """Trace and time the servers and channels created from now on; False if already instrumented."""
    from obskit.integrations import _grpc_hook

    return _grpc_hook.instrument()


def uninstrument() -> None:
    """Stop instrumenting new servers and channels (those created meanwhile keep their interceptors)."""
    import sys

    hook = sys.modules.get("obskit.integrations._grpc_hook")
    if hook is not None:
        hook.uninstrument()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    import sys

    hook = sys.modules.get("obskit.integrations._grpc_hook")
    return hook is not None and bool(hook.is_instrumented())


_hook = HookWhenImported(("grpc",), instrument, uninstrument)


def _setup(config: Config) -> Teardown | None:
    return _hook.setup()


INTEGRATION = Integration(
    name="grpc",
    extra="grpc",
    requires={"grpcio": "1.60", "opentelemetry-instrumentation-grpc": "0.66b2"},
    setup=_setup,
)
