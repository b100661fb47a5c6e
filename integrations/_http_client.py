"""What obskit's own HTTP client hooks (``urllib3``, ``urllib``) share: one CLIENT span and one
``http.client.request.duration`` observation per request, ``traceparent`` sent, nothing when suppressed.

Why obskit's own hooks: OpenTelemetry's urllib3 and urllib instrumentors exist only in a release series older
than the rest of obskit's instrumentations (installing them would move the others back). What is recorded
follows the stable HTTP semantic conventions, as the ``requests`` and ``httpx`` instrumentors record it, so
their series on ``/metrics`` are the same: span ``GET`` with ``http.request.method``, ``server.address``,
``server.port``, ``url.full`` (credentials replaced by ``REDACTED``; sensitive query values are scrubbed
by obskit's exporters), ``http.response.status_code``, ``network.protocol.version``, and ``error.type`` for
a status >= 400 (the code) or an exception (its class). The metric has the same attributes but ``url.full``.

A request is not traced while OpenTelemetry's suppression keys are set: obskit's exporters set one, so an
OTLP/HTTP export (requests, then urllib3) is never a span, and the ``requests`` instrumentor sets the HTTP
one around its send, so a ``requests`` call is one span, not one from each layer. Hooks set the HTTP key
around the request they trace for the same reason (urllib3's retries and redirects call ``urlopen`` again).

Telemetry never breaks the request: a failure in it is reported once and the request goes on untraced; the
request's own exception is recorded on the span and re-raised as it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from obskit.integrations._http_server import _BUCKETS, _method
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from obskit._runtime._safe import report_internal_error

__all__ = ["DURATION", "ClientRecorder", "MethodPatch", "is_traced", "status_and_version",
           "without_credentials"]

#: Exposed as ``http_client_request_duration_seconds``.
DURATION = "http.client.request.duration"
# The key OpenTelemetry's instrumentations also read, kept for code that still sets the plain string.
_SUPPRESS_PLAIN = "suppress_instrumentation"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_VERSIONS = {9: "0.9", 10: "1.0", 11: "1.1", 20: "2", 30: "3"}

T = TypeVar("T")
#: What a hook tells about the response it got: (status code, ``network.protocol.version``).
ResponseInfo = Callable[[Any], "tuple[int | None, str | None]"]


def is_traced() -> bool:
    """Whether an outgoing request here is traced: ``is_http_instrumentation_enabled()`` of
    ``opentelemetry-instrumentation``, which the ``urllib3`` and ``urllib`` extras do not install."""
    get = otel_context.get_value
    return not (get(_SUPPRESS_INSTRUMENTATION_KEY) or get(_SUPPRESS_PLAIN)
                or get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY))


def without_credentials(url: str) -> str:
    """``url`` with its user and password replaced by ``REDACTED``, as the semantic conventions ask."""
    if "@" not in url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="REDACTED:REDACTED@" + parts.netloc.rpartition("@")[2]))


def status_and_version(response: Any) -> tuple[int | None, str | None]:
    """(status, ``network.protocol.version``) of an ``http.client`` or urllib3 response (``version`` 11 is
    "1.1")."""
    status, version = getattr(response, "status", None), getattr(response, "version", None)
    return (status if isinstance(status, int) else None), (_VERSIONS.get(version) if isinstance(version, int)
                                                           else None)


class _Call:
    """One traced request: its span, the context it runs in, the metric attributes so far, its start."""

    __slots__ = ("context", "metric_attrs", "span", "start")

    def __init__(self, span: Span, metric_attrs: dict[str, Any]) -> None:
        self.span = span
        self.metric_attrs = metric_attrs
        self.context = otel_context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True,
                                              trace.set_span_in_context(span))
        self.start = time.perf_counter()


class ClientRecorder:
    """Traces requests for one hook (``scope``: the instrumentation scope its spans and metric carry)."""

    def __init__(self, scope: str, version: str) -> None:
        self.tracer = trace.get_tracer(scope, version)
        self.duration = metrics.get_meter(scope, version).create_histogram(
            DURATION, unit="s", description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=_BUCKETS)

    def run(self, method: str, url: str, send: Callable[[dict[str, str]], T],
            response_info: ResponseInfo = status_and_version) -> T:
        """``send(headers)`` as one traced request; ``headers`` (``traceparent``, ...) go with it."""
        call = self._begin(method, url)
        if call is None:
            return send({})
        headers: dict[str, str] = {}
        try:
            propagate.inject(headers, context=call.context)
        except Exception as exc:
            report_internal_error("http client: injecting traceparent", exc)
        token = otel_context.attach(call.context)
        try:
            result = send(headers)
        except BaseException as exc:
            self._end(call, None, exc, response_info)
            raise
        finally:
            otel_context.detach(token)
        self._end(call, result, None, response_info)
        return result

    def _begin(self, method: str, url: str) -> _Call | None:
        try:
            known = _method(method)
            full = without_credentials(url)
            parts = urlsplit(full)
            server: dict[str, Any] = {}
            if parts.hostname:
                server["server.address"] = parts.hostname
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
            if port:
                server["server.port"] = port
            attrs: dict[str, Any] = {"http.request.method": known, **server, "url.full": full}
            if known != method:
                attrs["http.request.method_original"] = method
            span = self.tracer.start_span("HTTP" if known == "_OTHER" else known, kind=SpanKind.CLIENT,
                                          attributes=attrs)
            return _Call(span, {"http.request.method": known, **server})
        except Exception as exc:
            report_internal_error("http client: starting a span", exc)
            return None

    def _end(self, call: _Call, result: Any, exc: BaseException | None, response_info: ResponseInfo) -> None:
        """Set the outcome on the span, record the duration inside it (its exemplar), end it; never raises."""
        span = call.span
        try:
            elapsed = max(time.perf_counter() - call.start, 0.0)
            attrs = call.metric_attrs
            error: str | None = None
            if exc is not None:
                error = type(exc).__qualname__
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{error}: {exc}"))
            else:
                status, version = response_info(result)
                if status is not None:
                    attrs["http.response.status_code"] = status
                    span.set_attribute("http.response.status_code", status)
                    if status >= 400:
                        error = str(status)
                        span.set_status(Status(StatusCode.ERROR))
                if version:
                    attrs["network.protocol.version"] = version
                    span.set_attribute("network.protocol.version", version)
            if error is not None:
                attrs["error.type"] = error
                span.set_attribute("error.type", error)
            token = otel_context.attach(call.context)
            try:
                self.duration.record(elapsed, attrs)
            finally:
                otel_context.detach(token)
        except Exception as failure:
            report_internal_error("http client: recording a request", failure)
        finally:
            try:
                span.end()
            except Exception as failure:
                report_internal_error("http client: ending a span", failure)


class MethodPatch:
    """A hook's ``instrument`` / ``uninstrument`` / ``is_instrumented``: ``cls.name`` replaced by
    ``wrap(original)`` (on the class, so objects made before are covered), the very original put back."""

    def __init__(self, cls: type, name: str,
                 wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        self._cls = cls
        self._name = name
        self._wrap = wrap
        self._lock = threading.Lock()
        self._original: Callable[..., Any] | None = None

    def instrument(self) -> bool:
        """Patch; False (and nothing done) if already patched."""
        with self._lock:
            if self._original is not None:
                return False
            original = self._cls.__dict__[self._name]
            setattr(self._cls, self._name, self._wrap(original))
            self._original = original
            return True

    def uninstrument(self) -> None:
        """Put the original back."""
        with self._lock:
            if self._original is not None:
                setattr(self._cls, self._name, self._original)
                self._original = None

    def is_instrumented(self) -> bool:
        """Whether :meth:`instrument` is in effect."""
        return self._original is not None
