"""One server span per request for any WSGI app (Flask, Django's WSGI handler, Falcon, a bare callable).

    from obskit.integrations.wsgi import ObskitWSGIMiddleware
    app = ObskitWSGIMiddleware(app)

Flask and Django apps need no wiring: the ``flask`` and ``django`` integrations put this middleware in every
app and name its span by route.

The span is made in one pass (:mod:`obskit.integrations._server_span`), or by
``opentelemetry-instrumentation-wsgi``'s
middleware when an option needs it. An incoming W3C ``traceparent`` is continued, and the span
stays current while the app runs and while the server iterates the response body, so log lines written for
the request carry its ``trace_id``. The span ends when the server closes the response.

Each request is also recorded in the RED metrics (``http_server_request_duration_seconds``,
``http_server_active_requests``; see :mod:`obskit.integrations._http_server`) when its body has been sent,
with the route template a framework hook reported, the status, and ``error.type`` for an exception or a 5xx.
The span is named ``METHOD route``, or ``METHOD`` alone when no route is known (a bare WSGI callable has
none). Paths in ``OBSKIT_EXCLUDED_PATHS`` (``/metrics`` and health checks by default) are left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.util import request_uri

from obskit.integrations import _http_server, _server_span
from obskit.integrations._contract import Integration
from obskit.integrations._http_server import ServerRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["INTEGRATION", "ObskitWSGIMiddleware", "instrument_wsgi"]

_TRACED = "obskit.traced"  # set in the environ by the outermost obskit layer: inner ones pass through
_REQUEST = "obskit.request"


class _Body:
    """The app's response, finishing the request when the server has iterated it (inside the span) or,
    failing that, when it closes it; the app's own ``close`` is always called, as PEP 3333 asks."""

    def __init__(self, result: Iterable[bytes], request: ServerRequest) -> None:
        self._result = result
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._result
        except BaseException as exc:
            self._request.failed(exc)
            raise
        self._request.finish()

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._request.finish()


def _noting_status(request: ServerRequest, start_response: StartResponse) -> Any:
    """``start_response`` that notes the response's status on ``request`` first."""

    def start_noting_status(status: str, headers: Any, exc_info: Any = None) -> Any:
        with contextlib.suppress(ValueError):
            request.status = int(status.split(" ", 1)[0])
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    return start_noting_status


class _SpanBody:
    """The response of a request traced in one pass: the app's response is closed and the span ended (and
    no longer current) as soon as the server has iterated it, as OpenTelemetry's middleware does, or when the
    server closes it without iterating to the end."""

    def __init__(self, result: Iterable[bytes], span: Any, token: object, request: ServerRequest) -> None:
        self._result = result
        self._span = span
        self._token = token
        self._request = request
        self._failure: BaseException | None = None
        self._ended = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._result
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._failure = exc
            self._request.failed(exc)
            raise
        finally:
            self.close()

    def close(self) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            try:
                self._request.finish()  # inside the span: the bucket's exemplar is this trace
            finally:
                _server_span.end_server_span(self._span, self._token, self._request.status, self._failure)


class _InSpan:
    """Runs inside the server span: notes the status, lets framework hooks name the route, and records."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request: ServerRequest | None = environ.get(_REQUEST)
        if request is None:
            return self.app(environ, start_response)
        from opentelemetry import trace

        request.span = span = trace.get_current_span()
        if span.is_recording():
            span.update_name(request.span_name)  # not OpenTelemetry's "GET /raw/path": a route, or none
            if "RAW_URI" not in environ and "REQUEST_URI" not in environ:
                # OpenTelemetry reads the path only from those; wsgiref and runserver set neither.
                span.set_attribute("url.path", environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))

        start_noting_status = _noting_status(request, start_response)

        token = request.enter()
        try:
            result = self.app(environ, start_noting_status)  # type: ignore[arg-type]
        except BaseException as exc:
            request.failed(exc)
            request.finish()
            raise
        finally:
            request.leave(token)
        return _Body(result, request)


class ObskitWSGIMiddleware:
    """Wraps a WSGI app so each request is one server span.

    ``excluded_paths`` (default: ``OBSKIT_EXCLUDED_PATHS``, i.e. ``/metrics``, ``/health``, ``/healthz``,
    ``/ready``) and ``excluded_urls`` (comma-separated regexes matched against the request URL; default: the
    standard ``OTEL_PYTHON_WSGI_EXCLUDED_URLS`` or ``OTEL_PYTHON_EXCLUDED_URLS``) bypass tracing and
    metrics; any other keyword goes to OpenTelemetry's ``OpenTelemetryMiddleware`` (request and response
    hooks, providers).
    """

    def __init__(
        self, app: WSGIApplication, *, excluded_urls: str | None = None,
        excluded_paths: str | list[str] | tuple[str, ...] | None = None, **otel_options: Any
    ) -> None:
        try:  # imported when the first middleware is made, not with this module
            from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
            from opentelemetry.metrics import NoOpMeterProvider
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"obskit.integrations.wsgi needs opentelemetry-instrumentation-wsgi ({exc}); "
                              "install it with: pip install 'obskit[wsgi]'") from exc
        self.app = app
        # The one-pass path (_server_span) unless an option or the environment needs the contrib middleware.
        self._lean = not _server_span.asks_for_contrib(otel_options)
        self._in_span = _InSpan(app)
        # obskit records the RED metrics itself, after the body is sent and with the route.
        otel_options.setdefault("meter_provider", NoOpMeterProvider())
        self._otel = OpenTelemetryMiddleware(self._in_span, **otel_options)
        self._excluded = _server_span.excluded_urls(excluded_urls, "WSGI")
        if isinstance(excluded_paths, str):
            excluded_paths = excluded_paths.split(",")
        self._paths = (None if excluded_paths is None
                       else _http_server.ExcludedPaths(p.strip() for p in excluded_paths if p.strip()))
        _http_server.quiet_access_lines()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get(_TRACED):
            return self.app(environ, start_response)
        environ[_TRACED] = True
        paths = self._paths if self._paths is not None else _http_server.excluded_paths()
        if environ.get("PATH_INFO") in paths or (self._excluded is not None and self._excluded.url_disabled(
                request_uri(environ))):
            return self.app(environ, start_response)
        protocol = str(environ.get("SERVER_PROTOCOL", ""))
        environ[_REQUEST] = request = ServerRequest(str(environ.get("REQUEST_METHOD", "")),
                                                    str(environ.get("wsgi.url_scheme", "http")),
                                                    protocol.partition("/")[2] or None)
        if self._lean:
            return self._traced(environ, start_response, request)
        result: Iterable[bytes] = self._otel(environ, start_response)
        return result

    def _traced(self, environ: WSGIEnvironment, start_response: StartResponse,
                request: ServerRequest) -> Iterable[bytes]:
        """One request in one pass (see ``_server_span``): the span is current from here until the server
        closes the response, as OpenTelemetry's middleware keeps it. What ``_InSpan`` and ``_Body`` do for the
        contrib path (note the status, let framework hooks name the route, record once the body is sent) is
        done here and in ``_SpanBody``, without their extra call and generator layers."""
        attrs, parent = _server_span.wsgi_request_attributes(environ, request.method)
        span, token = _server_span.start_server_span(request.span_name, attrs, parent)
        request.span = span

        start_noting_status = _noting_status(request, start_response)

        entered = request.enter()
        try:
            result = self.app(environ, start_noting_status)  # type: ignore[arg-type]
        except BaseException as exc:
            try:
                request.failed(exc)
                request.finish()
            finally:
                _server_span.end_server_span(span, token, request.status, exc)
            raise
        finally:
            request.leave(entered)
        return _SpanBody(result, span, token, request)


def instrument_wsgi(app: WSGIApplication, **options: Any) -> ObskitWSGIMiddleware:
    """``ObskitWSGIMiddleware(app, **options)``, for those who prefer a function."""
    return ObskitWSGIMiddleware(app, **options)


INTEGRATION = Integration(
    name="wsgi",
    extra="wsgi",
    requires={"opentelemetry-instrumentation-wsgi": "0.66b0"},
    wiring="wrap the app: obskit.integrations.wsgi.ObskitWSGIMiddleware(app)",
)
