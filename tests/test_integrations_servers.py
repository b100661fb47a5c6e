"""Server integrations for real: uvicorn subprocesses exporting to a loopback OTLP receiver, a WSGI server.

The ASGI checks are the ones an operator relies on: an incoming ``traceparent`` is continued by exactly one
server span, and every log line of that request (the app's, uvicorn's access line, the error line of an
exception) carries its trace_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from obskit.integrations import _registry as _integrations
from opentelemetry.trace import SpanKind, StatusCode
from otlp_receiver import OTLPReceiver, attributes
from server_process import ServerProcess

import obskit
from obskit.testing import Capture, capture

pytestmark = pytest.mark.slow
pytest.importorskip("opentelemetry.instrumentation.asgi")
pytest.importorskip("opentelemetry.instrumentation.wsgi")
pytest.importorskip("uvicorn")

LIFESPAN = textwrap.dedent(
    """
    async def lifespan(receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    """
)

ASGI_APP = LIFESPAN + textwrap.dedent(
    """
    import obskit
    from obskit.integrations.asgi import ObskitASGIMiddleware

    obskit.init(log_format="json", service_name="asgi-app", integrations="none")
    log = obskit.get_logger("app")


    async def inner(scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        log.info("handling", path=scope["path"])
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


    app = ObskitASGIMiddleware(inner, excluded_urls="/healthz")
    """
)

FASTAPI_APP = textwrap.dedent(
    """
    from fastapi import FastAPI

    import obskit

    app = FastAPI()  # created before init(), as most apps are
    obskit.init(log_format="json", service_name="fastapi-app", integrations=["fastapi"])
    log = obskit.get_logger("app")


    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        log.info("handling", item_id=item_id)
        return {"id": item_id}


    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("boom")
    """
)


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


class _Uvicorn(ServerProcess):
    """``python -m uvicorn app:app`` on a free loopback port, exporting spans to ``receiver``."""

    def __init__(self, app_source: str, cwd: Path, receiver: OTLPReceiver) -> None:
        (cwd / "app.py").write_text(app_source)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                   OBSKIT_METRICS="false", OTEL_LOGS_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
        super().__init__([sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "0"],
                         cwd, r"Uvicorn running on http://127\.0\.0\.1:(\d+)", env=env)
        self.wait_ready()

    @property
    def lines(self) -> list[str]:
        return self.stdout

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def wait_for_line(self, text: str, timeout: float = 10.0) -> None:
        """Wait until stdout has a line containing ``text`` (written after the response was sent, say)."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines) and time.monotonic() < deadline:
            time.sleep(0.02)

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.strip()]


@contextlib.contextmanager
def _serving(app_source: str, tmp_path: Path) -> Iterator[tuple[_Uvicorn, OTLPReceiver]]:
    with OTLPReceiver("http") as receiver:
        server = _Uvicorn(app_source, tmp_path, receiver)
        try:
            yield server, receiver
        finally:
            server.stop()


def _spans_of(receiver: OTLPReceiver, trace_id: str) -> list[Any]:
    return [s for s in receiver.spans() if s.trace_id.hex() == trace_id]


def test_asgi_middleware_on_uvicorn_continues_trace_and_correlates_logs(tmp_path: Path) -> None:
    """One SERVER span continues the incoming traceparent; the app's and uvicorn's access lines carry it."""
    header, trace_id, parent_id = _traceparent()
    with _serving(ASGI_APP, tmp_path) as (server, receiver):
        assert server.get("/hello?x=1", {"traceparent": header}) == 200
    assert receiver.wait_for(lambda rx: bool(_spans_of(rx, trace_id)))
    spans = _spans_of(receiver, trace_id)
    assert len(spans) == 1, [s.name for s in spans]  # no receive/send child spans
    span = spans[0]
    assert span.parent_span_id.hex() == parent_id
    assert span.kind == SpanKind.SERVER.value + 1  # OTLP numbers kinds from 1 (INTERNAL)
    attrs = attributes(span.attributes)
    assert attrs["http.request.method"] == "GET" and attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/hello"
    logs = server.logs()
    handling = [e for e in logs if e["event"] == "handling"]
    assert len(handling) == 1
    assert handling[0]["trace_id"] == trace_id and handling[0]["span_id"] == span.span_id.hex()
    access = [e for e in logs if e["logger"] == "uvicorn.access"]
    assert len(access) == 1 and access[0]["trace_id"] == trace_id, access


def test_asgi_middleware_starts_a_trace_without_traceparent(tmp_path: Path) -> None:
    """Without an incoming header the server span is a new root, and the log line carries its trace_id."""
    with _serving(ASGI_APP, tmp_path) as (server, receiver):
        assert server.get("/fresh") == 200
    assert receiver.wait_for(lambda rx: bool(rx.spans()))
    (span,) = receiver.spans()
    assert span.parent_span_id == b""
    (line,) = [e for e in server.logs() if e["event"] == "handling"]
    assert line["trace_id"] == span.trace_id.hex()


def test_asgi_exception_is_logged_once_inside_the_span(tmp_path: Path) -> None:
    """An exception escaping the app: one error line with the trace_id and traceback, span marked error."""
    header, trace_id, _ = _traceparent()
    with _serving(ASGI_APP, tmp_path) as (server, receiver):
        assert server.get("/boom", {"traceparent": header}) == 500
    assert receiver.wait_for(lambda rx: bool(_spans_of(rx, trace_id)))
    (span,) = _spans_of(receiver, trace_id)
    assert span.status.code == StatusCode.ERROR.value
    assert any(e.name == "exception" for e in span.events)
    errors = [e for e in server.logs() if "Exception in ASGI application" in e["event"]]
    assert len(errors) == 1, errors  # uvicorn's uncorrelated copy is dropped
    assert "Exception in ASGI application" not in server.stderr
    assert errors[0]["trace_id"] == trace_id and errors[0]["level"] == "error"
    rendered = json.dumps(errors[0])
    assert "RuntimeError" in rendered and '"boom"' in rendered and "app.py" in rendered  # the traceback


def test_asgi_excluded_urls_make_no_span(tmp_path: Path) -> None:
    """A path in excluded_urls is served without a span (health checks stay out of traces)."""
    header, trace_id, _ = _traceparent()
    with _serving(ASGI_APP, tmp_path) as (server, receiver):
        assert server.get("/healthz", {"traceparent": header}) == 200
        assert server.get("/after") == 200
    assert receiver.wait_for(lambda rx: bool(rx.spans()))
    assert _spans_of(receiver, trace_id) == []
    assert [attributes(s.attributes)["url.path"] for s in receiver.spans()] == ["/after"]


def test_fastapi_integration_traces_app_created_before_init(tmp_path: Path) -> None:
    """integrations=["fastapi"]: route-named server span, correlated app/access/error lines, on uvicorn."""
    pytest.importorskip("fastapi")
    header, trace_id, parent_id = _traceparent()
    boom_header, boom_trace_id, _ = _traceparent()
    with _serving(FASTAPI_APP, tmp_path) as (server, receiver):
        assert server.get("/items/7", {"traceparent": header}) == 200
        assert server.get("/boom", {"traceparent": boom_header}) == 500
        # Starlette sends the 500 before the exception reaches obskit: let the line be written before SIGINT.
        server.wait_for_line("Exception in ASGI application")
    assert receiver.wait_for(lambda rx: bool(_spans_of(rx, trace_id)) and bool(_spans_of(rx, boom_trace_id)))
    # FastAPI's native telemetry (when it has it) adds INTERNAL operation spans under the one server span.
    server_spans = [s for s in _spans_of(receiver, trace_id) if s.kind == SpanKind.SERVER.value + 1]
    assert [s.name for s in server_spans] == ["GET /items/{item_id}"]
    assert server_spans[0].parent_span_id.hex() == parent_id
    assert attributes(server_spans[0].attributes)["http.route"] == "/items/{item_id}"
    logs = server.logs()
    (line,) = [e for e in logs if e["event"] == "handling"]
    assert line["trace_id"] == trace_id and line["item_id"] == 7
    access = {e["path"]: e for e in logs if e["logger"] == "uvicorn.access"}
    assert access["/items/7"]["trace_id"] == trace_id
    (boom_span,) = [s for s in _spans_of(receiver, boom_trace_id) if s.kind == SpanKind.SERVER.value + 1]
    assert boom_span.status.code == StatusCode.ERROR.value
    errors = [e for e in logs if "Exception in ASGI application" in e["event"]]
    assert len(errors) == 1 and errors[0]["trace_id"] == boom_trace_id, errors


# --- in process: WSGI server, Starlette ---------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def in_process() -> Iterator[Capture]:
    """obskit with in-memory sinks and no client integrations (the test sends traceparent itself)."""
    with capture() as cap:
        yield cap


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


def _wsgi_get(port: int, path: str, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return bytes(resp.read())


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    obskit.get_logger("wsgi-app").info("handling", path=environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_wsgi_middleware_continues_trace_and_correlates_logs(in_process: Capture) -> None:
    """A real WSGI server: one SERVER span continuing traceparent; the app's log line carries it."""
    from obskit.integrations.wsgi import ObskitWSGIMiddleware

    header, trace_id, parent_id = _traceparent()
    with _wsgi_server(ObskitWSGIMiddleware(_wsgi_app)) as port:
        assert _wsgi_get(port, "/orders", {"traceparent": header}) == b"ok"
    (span,) = in_process.spans
    assert span.kind is SpanKind.SERVER and span.name == "GET"  # no router: no route, never the raw path
    assert f"{span.context.trace_id:032x}" == trace_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == parent_id
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 200
    (line,) = in_process.events("handling")
    assert line["trace_id"] == trace_id and line["span_id"] == f"{span.context.span_id:016x}"


def test_wsgi_excluded_urls_make_no_span(in_process: Capture) -> None:
    """A URL matching excluded_urls is served untraced; others still get their span."""
    from obskit.integrations.wsgi import instrument_wsgi

    with _wsgi_server(instrument_wsgi(_wsgi_app, excluded_urls="/healthz")) as port:
        assert _wsgi_get(port, "/healthz", {}) == b"ok"
        assert _wsgi_get(port, "/orders", {}) == b"ok"
    assert [(s.attributes or {}).get("url.path") for s in in_process.spans] == ["/orders"]


def test_starlette_add_middleware_continues_trace(in_process: Capture) -> None:
    """Starlette's add_middleware(ObskitASGIMiddleware): one server span continuing traceparent, logs join."""
    import httpx
    from obskit.integrations.asgi import ObskitASGIMiddleware
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        obskit.get_logger("starlette-app").info("handling")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(ObskitASGIMiddleware)
    header, trace_id, parent_id = _traceparent()

    async def call() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return (await client.get("/hello", headers={"traceparent": header})).status_code

    assert asyncio.run(call()) == 200
    (span,) = in_process.spans
    assert span.kind is SpanKind.SERVER and f"{span.context.trace_id:032x}" == trace_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == parent_id
    (line,) = in_process.events("handling")
    assert line["trace_id"] == trace_id


def _asgi_get(app: Any, path: str) -> int:
    import httpx

    async def call() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            return (await client.get(path)).status_code

    return asyncio.run(call())


def _fastapi_app(native_tracing: bool = True) -> Any:
    fastapi = pytest.importorskip("fastapi")
    try:  # FastAPI >= 0.160 traces itself once a provider is set; without it, it is like older FastAPI
        api = fastapi.FastAPI(telemetry={"tracing": native_tracing})
    except TypeError:
        api = fastapi.FastAPI()

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return api


def _server_spans(cap: Capture) -> list[str]:
    return [s.name for s in cap.spans if s.kind is SpanKind.SERVER]


@pytest.mark.parametrize("native_tracing", [True, False], ids=["native-tracing", "no-native-tracing"])
def test_fastapi_integration_makes_one_route_named_span(native_tracing: bool) -> None:
    """integrations=["fastapi"], whether or not FastAPI traces itself: one server span, named by route."""
    with capture(integrations=["fastapi"]) as cap:
        assert _asgi_get(_fastapi_app(native_tracing), "/items/3") == 200
        assert _server_spans(cap) == ["GET /items/{item_id}"]


def _route_count(route: str) -> float:
    from red_metrics import OPENMETRICS, count, samples

    from obskit._metrics._exposition import render

    return count(samples(render(OPENMETRICS)[0].decode()), http_route=route, http_request_method="GET")


def test_fastapi_request_is_one_span_and_one_count_by_obskit_alone() -> None:
    """By default obskit traces a FastAPI app itself and FastAPI's own telemetry is off: one span with the
    stable HTTP attributes, the caller's trace continued, and the RED histogram counted once, not twice."""
    import httpx

    api = _fastapi_app()
    parent = "00-" + secrets.token_hex(16) + "-" + secrets.token_hex(8) + "-01"

    async def call() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://app") as client:
            return (await client.get("/items/3?x=1", headers={"traceparent": parent})).status_code

    with capture(integrations=["fastapi"]) as cap:
        before = _route_count("/items/{item_id}")
        assert asyncio.run(call()) == 200
        (span,) = cap.spans
        assert span.name == "GET /items/{item_id}" and span.kind is SpanKind.SERVER
        assert f"{span.context.trace_id:032x}" == parent.split("-")[1]
        assert span.parent is not None and f"{span.parent.span_id:016x}" == parent.split("-")[2]
        attrs = dict(span.attributes or {})
        assert {k: attrs.get(k) for k in ("http.request.method", "url.path", "url.query", "url.scheme",
                                          "http.route", "http.response.status_code", "server.address")} == {
            "http.request.method": "GET", "url.path": "/items/3", "url.query": "x=1", "url.scheme": "http",
            "http.route": "/items/{item_id}", "http.response.status_code": 200, "server.address": "app"}
        assert _route_count("/items/{item_id}") - before == 1
        assert not api._telemetry["tracing"] and not api._telemetry["metrics"]


def test_asgi_middleware_options_use_opentelemetry_middleware() -> None:
    """A per-request hook is an option only OpenTelemetry's middleware serves: given one, the span is made
    there (the hook runs on it), still named by route."""
    from obskit.integrations.asgi import ObskitASGIMiddleware

    seen: list[str] = []

    def hook(span: Any, scope: dict[str, Any]) -> None:
        seen.append(scope["path"])

    with capture(integrations="none") as cap:
        app = ObskitASGIMiddleware(_fastapi_app(native_tracing=False), server_request_hook=hook)
        assert _asgi_get(app, "/items/4") == 200
        assert seen == ["/items/4"]
        assert _server_spans(cap) == ["GET /items/{item_id}"]


def _wsgi_call(app: Any, path: str, headers: dict[str, str] | None = None) -> tuple[str, bytes]:
    """Serve one request the way a WSGI server does: call, iterate the body, close it."""
    from wsgiref.util import setup_testing_defaults

    environ: dict[str, Any] = {"PATH_INFO": path, "REMOTE_ADDR": "10.1.2.3", "HTTP_USER_AGENT": "probe/1",
                               **{f"HTTP_{k.upper().replace('-', '_')}": v
                                  for k, v in (headers or {}).items()}}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = app(environ, lambda s, h, e=None: status.append(s))
    try:
        data = b"".join(body)
    finally:
        body.close()
    return status[0], data


def _plain_wsgi(environ: dict[str, Any], start_response: Any) -> Any:
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            obskit.get_logger("app").info("streaming")  # while the server iterates the body
            yield b"chunk"

        return body()
    if environ["PATH_INFO"] == "/boom":
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"down"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_wsgi_request_is_one_span_with_the_stable_attributes() -> None:
    """The WSGI middleware's own one-pass span: the caller's trace continued, the stable HTTP attributes,
    the status, a 5xx marked as an error, and the span current while the server iterates the body."""
    from obskit.integrations.wsgi import ObskitWSGIMiddleware

    parent = "00-" + secrets.token_hex(16) + "-" + secrets.token_hex(8) + "-01"
    with capture(integrations="none") as cap:
        app = ObskitWSGIMiddleware(_plain_wsgi)
        assert _wsgi_call(app, "/items/9", {"traceparent": parent}) == ("200 OK", b"ok")
        assert _wsgi_call(app, "/boom") == ("503 Service Unavailable", b"down")
        assert _wsgi_call(app, "/stream") == ("200 OK", b"chunk")
        ok, boom, stream = cap.spans
        (line,) = cap.events("streaming")
    assert line["trace_id"] == f"{stream.context.trace_id:032x}"
    assert ok.kind is SpanKind.SERVER and ok.name == "GET"
    assert f"{ok.context.trace_id:032x}" == parent.split("-")[1]
    assert ok.parent is not None and f"{ok.parent.span_id:016x}" == parent.split("-")[2]
    attrs = dict(ok.attributes or {})
    assert {k: attrs.get(k) for k in ("http.request.method", "url.path", "url.scheme", "client.address",
                                      "user_agent.original", "http.response.status_code",
                                      "network.protocol.version")} == {
        "http.request.method": "GET", "url.path": "/items/9", "url.scheme": "http",
        "client.address": "10.1.2.3",
        "user_agent.original": "probe/1", "http.response.status_code": 200, "network.protocol.version": "1.0"}
    assert ok.status.status_code is StatusCode.UNSET
    assert boom.status.status_code is StatusCode.ERROR and boom.attributes["error.type"] == "503"


def test_wsgi_middleware_options_use_opentelemetry_middleware() -> None:
    """A request hook only OpenTelemetry's WSGI middleware serves: given one, the span is made there."""
    from obskit.integrations.wsgi import ObskitWSGIMiddleware

    seen: list[str] = []
    with capture(integrations="none") as cap:
        app = ObskitWSGIMiddleware(_plain_wsgi, request_hook=lambda span, environ: seen.append(
            environ["PATH_INFO"]))
        assert _wsgi_call(app, "/items/9")[0] == "200 OK"
        assert seen == ["/items/9"] and [s.kind for s in cap.spans] == [SpanKind.SERVER]


def test_fastapi_request_is_one_span_unless_operation_spans() -> None:
    """FastAPI's native operation spans (dependencies, endpoint, serialization) are off by default: a request
    is one span; ``operation_spans=True`` keeps them, under the one server span."""
    with capture(integrations=["fastapi"]) as cap:
        assert _asgi_get(_fastapi_app(), "/items/3") == 200
        assert [s.name for s in cap.spans] == ["GET /items/{item_id}"]
    with capture(integrations=["fastapi"], operation_spans=True) as cap:
        assert _asgi_get(_fastapi_app(), "/items/3") == 200
        (server,) = [s for s in cap.spans if s.kind is SpanKind.SERVER]
        inner = [s for s in cap.spans if s is not server]
        assert inner and all(s.context.trace_id == server.context.trace_id for s in inner)


@pytest.mark.parametrize("wiring", ["add_middleware", "wrap"])
@pytest.mark.parametrize("native_tracing", [True, False], ids=["native-tracing", "no-native-tracing"])
def test_fastapi_integration_plus_manual_middleware_makes_one_span(wiring: str, native_tracing: bool) -> None:
    """The fastapi integration plus ObskitASGIMiddleware added by hand: still one server span per request."""
    from obskit.integrations.asgi import ObskitASGIMiddleware

    with capture(integrations=["fastapi"]) as cap:
        api = _fastapi_app(native_tracing)
        app: Any = api
        if wiring == "add_middleware":
            api.add_middleware(ObskitASGIMiddleware)
        else:
            app = ObskitASGIMiddleware(api)
        assert _asgi_get(app, "/items/3") == 200
        assert _server_spans(cap) == ["GET /items/{item_id}"]


def test_app_traced_by_opentelemetry_fastapi_instrumentor_is_left_to_it() -> None:
    """An app instrumented with OpenTelemetry's FastAPIInstrumentor gets no second span from obskit."""
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.fastapi")
    with capture(integrations=["fastapi"]) as cap:
        api = _fastapi_app()
        instrumentation.FastAPIInstrumentor.instrument_app(api, exclude_spans=["receive", "send"])
        try:
            assert _asgi_get(api, "/items/3") == 200
        finally:
            instrumentation.FastAPIInstrumentor.uninstrument_app(api)
        assert _server_spans(cap) == ["GET /items/{item_id}"]


def test_starlette_integration_names_spans_by_route_through_mounts() -> None:
    """integrations=["starlette"]: spans are named by route template, Mount prefix included; no match: GET."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def user(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    with capture(integrations=["starlette"]) as cap:
        app = Starlette(routes=[Mount("/api", routes=[Route("/users/{user_id}", user)])])
        assert _asgi_get(app, "/api/users/42") == 200
        assert _asgi_get(app, "/nowhere") == 404
        names = [s.name for s in cap.spans]
        routes = [(s.attributes or {}).get("http.route") for s in cap.spans]
    assert names == ["GET /api/users/{user_id}", "GET"]
    assert routes == ["/api/users/{user_id}", None]


def test_fastapi_route_templates_through_included_routers_and_failures() -> None:
    """integrations=["fastapi"]: the route template is read after routing, so a route included under a
    prefix keeps its prefix, a route that raises before any response still names its span and its
    metric series, and an unmatched path is plain GET."""
    fastapi = pytest.importorskip("fastapi")
    from obskit._metrics._exposition import render

    with capture(integrations=["fastapi"]) as cap:
        api = fastapi.FastAPI()
        router = fastapi.APIRouter()

        @router.get("/orders/{order_id}")
        async def order(order_id: int) -> dict[str, int]:
            return {"id": order_id}

        @api.get("/boom/{n}")
        async def boom(n: int) -> None:
            raise RuntimeError("boom")

        api.include_router(router, prefix="/v1")
        assert _asgi_get(api, "/v1/orders/7") == 200
        with contextlib.suppress(RuntimeError):
            _asgi_get(api, "/boom/1")
        assert _asgi_get(api, "/nowhere") == 404
        names = _server_spans(cap)
        scrape = render()[0].decode()
    assert names == ["GET /v1/orders/{order_id}", "GET /boom/{n}", "GET"]
    assert 'http_route="/v1/orders/{order_id}"' in scrape and 'http_route="/boom/{n}"' in scrape
    assert "/v1/orders/7" not in scrape


def test_server_span_attributes_reach_a_sampler_that_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampler of the user's own gets the request's attributes at the start, as OpenTelemetry promises;
    with the SDK's stock samplers (which never read them) they go into the started span directly. Either
    way the span ends with the same attributes."""
    from obskit.integrations import _server_span
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult

    seen: list[dict[str, Any]] = []

    class Reading(Sampler):
        def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                          attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> SamplingResult:
            seen.append(dict(attributes or {}))
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

        def get_description(self) -> str:
            return "reading"

    attrs = {"url.path": "/x", "http.request.method": "GET", "server.port": 8000}
    ended = []
    for sampler in (Reading(), ParentBased(ALWAYS_ON)):
        tracer = TracerProvider(sampler=sampler, shutdown_on_exit=False).get_tracer("t")
        monkeypatch.setattr(_server_span, "_tracer", tracer)
        span, token = _server_span.start_server_span("GET", dict(attrs), None)
        _server_span.end_server_span(span, token, 200, None)
        ended.append(dict(span.attributes or {}))  # type: ignore[attr-defined]
    assert seen == [attrs]
    assert ended == [{**attrs, "http.response.status_code": 200}] * 2


def test_starlette_integration_off_again_after_disable_all() -> None:
    """disable_all() restores Starlette: apps built afterwards make no spans."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    with capture(integrations=["starlette"]) as cap:
        _integrations.disable_all()
        app = Starlette(routes=[Route("/x", lambda request: PlainTextResponse("ok"))])
        assert _asgi_get(app, "/x") == 200
        assert cap.spans == []


def test_excluded_urls_from_the_standard_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_PYTHON_EXCLUDED_URLS keeps health checks out of traces for apps wired by the integration."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "/healthz,/metrics")
    ok = PlainTextResponse("ok")
    with capture(integrations=["starlette"]) as cap:
        app = Starlette(routes=[Route(p, lambda request: ok) for p in ("/healthz", "/orders")])
        assert _asgi_get(app, "/healthz") == 200
        assert _asgi_get(app, "/orders") == 200
        assert _server_spans(cap) == ["GET /orders"]


def test_websocket_session_is_one_span_named_by_route() -> None:
    """A WebSocket session through the starlette integration is one SERVER span named by its route."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    async def session(app: Any) -> list[dict[str, Any]]:
        """What a server does for one WebSocket connection: connect, one message, then the app closes."""
        incoming = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

        async def send(message: Any) -> None:
            sent.append(dict(message))

        scope = {"type": "websocket", "path": "/ws/lobby", "raw_path": b"/ws/lobby", "root_path": "",
                 "query_string": b"", "headers": [(b"host", b"app")], "scheme": "ws",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000), "subprotocols": [],
                 "asgi": {"version": "3.0"}}
        await app(scope, receive, send)
        return sent

    with capture(integrations=["starlette"]) as cap:
        sent = asyncio.run(session(Starlette(routes=[WebSocketRoute("/ws/{room}", echo)])))
        spans = [s for s in cap.spans if s.kind is SpanKind.SERVER]
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert [s.name for s in spans] == ["/ws/{room}"]
    assert spans[0].attributes is not None and spans[0].attributes["http.route"] == "/ws/{room}"


# --- gunicorn: reading its declaration is not loading it as config ------------------------------------------

GUNICORN_DISCOVERY = textwrap.dedent(
    """
    import os, sys
    import gunicorn.arbiter  # what a gunicorn master or worker has loaded
    import obskit
    from obskit._metrics import _multiprocess
    from obskit.integrations import _registry
    assert "gunicorn.error" in _registry.owned_loggers()
    assert "obskit.integrations.gunicorn" in sys.modules
    assert not _multiprocess.enabled() and "OBSKIT_MULTIPROC_DIR" not in os.environ
    if sys.argv[1] == "config-after-init":
        from obskit.integrations.gunicorn import on_exit, when_ready
        when_ready(None)  # gunicorn calls it in the master before forking workers
        assert _multiprocess.enabled() and os.environ["OBSKIT_MULTIPROC_DIR"] == _multiprocess.directory()
        on_exit(None)  # removes the temporary directory it made
        assert not os.path.exists(_multiprocess.directory())
    print("ok")
    """
)


@pytest.mark.parametrize("case", ["discovery-only", "config-after-init"])
def test_gunicorn_declaration_is_read_without_preparing_the_directory(case: str) -> None:
    """Inside gunicorn, obskit reading the gunicorn integration prepares nothing; when_ready still does if
    the config imported the hooks only after init() had read them."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OBSKIT_MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR", "OBSKIT_METRICS_PORT")}
    proc = subprocess.run([sys.executable, "-c", GUNICORN_DISCOVERY, case], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
