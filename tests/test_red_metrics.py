"""HTTP RED metrics of the server integrations, in process against real frameworks and a real WSGI server.

What an operator's dashboard relies on: one ``http_server_request_duration_seconds`` count per request under
the route template (never a raw path), failures under their status with ``error.type``, an exemplar that is
the request's trace, the span named ``METHOD route``, and health checks and ``/metrics`` left out of all of
it. The real-server versions (uvicorn, gunicorn, runserver, Prometheus) are in test_red_servers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from obskit.integrations import _http_server
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from red_metrics import OPENMETRICS, Sample, count, exemplar_trace_ids, samples, series_labels

from obskit._metrics._exposition import render
from obskit.testing import Capture, capture

pytest.importorskip("opentelemetry.instrumentation.asgi")
pytest.importorskip("opentelemetry.instrumentation.wsgi")
N = 5


def _scrape() -> list[Sample]:
    return samples(render(OPENMETRICS)[0].decode())


def _trace_ids(cap: Capture) -> set[str]:
    return {f"{s.context.trace_id:032x}" for s in cap.spans}


def _asgi_get(app: Any, *paths: str) -> list[int]:
    import httpx

    async def call() -> list[int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return [(await client.get(p)).status_code for p in paths]

    return asyncio.run(call())


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["item_id"])

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    ok = PlainTextResponse("ok")
    return Starlette(routes=[Route("/items/{item_id}", item), Route("/boom", boom),
                             Route("/healthz", lambda request: ok), Route("/metrics", lambda request: ok)])


def _no_raw_paths(found: list[Sample]) -> None:
    for labels in series_labels(found):
        assert not any("/items/" in v and "{" not in v for v in labels.values()), labels


def test_starlette_counts_each_request_under_its_route_template() -> None:
    """N requests to /items/{item_id}: the count under the template is N, the span GET /items/{item_id}."""
    with capture(integrations=["starlette"]) as cap:
        assert _asgi_get(_starlette_app(), *[f"/items/{i}" for i in range(N)]) == [200] * N
        found = _scrape()
        names = {s.name for s in cap.spans if s.kind is SpanKind.SERVER}
        trace_ids = _trace_ids(cap)
    assert count(found, http_route="/items/{item_id}", http_request_method="GET",
                 http_response_status_code="200", url_scheme="http") == N
    assert names == {"GET /items/{item_id}"}
    _no_raw_paths(found)
    assert exemplar_trace_ids(found) and exemplar_trace_ids(found) <= trace_ids
    active = [s for s in found if s.name == "http_server_active_requests"]
    assert active and all(s.value == 0 for s in active), active  # every request has ended


def test_failing_route_counts_under_500_with_error_type() -> None:
    """An exception in a route: counted under 500 with error_type=RuntimeError; no route, no http_route."""
    with capture(integrations=["starlette"]) as cap:
        assert _asgi_get(_starlette_app(), "/boom", "/nowhere") == [500, 404]
        found = _scrape()
        names = sorted(s.name for s in cap.spans if s.kind is SpanKind.SERVER)
    assert count(found, http_route="/boom", http_response_status_code="500", error_type="RuntimeError") == 1
    (missing,) = [lb for lb in series_labels(found) if lb.get("http_response_status_code") == "404"]
    assert "http_route" not in missing and "error_type" not in missing
    assert names == ["GET", "GET /boom"]


def test_excluded_paths_make_no_span_and_no_series() -> None:
    """/healthz and /metrics (the default excluded paths) are served with no span and no series."""
    with capture(integrations=["starlette"]) as cap:
        assert _asgi_get(_starlette_app(), "/healthz", "/metrics", "/items/1") == [200, 200, 200]
        found = _scrape()
        names = [s.name for s in cap.spans]
    assert names == ["GET /items/{item_id}"]
    assert [lb.get("http_route") for lb in series_labels(found)] == ["/items/{item_id}"]


def test_excluded_paths_come_from_obskit_excluded_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """OBSKIT_EXCLUDED_PATHS replaces the list: /healthz is then traced, /items/* (a prefix) is not."""
    monkeypatch.setenv("OBSKIT_EXCLUDED_PATHS", "/items/*")
    with capture(integrations=["starlette"]) as cap:
        assert _asgi_get(_starlette_app(), "/healthz", "/items/1") == [200, 200]
        names = [s.name for s in cap.spans]
    assert names == ["GET /healthz"]


@pytest.mark.parametrize("native", [True, False], ids=["fastapi-native-telemetry", "obskit-middleware"])
def test_fastapi_counts_each_request_once(native: bool) -> None:
    """Whether FastAPI's own telemetry or obskit's middleware records, each request is counted once, under
    the route template, and /healthz not at all."""
    fastapi = pytest.importorskip("fastapi")
    with capture(integrations=["fastapi"]) as cap:
        try:
            api = fastapi.FastAPI(telemetry={"tracing": native, "metrics": native})
        except TypeError:  # FastAPI without native telemetry
            api = fastapi.FastAPI()

        @api.get("/items/{item_id}")
        async def item(item_id: int) -> dict[str, int]:
            return {"id": item_id}

        @api.get("/healthz")
        async def health() -> dict[str, str]:
            return {"ok": "yes"}

        assert _asgi_get(api, *[f"/items/{i}" for i in range(N)], "/healthz") == [200] * (N + 1)
        found = _scrape()
        servers = [s.name for s in cap.spans if s.kind is SpanKind.SERVER]
        trace_ids = _trace_ids(cap)
    assert count(found, http_route="/items/{item_id}", http_response_status_code="200") == N
    assert count(found) == N
    assert servers == ["GET /items/{item_id}"] * N
    assert exemplar_trace_ids(found) and exemplar_trace_ids(found) <= trace_ids


# --- WSGI, on a real WSGI server ----------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _wsgi_server(app: Any) -> Iterator[int]:
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
    if environ["PATH_INFO"] == "/boom":
        raise ValueError("boom")
    if environ["PATH_INFO"] == "/teapot":
        start_response("503 Service Unavailable", [])
        return [b"later"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"o", b"k"])


def test_wsgi_counts_requests_without_a_route_label() -> None:
    """A bare WSGI app (no router): N requests counted once each, no http_route, span named GET; a raised
    exception counts under 500 with its class, a 503 under error_type 503; /healthz is left alone."""
    from obskit.integrations.wsgi import ObskitWSGIMiddleware

    with capture() as cap, _wsgi_server(ObskitWSGIMiddleware(_wsgi_app)) as port:
        assert [_get(port, f"/orders/{i}") for i in range(N)] == [200] * N
        assert [_get(port, p) for p in ("/boom", "/teapot", "/healthz")] == [500, 503, 200]
        found = _scrape()
        names = sorted(s.name for s in cap.spans)
        trace_ids = _trace_ids(cap)
    assert count(found, http_response_status_code="200", http_request_method="GET") == N
    assert count(found, http_response_status_code="500", error_type="ValueError") == 1
    assert count(found, http_response_status_code="503", error_type="503") == 1
    assert count(found) == N + 2
    assert all("http_route" not in lb for lb in series_labels(found))
    assert names == ["GET"] * (N + 2)
    assert exemplar_trace_ids(found) and exemplar_trace_ids(found) <= trace_ids


def test_wsgi_route_reported_by_a_framework_hook_names_span_and_series() -> None:
    """A route set while the app runs (what the Flask and Django hooks do) renames the span and labels
    the series."""
    from obskit.integrations.wsgi import ObskitWSGIMiddleware

    def routed(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        _http_server.set_route("/orders/<int:order_id>")
        start_response("200 OK", [])
        return [b"ok"]

    with capture() as cap, _wsgi_server(ObskitWSGIMiddleware(routed)) as port:
        assert _get(port, "/orders/7") == 200
        found = _scrape()
        (span,) = cap.spans
    assert span.name == "GET /orders/<int:order_id>"
    assert span.attributes is not None and span.attributes["http.route"] == "/orders/<int:order_id>"
    assert count(found, http_route="/orders/<int:order_id>") == 1


def test_each_request_counts_under_its_own_values_when_they_alternate() -> None:
    """The series a request records into is cached by its values (method, route, status, error type),
    so requests whose values alternate on one route must each land in their own series, and the active
    requests gauge must come back to zero for every method."""
    from obskit.integrations.wsgi import ObskitWSGIMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path.startswith("/routed"):
            _http_server.set_route("/routed/<n>")
        if path.endswith("/raise"):
            raise KeyError("x")
        status = "503 Busy" if path.endswith("/busy") else "200 OK"
        start_response(status, [])
        return [b"ok"]

    def call(port: int, method: str, path: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    calls = [("GET", "/routed/1"), ("GET", "/routed/busy"), ("POST", "/routed/2"), ("GET", "/routed/raise"),
             ("GET", "/plain"), ("DELETE", "/routed/3")] * 3
    with capture(), _wsgi_server(ObskitWSGIMiddleware(app)) as port:
        statuses = [call(port, m, p) for m, p in calls]
        found = _scrape()
    assert statuses == [200, 503, 200, 500, 200, 200] * 3
    route = "/routed/<n>"
    assert count(found, http_route=route, http_request_method="GET", http_response_status_code="200") == 3
    assert count(found, http_route=route, http_response_status_code="503", error_type="503") == 3
    assert count(found, http_route=route, http_request_method="POST", http_response_status_code="200") == 3
    assert count(found, http_route=route, http_response_status_code="500", error_type="KeyError") == 3
    assert count(found, http_route=route, http_request_method="DELETE") == 3
    assert sum(1 for lb in series_labels(found) if "http_route" not in lb) == 1
    assert count(found) == len(calls)
    active = [s for s in found if s.name == "http_server_active_requests"]
    assert {s.labels["http_request_method"] for s in active} == {"GET", "POST", "DELETE"}
    assert all(s.value == 0 for s in active)


def test_server_spans_follow_a_propagator_set_after_the_first_request() -> None:
    """The propagator's header fields are read once per propagator: a global propagator replaced (or a
    member added to the composite) after requests were served must be the one the next request's parent
    is read with."""
    from obskit.integrations.wsgi import ObskitWSGIMiddleware
    from opentelemetry import propagate
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    class OwnHeader(TextMapPropagator):
        """Carries the trace id alone in ``x-own-trace`` (hex)."""

        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
            values = getter.get(carrier, "x-own-trace") if getter is not None else None
            if not values:
                return context if context is not None else otel_context.Context()
            parent = SpanContext(int(values[0], 16), 0x1234, True, TraceFlags(TraceFlags.SAMPLED))
            return trace.set_span_in_context(NonRecordingSpan(parent), context)

        def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
            pass

        @property
        def fields(self) -> set[str]:
            return {"x-own-trace"}

    def get(port: int, headers: dict[str, str]) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/x", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()

    own = "0af7651916cd43dd8448eb211c80319c"
    saved = propagate.get_global_textmap()
    try:
        with capture() as cap, _wsgi_server(ObskitWSGIMiddleware(_wsgi_app)) as port:
            get(port, {"x-own-trace": own})  # the default propagator knows no such header
            propagate.set_global_textmap(OwnHeader())
            get(port, {"x-own-trace": own})
            composite = CompositePropagator([saved])
            propagate.set_global_textmap(composite)
            get(port, {"x-own-trace": own})
            composite._propagators.append(OwnHeader())  # a member added to the composite in use
            get(port, {"x-own-trace": own})
            spans = sorted(cap.spans, key=lambda s: s.start_time or 0)
    finally:
        propagate.set_global_textmap(saved)
    continued = [f"{s.context.trace_id:032x}" == own for s in spans]
    assert continued == [False, True, False, True]


def test_nested_middlewares_count_once() -> None:
    """Two obskit WSGI layers (a framework hook plus a manual wrap): one span, one count."""
    from obskit.integrations.wsgi import ObskitWSGIMiddleware

    with capture() as cap, _wsgi_server(ObskitWSGIMiddleware(ObskitWSGIMiddleware(_wsgi_app))) as port:
        assert _get(port, "/x") == 200
        found = _scrape()
        assert len(cap.spans) == 1
    assert count(found) == 1


def _access_line(logger: str, path: str) -> tuple[str, Any]:
    """(msg, args) of an access line as each server logs it."""
    if logger == "uvicorn.access":
        return '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "GET", f"{path}?probe=1", "1.1", 200)
    if logger == "gunicorn.access":  # gunicorn passes its atoms as one mapping
        return "%(h)s %(r)s", {"h": "127.0.0.1", "r": f"GET {path} HTTP/1.1", "U": path}
    prefix = "" if logger == "django.server" else "127.0.0.1 - - [x] "
    return prefix + '"%s" %s %s', (f"GET {path} HTTP/1.1", "200", "-")


@pytest.mark.parametrize("logger", ["uvicorn.access", "django.server", "werkzeug", "gunicorn.access"])
def test_access_line_of_an_excluded_path_is_debug(logger: str) -> None:
    """An access line for /healthz is dropped at INFO and printed as DEBUG when DEBUG is on; others stay."""
    for level, expected in (("INFO", ["/orders"]), ("DEBUG", ["/healthz", "/orders"])):
        with capture(log_level=level) as cap:
            _http_server.quiet_access_lines()
            for path in ("/healthz", "/orders"):
                msg, args = _access_line(logger, path)
                if isinstance(args, dict):
                    logging.getLogger(logger).info(msg, args)
                else:
                    logging.getLogger(logger).info(msg, *args)
            got = [e for e in cap.logs if e.get("logger") == logger]
        assert [("/healthz" if "/healthz" in e["event"] else "/orders") for e in got] == expected, got
        assert [e["level"] for e in got] == (["info"] if level == "INFO" else ["debug", "info"])
