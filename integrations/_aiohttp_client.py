"""The aiohttp client hook behind :mod:`obskit.integrations.aiohttp`; imported only once aiohttp is.

Why ``ClientSession._request`` and not a ``TraceConfig``: trace configs are given to a session when it is
made, so sessions made before ``init()`` (a module-level session, a pool held by a client library) would
never be traced; every ``get``/``post``/``request``/``ws_connect`` of every session goes through
``_request``, looked up on the class at each call. One call is one CLIENT span named by its method, redirects
included, with ``traceparent`` in its headers, and one ``http.client.request.duration`` observation (exposed
as ``http_client_request_duration_seconds``) labelled by method, status and server, never by path. The span
ends when the response's headers are in, as the request's awaitable returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

try:
    import aiohttp
    from multidict import CIMultiDict
    from yarl import URL
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.aiohttp needs aiohttp ({exc}); install it with: "
                      "pip install 'obskit[aiohttp]'") from exc

from obskit.integrations._http_server import _BUCKETS, _KNOWN_METHODS
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

from obskit._runtime._safe import capture_internal_exceptions, report_internal_error

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "obskit.integrations.aiohttp"
_METHOD = "_request"
# What OpenTelemetry's own helpers check (opentelemetry-instrumentation is not a dependency of obskit).
_SUPPRESS_PLAIN = "suppress_instrumentation"
_lock = threading.Lock()
_original: Callable[..., Any] | None = None
_tracer: trace.Tracer | None = None
_duration: metrics.Histogram | None = None


def _suppressed() -> bool:
    """Whether instrumentation, or HTTP instrumentation, is switched off in this context."""
    get = otel_context.get_value
    return bool(get(_SUPPRESS_INSTRUMENTATION_KEY) or get(_SUPPRESS_PLAIN)
                or get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY))


def _url(session: Any, str_or_url: Any) -> URL:
    """The URL the call goes to, the session's ``base_url`` applied; credentials replaced by REDACTED."""
    build = getattr(session, "_build_url", None)  # aiohttp's own joining, when this version has it
    url = build(str_or_url) if build is not None else URL(str_or_url)
    if url.user is not None or url.password is not None:
        url = url.with_user("REDACTED").with_password("REDACTED" if url.password is not None else None)
    return url


class _Call:
    """One client call: its span (current while aiohttp runs it) and its duration observation."""

    __slots__ = ("metric", "span", "start", "token")

    def __init__(self, session: Any, method: str, str_or_url: Any, kwargs: dict[str, Any]) -> None:
        upper = str(method).upper()
        known = upper if upper in _KNOWN_METHODS else "_OTHER"
        url = _url(session, str_or_url)
        self.metric: dict[str, Any] = {"http.request.method": known}
        if url.host:
            self.metric["server.address"] = url.host
        if url.port is not None:
            self.metric["server.port"] = url.port
        if url.scheme:
            self.metric["url.scheme"] = url.scheme
        attrs = {**self.metric, "url.full": str(url)}
        if known == "_OTHER":
            attrs["http.request.method_original"] = str(method)
        assert _tracer is not None
        self.span = _tracer.start_span("HTTP" if known == "_OTHER" else known, kind=SpanKind.CLIENT,
                                       attributes=attrs)
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        with capture_internal_exceptions("aiohttp client trace context"):
            kwargs["headers"] = self._with_traceparent(kwargs.get("headers"))
        self.start = time.perf_counter()

    @staticmethod
    def _with_traceparent(headers: Any) -> Any:
        """A copy of the caller's headers with the trace context added (theirs is never changed)."""
        carrier: CIMultiDict[str] = CIMultiDict(headers) if headers else CIMultiDict()
        propagate.inject(carrier)
        return carrier

    def responded(self, response: Any) -> None:
        status = int(response.status)
        self.metric["http.response.status_code"] = status
        version = getattr(response, "version", None)
        if version is not None:
            self.metric["network.protocol.version"] = f"{version.major}.{version.minor}"
        span = self.span
        if span.is_recording():
            span.set_attribute("http.response.status_code", status)
        if status >= 400:  # for a client a 4xx is a failure too
            self._error(str(status))

    def failed(self, exc: BaseException) -> None:
        if self.span.is_recording():
            self.span.record_exception(exc)
        self._error(type(exc).__qualname__)

    def _error(self, error_type: str) -> None:
        self.metric["error.type"] = error_type
        span = self.span
        if span.is_recording():
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))

    def end(self) -> None:
        """Record the duration while the span is current (the bucket's exemplar), then end the span."""
        try:
            if _duration is not None:
                _duration.record(max(time.perf_counter() - self.start, 0.0), self.metric)
        finally:
            otel_context.detach(self.token)  # type: ignore[arg-type]
            self.span.end()


def _traced(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        call = None
        if _original is not None and not _suppressed():  # a kept wrapper passes through once switched off
            try:
                call = _Call(self, method, str_or_url, kwargs)
            except Exception as exc:
                report_internal_error("aiohttp client span", exc)
        if call is None:
            return await original(self, method, str_or_url, **kwargs)
        try:
            response = await original(self, method, str_or_url, **kwargs)
        except BaseException as exc:
            with capture_internal_exceptions("aiohttp client span"):
                call.failed(exc)
            raise
        else:
            with capture_internal_exceptions("aiohttp client span"):
                call.responded(response)
            return response
        finally:
            with capture_internal_exceptions("aiohttp client span"):
                call.end()

    _request.__wrapped__ = original  # type: ignore[attr-defined]
    return _request


def instrument() -> bool:
    """Trace every call of every ``ClientSession`` from now on; False if already instrumented."""
    global _original, _tracer, _duration
    with _lock:
        if _original is not None:
            return False
        cls = aiohttp.ClientSession
        original = cls.__dict__[_METHOD]
        _tracer = trace.get_tracer(_SCOPE, aiohttp.__version__)
        if _duration is None:  # one instrument for the process: the API's proxy follows obskit's provider
            _duration = metrics.get_meter(_SCOPE, aiohttp.__version__).create_histogram(
                "http.client.request.duration", unit="s", description="Duration of HTTP client requests.",
                explicit_bucket_boundaries_advisory=_BUCKETS)
        setattr(cls, _METHOD, _traced(original))
        _original = original
        return True


def uninstrument() -> None:
    """Put ``ClientSession._request`` back as it was."""
    global _original
    with _lock:
        if _original is None:
            return
        cls = aiohttp.ClientSession
        if getattr(cls.__dict__.get(_METHOD), "__wrapped__", None) is _original:
            setattr(cls, _METHOD, _original)
        _original = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _original is not None
