"""The aiohttp server hook behind :mod:`obskit.integrations.aiohttp`; imported only once aiohttp's server is.

Why ``RequestHandler._handle_request``: every ``web.Application`` (and a low-level ``web.Server``) is served
by it, it looks the method up on the class for each request (so apps created, and servers started, before
``init()`` are covered), and it runs, in the request's own task, everything one request is: routing, the
middlewares and the handler, the 500 page for an exception with aiohttp's "Error handling request" line,
sending the response and the access line. A span current around it therefore correlates both of aiohttp's
lines with no further patch, and the RED series (:mod:`obskit.integrations._http_server`) are recorded
when the response has been sent, inside the span, so the bucket's exemplar is this request's trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web_protocol
from aiohttp.web_exceptions import HTTPException
from obskit.integrations import _http_server
from obskit.integrations._http_client import MethodPatch
from obskit.integrations._http_server import ServerRequest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from obskit._runtime._safe import capture_internal_exceptions, report_internal_error

__all__ = ["PATCH"]

_SCOPE = "obskit.integrations.aiohttp"

Handler = Callable[[Any], Awaitable[Any]]


def _route(request: Any) -> str | None:
    """The matched resource's template (``/items/{item_id}``); None for a 404/405 or a low-level server."""
    try:
        resource = request.match_info.route.resource
    except Exception:  # a BaseRequest has no match_info; before routing it is unset
        return None
    return getattr(resource, "canonical", None) if resource is not None else None


def _host_port(host: str) -> tuple[str, int | None]:
    """``server.address`` and ``server.port`` from a Host header (``[::1]:8080`` included)."""
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and (not name.startswith("[") or name.endswith("]")):
        return name.strip("[]"), int(port)
    return host.strip("[]"), None


def _attributes(request: Any, server: ServerRequest) -> dict[str, Any]:
    """The span's attributes known before the app runs (stable HTTP semantic conventions)."""
    version = request.version
    attrs: dict[str, Any] = {"http.request.method": server.method, "url.path": request.path,
                             "url.scheme": server.scheme,
                             "network.protocol.version": f"{version.major}.{version.minor}"}
    if server.method == "_OTHER":
        attrs["http.request.method_original"] = request.method
    address, port = _host_port(request.host)
    if address:
        attrs["server.address"] = address
    if port is not None:
        attrs["server.port"] = port
    agent = request.headers.get("User-Agent")
    if agent:
        attrs["user_agent.original"] = agent
    remote = request.remote
    if remote:
        attrs["client.address"] = remote
    return attrs


def _noting(server: ServerRequest, request_handler: Handler) -> Handler:
    """The app's handler, telling ``server`` the route it matched and the exception it raised (which aiohttp
    then turns into a 500, logging it inside the span)."""

    async def handler(request: Any) -> Any:
        try:
            return await request_handler(request)
        except HTTPException:
            raise  # a response (404, 302, ...), not a failure: its status says what it is
        except Exception as exc:
            with capture_internal_exceptions("aiohttp server span"):
                server.note_exception(exc)
            raise
        finally:
            with capture_internal_exceptions("aiohttp server span"):
                server.set_route(_route(request))

    return handler


def _start(tracer: trace.Tracer, request: Any) -> tuple[ServerRequest, trace.Span, object] | None:
    """The request's ServerRequest and span, made current; None for an excluded path. A propagator or a
    tracer that fails costs the request its parent or its span, never its RED series nor its answer."""
    if request.path in _http_server.excluded_paths():
        return None
    protocol = request.version
    server = ServerRequest(request.method, request.scheme, f"{protocol.major}.{protocol.minor}")
    parent = None
    with capture_internal_exceptions("aiohttp server trace context"):
        parent = propagate.extract(request.headers)
    span: trace.Span = trace.INVALID_SPAN
    with capture_internal_exceptions("aiohttp server span"):
        span = tracer.start_span(server.span_name, context=parent, kind=SpanKind.SERVER,
                                 attributes=_attributes(request, server))
    server.span = span
    return server, span, otel_context.attach(trace.set_span_in_context(span))


def _end(server: ServerRequest, span: trace.Span) -> None:
    """Status and ``error.type`` on the span; the RED series recorded while the span is current."""
    status = server.status
    if span.is_recording():
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if server.error_type is not None or status is None or status >= 500:
            span.set_attribute("error.type", server.error_type or str(status or "incomplete_response"))
            span.set_status(Status(StatusCode.ERROR))
    server.finish()


def _traced(original: Callable[..., Any]) -> Callable[..., Any]:
    """``RequestHandler._handle_request`` running each request inside its SERVER span."""
    tracer = trace.get_tracer(_SCOPE, aiohttp.__version__)
    _http_server.quiet_access_lines()

    async def _handle_request(self: Any, request: Any, start_time: Any, request_handler: Handler) -> Any:
        started = None
        try:
            started = _start(tracer, request)
        except Exception as exc:
            report_internal_error("aiohttp server span", exc)
        if started is None:
            return await original(self, request, start_time, request_handler)
        server, span, token = started
        entered = server.enter()
        try:
            result = await original(self, request, start_time, _noting(server, request_handler))
        except BaseException as exc:  # the client went away (CancelledError), or the error page failed
            with capture_internal_exceptions("aiohttp server span"):
                if server.error_type is None:
                    server.failed(exc)
                elif server.status is None:
                    server.status = 500
                if span.is_recording():
                    span.record_exception(exc)
            raise
        else:
            with capture_internal_exceptions("aiohttp server span"):
                server.status = int(result[0].status)
            return result
        finally:
            with capture_internal_exceptions("aiohttp server span"):
                _end(server, span)
            server.leave(entered)
            otel_context.detach(token)  # type: ignore[arg-type]
            with capture_internal_exceptions("aiohttp server span"):
                span.end()

    return _handle_request


PATCH = MethodPatch(web_protocol.RequestHandler, "_handle_request", _traced)
