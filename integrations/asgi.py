"""One server span per request for any ASGI app (Starlette, FastAPI, Quart, a bare callable).

    from obskit.integrations.asgi import ObskitASGIMiddleware
    app = ObskitASGIMiddleware(app)          # or: starlette_app.add_middleware(ObskitASGIMiddleware)

Built on ``opentelemetry-instrumentation-asgi``. An incoming W3C ``traceparent`` is continued, so the span
joins the caller's trace; while the request runs that span is current, so every log line written for it
(the app's, and the server's access line) carries its ``trace_id``. The ASGI ``receive``/``send`` child
spans are left out by default: one request, one span.

An exception escaping the app is recorded on the span and logged here, inside the span (logger
``obskit.asgi``, "Exception in ASGI application"), so the error line is correlated too; uvicorn's own copy of
that line, written after the span has ended and so without a trace_id, is dropped. The exception still
propagates to the server unchanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

try:
    from opentelemetry.instrumentation.asgi import (  # type: ignore[import-untyped,unused-ignore]
        OpenTelemetryMiddleware,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.asgi needs opentelemetry-instrumentation-asgi ({exc}); "
                      "install it with: pip install 'obskit[asgi]'") from exc

__all__ = ["ObskitASGIMiddleware", "instrument_asgi"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("obskit.asgi")
_LOGGED = "_obskit_logged_in_span"


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


class _LogErrorsInSpan:
    """Runs inside the server span: logs an escaping exception while the span is still current."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope.get("type") in ("http", "websocket") and not getattr(exc, _LOGGED, False):
                _install_filter()
                _log.error("Exception in ASGI application", exc_info=exc)
                with contextlib.suppress(Exception):  # an exception with __slots__: uvicorn's copy stays
                    setattr(exc, _LOGGED, True)
            raise


class ObskitASGIMiddleware:
    """Wraps an ASGI app so each HTTP/WebSocket request is one server span; other scopes pass through.

    ``excluded_urls`` (comma-separated regexes, e.g. ``"/healthz,/metrics"``) get no span; any other keyword
    goes to OpenTelemetry's ``OpenTelemetryMiddleware`` (hooks, captured headers, ``exclude_spans``).
    """

    def __init__(self, app: ASGIApp, *, excluded_urls: str | None = None, **otel_options: Any) -> None:
        otel_options.setdefault("exclude_spans", ["receive", "send"])
        self.app = app
        self._otel = OpenTelemetryMiddleware(
            _LogErrorsInSpan(app), excluded_urls=excluded_urls, **otel_options)
        _install_filter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A FastAPI app instrumented by the ``fastapi`` integration makes its own server span: two would
        # nest. Starlette puts the app in the scope before its middleware stack runs, so both wirings show.
        if _traced_by_opentelemetry(self.app) or _traced_by_opentelemetry(scope.get("app")):
            await self.app(scope, receive, send)
        else:
            await self._otel(scope, receive, send)


def _traced_by_opentelemetry(app: Any) -> bool:
    return getattr(app, "_is_instrumented_by_opentelemetry", False) is True


def instrument_asgi(app: ASGIApp, **options: Any) -> ObskitASGIMiddleware:
    """``ObskitASGIMiddleware(app, **options)``, for those who prefer a function."""
    return ObskitASGIMiddleware(app, **options)
