"""The aiohttp client hook behind :mod:`obskit.integrations.aiohttp`; imported only once aiohttp is.

Why ``ClientSession._request`` and not a ``TraceConfig``: trace configs are given to a session when it is
made, so sessions made before ``init()`` (a module-level session, a pool held by a client library) would
never be traced; every ``get``/``post``/``request``/``ws_connect`` of every session goes through
``_request``, looked up on the class at each call. One call is one CLIENT span named by its method, redirects
included, with ``traceparent`` in a copy of its headers, and one ``http.client.request.duration``
observation (``http_client_request_duration_seconds``) with the attributes obskit's other HTTP clients give
it (:mod:`obskit.integrations._http_client`): method, status and server, never the path. The span ends when
the response's headers are in, as the request's awaitable returns. ``ClientRecorder`` runs a synchronous
call; this one is awaited, so it keeps its own span handling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
from multidict import CIMultiDict
from obskit.integrations._http_client import ClientRecorder, MethodPatch, is_traced, without_credentials
from obskit.integrations._http_server import _method
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from yarl import URL

from obskit._runtime._safe import capture_internal_exceptions, report_internal_error

__all__ = ["PATCH"]

_SCOPE = "obskit.integrations.aiohttp"


def _url(session: Any, str_or_url: Any) -> URL:
    """The URL the call goes to, the session's ``base_url`` applied."""
    build = getattr(session, "_build_url", None)  # aiohttp's own joining, when this version has it
    return build(str_or_url) if build is not None else URL(str_or_url)


class _Call:
    """One client call: its span (current while aiohttp runs it) and its duration observation."""

    __slots__ = ("duration", "metric", "span", "start", "token")

    def __init__(self, recorder: ClientRecorder, session: Any, method: str, str_or_url: Any,
                 kwargs: dict[str, Any]) -> None:
        known = _method(str(method))
        url = _url(session, str_or_url)
        self.metric: dict[str, Any] = {"http.request.method": known}
        if url.host:
            self.metric["server.address"] = url.host
        if url.port is not None:
            self.metric["server.port"] = url.port
        attrs = {**self.metric, "url.full": without_credentials(str(url))}
        if known == "_OTHER":
            attrs["http.request.method_original"] = str(method)
        self.duration = recorder.duration
        self.span = recorder.tracer.start_span("HTTP" if known == "_OTHER" else known, kind=SpanKind.CLIENT,
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

    def end(self, response: Any, exc: BaseException | None) -> None:
        """Outcome on the span, the duration recorded while it is current (the bucket's exemplar), span
        ended; never raises."""
        try:
            if exc is not None:
                if self.span.is_recording():
                    self.span.record_exception(exc)
                self._error(type(exc).__qualname__)
            else:
                self._responded(response)
            self.duration.record(max(time.perf_counter() - self.start, 0.0), self.metric)
        except Exception as failure:
            report_internal_error("aiohttp client span", failure)
        finally:
            otel_context.detach(self.token)  # type: ignore[arg-type]
            with capture_internal_exceptions("aiohttp client span"):
                self.span.end()

    def _responded(self, response: Any) -> None:
        status = int(response.status)
        self.metric["http.response.status_code"] = status
        version = getattr(response, "version", None)
        if version is not None:
            self.metric["network.protocol.version"] = f"{version.major}.{version.minor}"
        if self.span.is_recording():
            self.span.set_attribute("http.response.status_code", status)
        if status >= 400:  # for a client a 4xx is a failure too
            self._error(str(status))

    def _error(self, error_type: str) -> None:
        self.metric["error.type"] = error_type
        span = self.span
        if span.is_recording():
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))


def _traced(original: Callable[..., Any]) -> Callable[..., Any]:
    """``ClientSession._request`` making each call one CLIENT span and one duration observation."""
    recorder = ClientRecorder(_SCOPE, aiohttp.__version__)

    async def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        call = None
        if is_traced():
            try:
                call = _Call(recorder, self, method, str_or_url, kwargs)
            except Exception as exc:
                report_internal_error("aiohttp client span", exc)
        if call is None:
            return await original(self, method, str_or_url, **kwargs)
        try:
            response = await original(self, method, str_or_url, **kwargs)
        except BaseException as exc:
            call.end(None, exc)
            raise
        call.end(response, None)
        return response

    return _request


PATCH = MethodPatch(aiohttp.ClientSession, "_request", _traced)
