"""What every HTTP server integration shares: RED metrics, the route-named span, and the paths left alone.

Each server integration (the ASGI and WSGI middlewares, and through them Starlette, FastAPI, Flask and
Django) makes one :class:`ServerRequest` per request and lets the framework tell it the route template once
routing has run (:func:`set_route`). obskit records the metrics itself rather than leaving them to the
contrib middlewares, because those record before a WSGI body is sent, know no route for WSGI, and give a
failed ASGI request no status or ``error.type``; here every request is recorded once, at its end, inside its
span (so the bucket's exemplar is that span), with:

- ``http.server.request.duration`` (seconds): ``http.request.method``, ``http.route`` (the template, never a
  raw path; absent when no route matched), ``http.response.status_code``, ``url.scheme``,
  ``network.protocol.version`` and, on failures, ``error.type`` (the exception's class, else the 5xx code);
- ``http.server.active_requests``: ``http.request.method``, ``url.scheme``.

They go through the OpenTelemetry metrics API, so they land on ``/metrics`` as
``http_server_request_duration_seconds`` and ``http_server_active_requests`` (obskit's MeterProvider), in the
same series FastAPI's own telemetry records into. The span is named ``METHOD route``, or ``METHOD`` alone:
a raw path in a span name is as unbounded as in a label.

Paths in ``OBSKIT_EXCLUDED_PATHS`` (default ``/metrics``, ``/health``, ``/healthz``, ``/ready``) get no span,
no series, and their access lines are demoted to DEBUG (:class:`QuietAccessLines`): a probe every few
seconds would otherwise outnumber real traffic in all three.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from obskit._logs import _pipeline
from obskit._traces import _lean

__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "ExcludedPaths",
    "QuietAccessLines",
    "ServerRequest",
    "configure",
    "current",
    "excluded_paths",
    "quiet_access_lines",
    "set_route",
]

DEFAULT_EXCLUDED_PATHS: tuple[str, ...] = ("/metrics", "/health", "/healthz", "/ready")
# The semantic conventions' buckets for HTTP durations, in seconds (what contrib and FastAPI advise too).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
                            "QUERY"})
# Loggers servers write their access lines to; each is given the filter that quiets excluded paths.
ACCESS_LOGGERS = _pipeline.ACCESS_LOGGERS


class ExcludedPaths:
    """Request paths left alone: ``/healthz`` matches ``/healthz`` and ``/healthz/`` exactly (not
    ``/healthzz``, nor ``/api/healthz``); an entry ending in ``*`` matches every path it starts."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = tuple(paths)
        self._exact = frozenset(p.rstrip("/") or "/" for p in self.paths if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in self.paths if p.endswith("*"))

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str) or not self.paths:
            return False
        return (path.rstrip("/") or "/") in self._exact or path.startswith(self._prefixes or ("\0",))

    def __repr__(self) -> str:
        return f"ExcludedPaths({', '.join(self.paths)})"


_lock = threading.Lock()
_configured: ExcludedPaths | None = None
_from_env: ExcludedPaths | None = None


def configure(paths: Iterable[str] | None) -> None:
    """The paths ``init()`` resolved (``OBSKIT_EXCLUDED_PATHS``); None: read the environment again."""
    global _configured, _from_env
    with _lock:
        _configured = None if paths is None else ExcludedPaths(paths)
        _from_env = None


def excluded_paths() -> ExcludedPaths:
    """The paths in force: what ``init()`` configured, else resolved from the environment (once)."""
    global _from_env
    configured = _configured
    if configured is not None:
        return configured
    with _lock:
        if _from_env is None:
            from obskit._config import resolve

            _from_env = ExcludedPaths(resolve({}).excluded_paths)
        return _from_env


# --- the metrics ------------------------------------------------------------------------------------------

_instruments: tuple[Any, Any] | None = None


def _meter_instruments() -> tuple[Any, Any]:
    """The histogram and the up-down counter, made once (before ``init()`` the API hands out proxies that
    start recording when obskit's MeterProvider is installed)."""
    global _instruments
    if _instruments is None:
        from opentelemetry import metrics

        meter = metrics.get_meter("obskit.integrations.http")
        duration = meter.create_histogram("http.server.request.duration", unit="s",
                                          description="Duration of HTTP server requests.",
                                          explicit_bucket_boundaries_advisory=_BUCKETS)
        active = meter.create_up_down_counter("http.server.active_requests", unit="{request}",
                                              description="Number of active HTTP server requests.")
        _instruments = (duration, active)
    return _instruments


_api_type: list[type] = []  # obskit's ApiInstrument, once one is seen (imported with it, not before)


def _api_instrument(instrument: Any) -> Any:
    """obskit's own ``ApiInstrument`` behind an API instrument (directly, or through the API's proxy made
    before ``init()``), whose series can be looked up by the caller's key; None for any other
    MeterProvider's. (Not imported here: prometheus-client must not be imported before ``init()``.)"""
    inner = getattr(instrument, "_inst", None)
    if inner is None:
        inner = getattr(getattr(instrument, "_real_instrument", None), "_inst", None)
        if inner is None:
            return None
    if not _api_type:
        from obskit._metrics._otel_api import ApiInstrument

        _api_type.append(ApiInstrument)
    return inner if type(inner) is _api_type[0] else None


_span_reader: list[Callable[[], Any]] = []


def _current_span() -> Any:
    """The current span (None or the invalid span outside one): the exemplar module's cheaper read."""
    if not _span_reader:
        from obskit._metrics import _exemplar

        _span_reader.append(_exemplar.current_span)
    return _span_reader[0]()


def _method(raw: str) -> str:
    method = raw.upper()
    return method if method in _KNOWN_METHODS else "_OTHER"  # any other verb would be a new series


_current: contextvars.ContextVar[ServerRequest | None] = contextvars.ContextVar("obskit_server_request",
                                                                               default=None)


class ServerRequest:
    """One HTTP request a server integration traces: what its span is named and what its RED series say."""

    __slots__ = ("_active", "_done", "error_type", "method", "protocol", "route", "scheme", "span",
                 "start", "status")

    def __init__(self, method: str, scheme: str, protocol: str | None = None) -> None:
        self.start = time.perf_counter()
        self.method = _method(method)
        self.scheme = scheme
        self.protocol = protocol
        self.route: str | None = None
        self.status: int | None = None
        self.error_type: str | None = None
        self.span: Any = None
        self._done = False
        # obskit's instrument and series the active-requests gauge went up in (None, None: through the
        # API), kept so that finish() takes it down in the same place without looking it up again
        self._active: tuple[Any, Any] = (None, None)
        active = _meter_instruments()[1]
        inst = _api_instrument(active)
        if inst is not None:
            series = inst.keyed((self.method, scheme), self._active_attributes)
            if series is not None:
                inst.add_to(series, 1)
            self._active = (inst, series)
        else:
            active.add(1, self._active_attributes())

    def _active_attributes(self) -> dict[str, Any]:
        return {"http.request.method": self.method, "url.scheme": self.scheme}

    def enter(self) -> contextvars.Token[ServerRequest | None]:
        """Make this the request framework hooks (:func:`set_route`) talk to."""
        return _current.set(self)

    @staticmethod
    def leave(token: contextvars.Token[ServerRequest | None]) -> None:
        _current.reset(token)

    @property
    def span_name(self) -> str:
        method = "HTTP" if self.method == "_OTHER" else self.method
        return f"{method} {self.route}" if self.route else method

    def set_route(self, route: str | None) -> None:
        """The route template routing matched; renames the span (``GET /items/{item_id}``)."""
        if not route:
            return
        self.route = route
        span = self.span
        if span is not None and span.is_recording():
            span.update_name(self.span_name)
            _lean.put(span, "http.route", route)

    def note_exception(self, exc: BaseException) -> None:
        """An exception the framework caught and turned into an error page: its class is the
        ``error.type``, and it is recorded on the span (the framework's response says 500)."""
        self.error_type = type(exc).__qualname__
        span = self.span
        if span is not None and span.is_recording():
            span.record_exception(exc)
            span.set_attribute("error.type", self.error_type)

    def failed(self, exc: BaseException) -> None:
        """An exception escaped the app: the server answers 500 if nothing was sent yet."""
        self.error_type = type(exc).__qualname__
        if self.status is None:
            self.status = 500
        span = self.span
        if span is not None and span.is_recording():
            span.set_attribute("error.type", self.error_type)

    def finish(self) -> None:
        """Record the request once; call it inside the span, so that the bucket's exemplar is this trace."""
        if self._done:
            return
        self._done = True
        elapsed = max(time.perf_counter() - self.start, 0.0)
        duration, active = _meter_instruments()
        span = self.span
        token = None
        if span is not None and _current_span() is not span:  # a response closed after its span
            token = otel_context.attach(trace.set_span_in_context(span))
        try:
            inst = _api_instrument(duration)
            if inst is not None:  # obskit's own histogram: the series by this request's values, cached
                series = inst.keyed((self.method, self.scheme, self.protocol, self.route, self.status,
                                     self.error_type), self._attributes)
                if series is not None:
                    inst.record_in(series, elapsed)
            else:
                duration.record(elapsed, self._attributes())
        finally:
            if token is not None:
                otel_context.detach(token)
        inst, series = self._active
        if inst is None:
            active.add(-1, self._active_attributes())
        elif series is not None:
            inst.add_to(series, -1)

    def _attributes(self) -> dict[str, Any]:
        """The duration's attributes; the values :meth:`finish` keys its series by decide them all."""
        attrs: dict[str, Any] = {"http.request.method": self.method, "url.scheme": self.scheme}
        if self.protocol:
            attrs["network.protocol.version"] = self.protocol
        if self.route:
            attrs["http.route"] = self.route
        if self.status is not None:
            attrs["http.response.status_code"] = self.status
        if self.error_type is not None:
            attrs["error.type"] = self.error_type
        elif self.status is None or self.status >= 500:
            attrs["error.type"] = str(self.status) if self.status is not None else "incomplete_response"
        return attrs


def current() -> ServerRequest | None:
    """The request being served in this context, if a server integration traces it."""
    return _current.get()


def set_route(route: str | None) -> None:
    """For framework hooks: the route template of the request being served (no-op outside one)."""
    request = _current.get()
    if request is not None:
        request.set_route(route)


# --- access lines of excluded paths -------------------------------------------------------------------------

_REQUEST_LINE = re.compile(r"\b[A-Z]+ (/\S*) HTTP/")


def _path_of(msg: object, args: Any) -> str | None:
    """The request path of an access line: uvicorn's and werkzeug's/Django's tuple args, gunicorn's and
    hypercorn's atoms (``U``), else a request line in the message."""
    values: Iterable[Any] = ()
    if isinstance(args, Mapping):
        path = args.get("U")
        if isinstance(path, str):
            return path
        values = args.values()
    elif isinstance(args, tuple):
        values = args
    for value in values:
        if isinstance(value, str):
            if value.startswith("/"):
                return value.split("?", 1)[0]
            match = _REQUEST_LINE.search(value)
            if match:
                return match.group(1).split("?", 1)[0]
    if isinstance(msg, str):
        match = _REQUEST_LINE.search(msg)
        if match:
            return match.group(1).split("?", 1)[0]
    return None


class QuietAccessLines(logging.Filter):
    """An access line for an excluded path becomes a DEBUG line, printed only when DEBUG is on."""

    def keeps_info(self, msg: object, args: tuple[object, ...]) -> bool:
        """Whether the line ``logger.info(msg, *args)`` stays at INFO, decided without a record (for
        obskit's access logger, ``_logs._stdlib.AccessLogger``); False also when undecided."""
        try:
            return _path_of(msg, args) not in excluded_paths()
        except Exception:
            return False

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if _path_of(record.msg, record.args) not in excluded_paths():
                return True
        except Exception:  # a filter must never lose the application's line
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


_quiet = QuietAccessLines()


def quiet_access_lines() -> None:
    """Put the filter on every server's access logger (a logger's own filters survive ``dictConfig``)."""
    for name in ACCESS_LOGGERS:
        lg = logging.getLogger(name)
        if _quiet not in lg.filters:
            lg.addFilter(_quiet)
