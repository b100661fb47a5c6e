"""What obskit adds to each gRPC call beside OpenTelemetry's spans: the RPC duration metrics, and the span
finished the way the semantic conventions describe it. Imported only once grpc is.

Why: ``opentelemetry-instrumentation-grpc`` (0.66b2) makes the spans and carries ``traceparent`` in the
metadata, but records no metric at all; it names its spans ``/package.Service/Method`` (the wire path,
leading slash included) where the conventions say ``package.Service/Method``; and on a server, an exception
the handler does not catch leaves ``rpc.grpc.status_code`` at 0 on a span with no error while the client
gets UNKNOWN. obskit's interceptors run inside that span (``_grpc_hook`` orders them so), time the call
into ``rpc.server.call.duration`` / ``rpc.client.call.duration`` (seconds, with ``rpc.system``,
``rpc.service``, ``rpc.method`` and ``rpc.grpc.status_code``), and fix the name and the status.

Nothing is recorded where instrumentation is suppressed (obskit's own OTLP exports), nor for services in
``OTEL_PYTHON_GRPC_EXCLUDED_SERVICES``, which the contrib spans skip too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc  # type: ignore[import-untyped]
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Status, StatusCode

from obskit._runtime._safe import report_internal_error

__all__ = ["CLIENT_DURATION", "SERVER_DURATION", "Call", "Recorder", "code_of_exception", "number",
           "serving", "timed_handler"]

SERVER_DURATION = "rpc.server.call.duration"
CLIENT_DURATION = "rpc.client.call.duration"
_SCOPE = "obskit.integrations.grpc"
OK: int = grpc.StatusCode.OK.value[0]
CANCELLED: int = grpc.StatusCode.CANCELLED.value[0]
UNKNOWN: int = grpc.StatusCode.UNKNOWN.value[0]
# The handler kinds and how grpc builds each: (request streaming, response streaming) -> attribute, factory.
_KINDS: dict[tuple[bool, bool], tuple[str, Callable[..., Any]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def number(code: Any) -> int | None:
    """The number of a ``grpc.StatusCode`` (NOT_FOUND -> 5), or None for anything else."""
    return int(code.value[0]) if isinstance(code, grpc.StatusCode) else None


def code_of_exception(exc: BaseException) -> int:
    """The status a call ended with when it raised ``exc``."""
    if isinstance(exc, grpc.RpcError):
        try:
            found = number(exc.code())
        except Exception:
            found = None
        if found is not None:
            return found
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit, grpc.FutureCancelledError)):
        return CANCELLED
    return UNKNOWN


def _excluded_services() -> frozenset[str]:
    raw = os.environ.get("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", "")
    return frozenset(s.strip() for s in raw.split(",") if s.strip())


def _split(full_method: str) -> tuple[str, str]:
    """``/package.Service/Method`` -> (``package.Service``, ``Method``)."""
    service, _, method = full_method.lstrip("/").partition("/")
    return service, method


class Call:
    """One call being timed: :meth:`end` records it once, whatever path reports the end first."""

    __slots__ = ("_ended", "_histogram", "_method", "_recorder", "_span", "_start")

    def __init__(self, recorder: Recorder, histogram: Any, method: str, span: Any) -> None:
        self._recorder = recorder
        self._histogram = histogram
        self._method = method
        self._span = span
        self._ended = False
        self._start = time.perf_counter()

    def end(self, code: int) -> None:
        """Record the duration with status ``code``; never raises."""
        if self._ended:
            return
        self._ended = True
        try:
            self._histogram.record(time.perf_counter() - self._start,
                                   attributes=self._recorder.attributes(self._method, code))
        except Exception as exc:
            report_internal_error("grpc: recording a call", exc)

    def end_from_future(self, future: Any) -> None:
        """A done callback: the status from the finished call (sync futures and outcomes)."""
        try:
            code = number(future.code())
        except Exception:
            code = None
        self.end(UNKNOWN if code is None else code)

    def end_server(self, context: Any, error: BaseException | None) -> None:
        """Record a served call: the status the handler set or aborted with, else OK or what ``error`` means.

        An exception the handler did not catch becomes UNKNOWN on the wire; the contrib span missed it.
        """
        try:
            code = number(context.code())
        except Exception:
            code = None
        if code is None:
            code = OK if error is None else code_of_exception(error)
            if code == UNKNOWN and self._span is not None:
                try:
                    self._span.set_attribute("rpc.grpc.status_code", UNKNOWN)
                    self._span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                except Exception as exc:
                    report_internal_error("grpc: completing the server span", exc)
        self.end(code)


class Recorder:
    """The two duration histograms and the per-call bookkeeping the interceptors share."""

    #: Metric attributes per (method, status), kept so a call allocates no dict; methods are the ones the
    #: server serves or the client's stubs call, so the cache is a safety bound, not a working limit.
    CACHE_SIZE = 1024

    def __init__(self) -> None:
        self._histograms: dict[str, Any] = {}
        self._excluded = _excluded_services()
        self._attributes: dict[tuple[str, int], Mapping[str, Any]] = {}

    def histogram(self, name: str) -> Any:
        """:data:`SERVER_DURATION` or :data:`CLIENT_DURATION`, made on first use, not when switched on:
        ``instrument()`` may run before ``init()``, and instruments made then are proxies that ``init()``
        has to turn into real ones."""
        found = self._histograms.get(name)
        if found is None:
            way = "inbound" if name == SERVER_DURATION else "outbound"
            found = metrics.get_meter(_SCOPE, grpc.__version__).create_histogram(
                name, unit="s", description=f"Measures the duration of {way} RPC.")
            self._histograms[name] = found
        return found

    def attributes(self, full_method: str, code: int) -> Mapping[str, Any]:
        """The metric attributes of one call; shared, not to be changed."""
        key = (full_method, code)
        found = self._attributes.get(key)
        if found is None:
            service, method = _split(full_method)
            found = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method,
                     "rpc.grpc.status_code": code}
            if len(self._attributes) >= self.CACHE_SIZE:
                self._attributes.clear()
            self._attributes[key] = found
        return found

    def start(self, metric: str, full_method: Any) -> Call | None:
        """A :class:`Call` timed into ``metric``, or None when it is not to be recorded; never raises."""
        try:
            if not is_instrumentation_enabled():
                return None
            method = full_method.decode() if isinstance(full_method, bytes) else str(full_method)
            if self._excluded and _split(method)[0] in self._excluded:
                return None
            return Call(self, self.histogram(metric), method, _name_span(method))
        except Exception as exc:
            report_internal_error("grpc: starting a call", exc)
            return None


@contextlib.contextmanager
def serving(recorder: Recorder, method: Any, context: Any) -> Iterator[None]:
    """Time the block as one served call of ``method`` (every server wrapper, sync and asyncio, unary and
    streaming, runs its handler inside it); the block's exception goes on unchanged."""
    call = recorder.start(SERVER_DURATION, method)
    if call is None:
        yield
        return
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        call.end_server(context, error)


def _name_span(full_method: str) -> Any:
    """The contrib span this call runs in, renamed ``package.Service/Method``; None if it is not in one.

    Only a span named exactly like the wire path is taken for it: an application's own span around the
    call is never renamed.
    """
    span = trace.get_current_span()
    if full_method.startswith("/") and getattr(span, "name", None) == full_method:
        span.update_name(full_method[1:])
        return span
    return None


Wrap = Callable[[Recorder, Any, Callable[..., Any], bool], Callable[..., Any]]


def timed_handler(handler: Any, recorder: Recorder, method: Any, wrap: Wrap) -> Any:
    """``handler`` (a ``grpc.RpcMethodHandler``) whose behaviour is ``wrap(recorder, method, behaviour,
    response_streaming)``; the handler unchanged if that fails. None stays None: grpc answers UNIMPLEMENTED,
    and nothing is recorded, so a scanner's made-up method names never become series."""
    if handler is None:
        return None
    try:
        streaming = bool(handler.response_streaming)
        attribute, factory = _KINDS[(bool(handler.request_streaming), streaming)]
        return factory(wrap(recorder, method, getattr(handler, attribute), streaming),
                       request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
    except Exception as exc:
        report_internal_error("grpc: wrapping a server handler", exc)
        return handler
