"""One server span per request for any ASGI app (Starlette, FastAPI, Quart, a bare callable).

    from obskit.integrations.asgi import ObskitASGIMiddleware
    app = ObskitASGIMiddleware(app)          # or: starlette_app.add_middleware(ObskitASGIMiddleware)

Starlette and FastAPI apps need no wiring: ``integrations=["starlette"]`` / ``["fastapi"]`` (or "auto") calls
:func:`instrument_starlette`, which puts this middleware in every app.

The span is made in one pass (:mod:`obskit.integrations._server_span`), or by
``opentelemetry-instrumentation-asgi``'s
middleware when an option needs it. An incoming W3C ``traceparent`` is continued, so the span
joins the caller's trace; while the request runs that span is current, so every log line written for it
(the app's, and the server's access line) carries its ``trace_id``. The ASGI ``receive``/``send`` child
spans are left out by default: one request, one span.

Each HTTP request is also recorded in the RED metrics (``http_server_request_duration_seconds`` with the
route template, ``http_server_active_requests``; see :mod:`obskit.integrations._http_server`), and the span
is named ``METHOD route`` (``METHOD`` alone when no route matched). Paths in ``OBSKIT_EXCLUDED_PATHS``
(``/metrics`` and health checks by default) get no span, no series and no access line at INFO.

An exception escaping the app is recorded on the span and logged here, inside the span (logger
``obskit.asgi``, "Exception in ASGI application"), so the error line is correlated too; uvicorn's own copy of
that line, written after the span has ended and so without a trace_id, is dropped. The exception still
propagates to the server unchanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

from obskit.integrations import _http_server, _server_span
from obskit.integrations._contract import Integration
from obskit.integrations._http_server import ServerRequest

__all__ = [
    "INTEGRATION",
    "ObskitASGIMiddleware",
    "instrument_asgi",
    "instrument_starlette",
    "uninstrument_starlette",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("obskit.asgi")
_LOGGED = "_obskit_logged_in_span"


def _otel() -> Any:
    """``opentelemetry.instrumentation.asgi``, imported by the first middleware made, not with this module."""
    try:
        import opentelemetry.instrumentation.asgi as otel_asgi  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"obskit.integrations.asgi needs opentelemetry-instrumentation-asgi ({exc}); "
                          "install it with: pip install 'obskit[asgi]'") from exc
    return otel_asgi


class _DropUvicornDuplicate(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" for an exception already logged inside its span."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not getattr(exc, _LOGGED, False)


_filter = _DropUvicornDuplicate()


def _install_filter() -> None:
    # A logger's own filters survive logging.config.dictConfig(), which uvicorn runs at start-up.
    uvicorn_error = logging.getLogger("uvicorn.error")
    if _filter not in uvicorn_error.filters:
        uvicorn_error.addFilter(_filter)


class _InSpan:
    """Runs inside the server span: names it by a route found late, records the request's RED metrics
    (inside the span, so the exemplar is this trace), and logs an escaping exception while the span is
    still current."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: ServerRequest | None = scope.get(_REQUEST)
        if request is None:
            await self._logging_errors(scope, receive, send)
            return
        from opentelemetry import trace

        request.span = trace.get_current_span()

        send_noting_status = _noting_status(scope, request, send)

        try:
            await self._logging_errors(scope, receive, send_noting_status)
        except BaseException as exc:
            request.failed(exc)
            raise
        finally:
            _note_route(scope, request)  # an exception before any response: routing has still run
            request.finish()

    async def _logging_errors(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope.get("type") in ("http", "websocket"):
                _log_once(exc)
            raise


def _noting_status(scope: Scope, request: ServerRequest, send: Send) -> Send:
    """``send`` that notes the response's status, and the route routing chose, when the response starts."""

    async def send_noting_status(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            request.status = int(message["status"])
            _note_route(scope, request)
        await send(message)

    return send_noting_status


def _log_once(exc: Exception) -> None:
    """Log an exception escaping the app, once however many layers see it, while its span is current."""
    if not getattr(exc, _LOGGED, False):
        _install_filter()
        _log.error("Exception in ASGI application", exc_info=exc)
        with contextlib.suppress(Exception):  # an exception with __slots__: uvicorn's copy stays
            setattr(exc, _LOGGED, True)


class ObskitASGIMiddleware:
    """Wraps an ASGI app so each HTTP/WebSocket request is one server span; other scopes pass through.

    ``excluded_paths`` (default: ``OBSKIT_EXCLUDED_PATHS``, i.e. ``/metrics``, ``/health``, ``/healthz``,
    ``/ready``) are served with no span, no metrics and no access line at INFO; so are ``excluded_urls``
    (comma-separated regexes, e.g. ``"/internal/.*"``; default: the standard
    ``OTEL_PYTHON_ASGI_EXCLUDED_URLS`` or ``OTEL_PYTHON_EXCLUDED_URLS``). Any other keyword goes to
    OpenTelemetry's ``OpenTelemetryMiddleware`` (hooks, captured headers, ``exclude_spans``,
    ``default_span_details``). On a Starlette or FastAPI app the
    span is named by route (``GET /items/{id}``) and carries ``http.route``; with no route, ``GET``.
    """

    def __init__(self, app: ASGIApp, *, excluded_urls: str | None = None,
                 excluded_paths: str | list[str] | tuple[str, ...] | None = None,
                 **otel_options: Any) -> None:
        otel_asgi = _otel()
        from opentelemetry.metrics import NoOpMeterProvider

        # The one-pass path (_server_span) unless an option or the environment needs the contrib middleware.
        self._lean = not _server_span.asks_for_contrib(otel_options)
        otel_options.setdefault("exclude_spans", ["receive", "send"])
        otel_options.setdefault("default_span_details", self._span_details)
        # obskit records the RED metrics itself (_http_server): with the route, the status and error.type.
        otel_options.setdefault("meter_provider", NoOpMeterProvider())
        self.app = app
        self._default_span_details = otel_asgi.get_default_span_details
        self._url_of = otel_asgi.get_host_port_url_tuple
        self._errors = _InSpan(app)
        self._excluded_urls = _server_span.excluded_urls(excluded_urls, "ASGI")
        self._excluded_paths = _paths(excluded_paths)
        self._otel = otel_asgi.OpenTelemetryMiddleware(self._errors, **otel_options)
        _install_filter()
        _http_server.quiet_access_lines()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # One server span per request, however many layers could make one: a second ObskitASGIMiddleware
        # (the starlette integration plus a manual one), FastAPI's native telemetry, or OpenTelemetry's
        # FastAPI instrumentor. Then only the error line is logged here, inside that other span.
        native = getattr(scope.get(_FASTAPI_NATIVE), "span", None) is not None
        if scope.get(_TRACED) or native or _traced_elsewhere(self.app) or _traced_elsewhere(scope.get("app")):
            await self._errors(scope, receive, send)
            return
        scope[_TRACED] = True
        if self._excluded(scope):
            await self._errors(scope, receive, send)
            return
        if kind != "http":
            await self._otel(scope, receive, send)
            return
        request = ServerRequest(str(scope.get("method", "")), str(scope.get("scheme", "http")),
                                scope.get("http_version"))
        scope[_REQUEST] = request
        token = request.enter()
        try:
            if self._lean:
                await self._traced(scope, receive, send, request)
            else:
                await self._otel(scope, receive, send)
        finally:
            request.leave(token)
            request.finish()  # already done inside the span, unless the span was never started

    async def _traced(self, scope: Scope, receive: Receive, send: Send, request: ServerRequest) -> None:
        """One request in one pass, in one coroutine: the span, its attributes, the route, the RED
        observation (inside the span, so that its exemplar is this trace) and the outcome; an exception
        escaping the app is logged while the span is current (what ``_InSpan`` does for the contrib path).

        The route template is read from what the app's router chose (``scope["route"]``) when the response
        starts, rather than found by matching every route a second time before the app runs; the span,
        started as ``METHOD``, is renamed then (as OpenTelemetry's middleware renames its span)."""
        scope[_ROUTING] = (scope.get("app") or self.app, scope.get("path"), scope.get("root_path", ""))
        attrs, parent = _server_span.request_attributes(scope, request.method, None)
        span, token = _server_span.start_server_span(request.span_name, attrs, parent)
        request.span = span

        send_noting_status = _noting_status(scope, request, send)

        failure: BaseException | None = None
        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException as exc:
            failure = exc
            if isinstance(exc, Exception):
                _log_once(exc)
            request.failed(exc)
            raise
        finally:
            try:
                _note_route(scope, request)  # an exception before any response: routing has still run
                request.finish()
            finally:
                _server_span.end_server_span(span, token, request.status, failure)

    def _excluded(self, scope: Scope) -> bool:
        paths = self._excluded_paths if self._excluded_paths is not None else _http_server.excluded_paths()
        if scope.get("path") in paths:
            return True
        urls = self._excluded_urls
        return urls is not None and bool(urls.url_disabled(self._url_of(scope)[2]))

    def _span_details(self, scope: Scope) -> tuple[str, dict[str, Any]]:
        name, attributes = self._default_span_details(cast("dict[str, Any]", scope))
        route = _route(scope.get("app") or self.app, scope)
        request: ServerRequest | None = scope.get(_REQUEST)
        if route:
            attributes = {**attributes, "http.route": route}
        if request is not None:
            request.route = route
            return request.span_name, attributes
        if scope["type"] == "http":  # no request object: a span made for a caller's own scope
            method = name.split(" ", 1)[0]
            return (f"{method} {route}" if route else method), attributes
        return route or "WS", attributes  # a WebSocket session: its route, never the raw path


def _paths(paths: str | list[str] | tuple[str, ...] | None) -> _http_server.ExcludedPaths | None:
    if paths is None:
        return None
    items = paths.split(",") if isinstance(paths, str) else paths
    return _http_server.ExcludedPaths(p.strip() for p in items if p.strip())


_TRACED = "obskit.traced"
_REQUEST = "obskit.request"
_ROUTING = "obskit.routing"  # (app, path, root_path) as the request came in, until the route is noted
_FASTAPI_NATIVE = "fastapi.telemetry"  # set in the scope by FastAPI's own telemetry while it traces a request


def _traced_elsewhere(app: Any) -> bool:
    """A FastAPI app traced by OpenTelemetry's instrumentor, or by its native telemetry (FastAPI >= 0.160)."""
    if getattr(app, "_is_instrumented_by_opentelemetry", False) is True:
        return True
    native = getattr(app, "_native_telemetry", None)  # FastAPI's own; private, hence the caution
    try:
        return native is not None and bool(native.config.get("tracing")) and bool(native.enabled())
    except Exception:
        return False


def _note_route(scope: Scope, request: ServerRequest) -> None:
    """Once routing has run: the route template, onto the request (its metrics) and its span (name and
    ``http.route``). Only for requests traced by ``_traced``, and once."""
    routing = scope.pop(_ROUTING, None)
    if routing is not None and request.route is None:
        request.set_route(_routed(scope, *routing))


def _routed(scope: Scope, app: Any, path: Any, root_path: Any) -> str | None:
    """The template of the route the router chose: its ``path`` when it is one of the app's own routes
    (not a Mount, nor a route included under a prefix); else found by matching the request as it came in
    (``path`` and ``root_path`` before routing changed them)."""
    chosen = scope.get("route")
    routes = getattr(app, "routes", None)
    if not routes:
        return None
    if scope.get("root_path", "") == root_path:
        # FastAPI >= 0.160 keeps an included router's routes unprefixed and records the route it chose,
        # with the prefixes, in its own part of the scope.
        fastapi_scope = scope.get("fastapi")
        effective = fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
        template = getattr(effective, "path_format", None)
        if isinstance(template, str) and template:
            return template
        if chosen is not None and not getattr(chosen, "routes", None):
            template = getattr(chosen, "path", None)
            if isinstance(template, str) and any(r is chosen for r in routes):
                return template
    return _route(app, {**scope, "path": path, "root_path": root_path})


def _route(app: Any, scope: Scope, prefix: str = "") -> str | None:
    """The Starlette route template this request matches (``/items/{item_id}``), or None."""
    routes = getattr(app, "routes", None)
    if not routes:
        return None
    try:
        from starlette.routing import Match
    except ImportError:  # pragma: no cover - routes but no starlette: not a Starlette app
        return None
    partial = None
    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:
            continue
        path = getattr(route, "path", None)
        if path is None:
            continue
        if match == Match.FULL:
            if getattr(route, "routes", None):  # a Mount: find the route inside it
                inner = _route(route, {**scope, **child}, prefix + path)
                return inner or prefix + path
            return prefix + str(path)
        if match == Match.PARTIAL and partial is None:
            partial = prefix + str(path)
    return partial


def instrument_asgi(app: ASGIApp, **options: Any) -> ObskitASGIMiddleware:
    """``ObskitASGIMiddleware(app, **options)``, for those who prefer a function."""
    return ObskitASGIMiddleware(app, **options)


_originals: dict[type, Callable[..., Any]] = {}


def _app_classes() -> list[type]:
    from starlette.applications import Starlette

    classes: list[type] = [Starlette]
    try:
        from fastapi import FastAPI
    except ImportError:
        pass
    else:  # FastAPI overrides build_middleware_stack, so it needs patching on its own
        classes.append(FastAPI)
    return classes


def instrument_starlette(operation_spans: bool = False) -> bool:
    """Put :class:`ObskitASGIMiddleware` outermost in every Starlette and FastAPI app.

    Patches ``build_middleware_stack``, which runs on an app's first request, so apps created before this
    call are covered too (a replaced app class would miss ``from fastapi import FastAPI`` done first).
    Outermost means the span also covers Starlette's error middleware. FastAPI's native telemetry, when
    active, keeps making the span; its operation spans (dependency resolution, endpoint, serialization)
    are turned off unless ``operation_spans``, so that a request is one span. Returns False when already
    in place.
    """
    if _originals:
        return False
    for cls in _app_classes():
        original = cls.__dict__["build_middleware_stack"]

        def build_middleware_stack(self: Any, _original: Callable[..., Any] = original) -> ASGIApp:
            _configure_native_telemetry(self, operation_spans)
            return ObskitASGIMiddleware(_original(self))

        _originals[cls] = original
        cls.build_middleware_stack = build_middleware_stack  # type: ignore[attr-defined]
    return True


def _excluded_path(scope: Scope) -> bool:
    return scope.get("path") in _http_server.excluded_paths()


def _configure_native_telemetry(app: Any, operation_spans: bool) -> None:
    """FastAPI's own telemetry runs before any middleware: give it obskit's excluded paths, unless the app
    chose its own ``telemetry={"exclude": ...}``. Unless ``operation_spans`` is asked for, obskit traces the
    app itself, in one pass (its server span, RED metrics and access line cost less than half of FastAPI's
    telemetry), so FastAPI's tracing, metrics and OTLP log records are switched off (obskit logs an unhandled
    exception itself, correlated; a validation failure is the span's 422); its operation spans need its
    tracer, so with them FastAPI keeps tracing the request and obskit only adds the correlated error line."""
    config = getattr(app, "_telemetry", None)  # FastAPI's; private, hence the caution
    if isinstance(config, dict):
        if config.get("exclude") is None:
            config["exclude"] = _excluded_path
        if not operation_spans and "operation_spans" in config:
            config["operation_spans"] = False
            if not getattr(app, "_is_instrumented_by_opentelemetry", False):  # else the instrumentor traces
                # All three: with any one on, FastAPI's telemetry wraps every request (~140 us here).
                config.update(tracing=False, metrics=False, logs=False)


def uninstrument_starlette() -> None:
    """Undo :func:`instrument_starlette` for apps that have not served a request yet."""
    for cls, original in _originals.items():
        cls.build_middleware_stack = original  # type: ignore[attr-defined]
    _originals.clear()


INTEGRATION = Integration(
    name="asgi",
    extra="asgi",
    requires={"opentelemetry-instrumentation-asgi": "0.66b0"},
    wiring="wrap the app: obskit.integrations.asgi.ObskitASGIMiddleware(app)",
)
