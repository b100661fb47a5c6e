"""One server span per request for any WSGI app (Flask, Django's WSGI handler, Falcon, a bare callable).

    from obskit.integrations.wsgi import ObskitWSGIMiddleware
    app = ObskitWSGIMiddleware(app)          # Flask: app.wsgi_app = ObskitWSGIMiddleware(app.wsgi_app)

Built on ``opentelemetry-instrumentation-wsgi``. An incoming W3C ``traceparent`` is continued, and the span
stays current while the app runs and while the server iterates the response body, so log lines written for
the request carry its ``trace_id``. The span ends when the server closes the response.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.util import request_uri

from obskit.integrations._contract import Integration

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["INTEGRATION", "ObskitWSGIMiddleware", "instrument_wsgi"]


class ObskitWSGIMiddleware:
    """Wraps a WSGI app so each request is one server span.

    ``excluded_urls`` (comma-separated regexes matched against the request URL, e.g. ``"/healthz,/metrics"``;
    default: the standard ``OTEL_PYTHON_WSGI_EXCLUDED_URLS`` or ``OTEL_PYTHON_EXCLUDED_URLS``) bypass
    tracing; any other keyword goes to OpenTelemetry's ``OpenTelemetryMiddleware`` (request and response
    hooks, providers).
    """

    def __init__(
        self, app: WSGIApplication, *, excluded_urls: str | None = None, **otel_options: Any
    ) -> None:
        try:  # imported when the first middleware is made, not with this module
            from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
            from opentelemetry.util.http import get_excluded_urls, parse_excluded_urls
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"obskit.integrations.wsgi needs opentelemetry-instrumentation-wsgi ({exc}); "
                              "install it with: pip install 'obskit[wsgi]'") from exc
        self.app = app
        self._otel = OpenTelemetryMiddleware(app, **otel_options)
        self._excluded = (parse_excluded_urls(excluded_urls) if excluded_urls is not None
                          else get_excluded_urls("WSGI"))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._excluded.url_disabled(request_uri(environ)):
            return self.app(environ, start_response)
        result: Iterable[bytes] = self._otel(environ, start_response)
        return result


def instrument_wsgi(app: WSGIApplication, **options: Any) -> ObskitWSGIMiddleware:
    """``ObskitWSGIMiddleware(app, **options)``, for those who prefer a function."""
    return ObskitWSGIMiddleware(app, **options)


INTEGRATION = Integration(
    name="wsgi",
    extra="wsgi",
    requires={"opentelemetry-instrumentation-wsgi": "0.66b0"},
    wiring="wrap the app: obskit.integrations.wsgi.ObskitWSGIMiddleware(app)",
    aliases={
        "flask": "app.wsgi_app = obskit.integrations.wsgi.ObskitWSGIMiddleware(app.wsgi_app)",
        "django": "wrap get_wsgi_application() / get_asgi_application() in obskit.integrations.wsgi / .asgi",
    },
)
