"""Client integrations against real peers on loopback (HTTP server, Redis, PostgreSQL), and the registry."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import require
from obskit.integrations import _registry as _integrations
from opentelemetry.trace import SpanKind, StatusCode

import obskit
from obskit.testing import Capture, capture

httpx = pytest.importorskip("httpx")
requests = pytest.importorskip("requests")


def captured(integrations: Any) -> contextlib.AbstractContextManager[Capture]:
    """obskit with in-memory sinks and ``integrations`` enabled; reset (integrations undone) afterwards."""
    return capture(integrations=integrations)


class _Peer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
        status = 503 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[ThreadingHTTPServer]:
    """A loopback HTTP server recording each request's headers in ``seen``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer, path: str = "/orders?id=7") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _traceparent_matches(headers: dict[str, str], span: Any) -> None:
    version, trace_id, span_id, _flags = headers["traceparent"].split("-")
    assert version == "00"
    assert trace_id == f"{span.context.trace_id:032x}"
    assert span_id == f"{span.context.span_id:016x}"


# --- HTTP clients ------------------------------------------------------------------------------------------


def test_requests_client_span_and_traceparent(peer: ThreadingHTTPServer) -> None:
    """requests: one CLIENT span with method, URL and status; the server receives its traceparent."""
    with captured(["requests"]) as cap:
        assert requests.get(_url(peer), timeout=5).status_code == 200
        span = cap.span("GET")
    assert span.kind is SpanKind.CLIENT
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["url.full"] == _url(peer)
    assert span.attributes["http.response.status_code"] == 200
    _traceparent_matches(peer.seen[0], span)  # type: ignore[attr-defined]


def test_requests_span_is_child_of_current_span(peer: ThreadingHTTPServer) -> None:
    """A request made inside obskit.span() joins that trace as its child."""
    with captured(["requests"]) as cap:
        with obskit.span("checkout"):
            requests.get(_url(peer), timeout=5)
        parent, child = cap.span("checkout"), cap.span("GET")
    assert child.parent is not None and child.parent.span_id == parent.context.span_id
    assert child.context.trace_id == parent.context.trace_id


def test_requests_server_error_marks_span(peer: ThreadingHTTPServer) -> None:
    """A 5xx answer sets the client span's status to error."""
    with captured(["requests"]) as cap:
        assert requests.get(_url(peer, "/fail"), timeout=5).status_code == 503
        span = cap.span("GET")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 503


def test_httpx_sync_client_span_and_traceparent(peer: ThreadingHTTPServer) -> None:
    """httpx.Client: one CLIENT span; the server receives its traceparent."""
    with captured(["httpx"]) as cap:
        with httpx.Client() as client:
            assert client.get(_url(peer)).status_code == 200
        span = cap.span("GET")
    assert span.kind is SpanKind.CLIENT
    assert span.attributes is not None
    assert span.attributes["url.full"] == _url(peer)
    assert span.attributes["http.response.status_code"] == 200
    _traceparent_matches(peer.seen[0], span)  # type: ignore[attr-defined]


def test_httpx_async_client_span_and_traceparent(peer: ThreadingHTTPServer) -> None:
    """httpx.AsyncClient: same span and propagation as the sync client."""

    async def fetch() -> int:
        async with httpx.AsyncClient() as client:
            return (await client.get(_url(peer))).status_code

    with captured(["httpx"]) as cap:
        assert asyncio.run(fetch()) == 200
        span = cap.span("GET")
    assert span.kind is SpanKind.CLIENT
    _traceparent_matches(peer.seen[0], span)  # type: ignore[attr-defined]


# --- Redis and PostgreSQL ----------------------------------------------------------------------------------


def test_redis_set_get_spans() -> None:
    """A real SET and GET against 127.0.0.1:6379 give one CLIENT span each, values not recorded."""
    redis = pytest.importorskip("redis")
    require(_reachable(6379), "Redis is not reachable on 127.0.0.1:6379")
    with captured(["redis"]) as cap:
        client = redis.Redis(host="127.0.0.1", port=6379)
        client.set("obskit:test:key", "secret-value")
        assert client.get("obskit:test:key") == b"secret-value"
        client.delete("obskit:test:key")
        set_span, get_span = cap.span("SET"), cap.span("GET")
    for span in (set_span, get_span):
        assert span.kind is SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["db.system"] == "redis"
        # the stable HTTP conventions obskit opts into also name the peer server.address/server.port
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == 6379
    assert set_span.attributes is not None and "secret-value" not in str(set_span.attributes["db.statement"])


def _pg_dsn() -> str:
    require(_reachable(5432), "PostgreSQL is not reachable on 127.0.0.1:5432")
    return "host=127.0.0.1 port=5432 user=postgres dbname=test"


def test_psycopg_select_span() -> None:
    """A real SELECT 1 on database `test` gives a CLIENT span with statement, database and peer."""
    psycopg = pytest.importorskip("psycopg")
    dsn = _pg_dsn()
    with captured(["psycopg"]) as cap:
        with psycopg.connect(dsn) as conn:
            assert isinstance(conn, psycopg.Connection)
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
        span = cap.span("SELECT")
    assert span.kind is SpanKind.CLIENT
    assert span.attributes is not None
    assert span.attributes["db.system"] == "postgresql"
    assert span.attributes["db.statement"] == "SELECT ?"  # literals are never recorded
    assert span.attributes["db.name"] == "test"
    assert span.attributes["server.address"] == "127.0.0.1"


def test_psycopg_connection_execute_composed_sql_and_custom_cursor() -> None:
    """conn.execute(), psycopg.sql statements and a caller's cursor_factory are all traced."""
    psycopg = pytest.importorskip("psycopg")
    from psycopg import sql

    dsn = _pg_dsn()
    with captured(["psycopg"]) as cap:
        with psycopg.Connection.connect(dsn, cursor_factory=psycopg.ClientCursor) as conn:
            cur = conn.execute(sql.SQL("SELECT {}").format(sql.Literal(2)))
            assert isinstance(cur, psycopg.ClientCursor)
            assert cur.fetchone() == (2,)
        span = cap.span("SELECT")
    assert span.attributes is not None and span.attributes["db.statement"] == "SELECT ?"


def test_psycopg_async_connection_and_failed_query() -> None:
    """AsyncConnection queries are traced; a failing statement marks its span as an error."""
    psycopg = pytest.importorskip("psycopg")
    dsn = _pg_dsn()

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute("SELECT 3")
            with pytest.raises(psycopg.errors.UndefinedTable):
                await conn.execute("SELECT * FROM obskit_no_such_table")

    with captured(["psycopg"]) as cap:
        asyncio.run(run())
        spans = [s for s in cap.spans if s.name == "SELECT"]
    assert [s.attributes["db.statement"] for s in spans if s.attributes] == [
        "SELECT ?", "SELECT * FROM obskit_no_such_table"]
    assert spans[0].status.status_code is not StatusCode.ERROR
    assert spans[1].status.status_code is StatusCode.ERROR


# --- the registry ------------------------------------------------------------------------------------------


def _warnings(cap: Capture) -> list[str]:
    return [e["event"] for e in cap.logs if e.get("level") == "warning" and e.get("logger") == "obskit"]


def test_auto_enables_every_importable_integration_quietly() -> None:
    """integrations="auto" switches on each integration whose library and hook import, without warnings."""
    with captured("auto") as cap:
        on = _integrations.enabled()
        assert _warnings(cap) == []
    for name in ("requests", "httpx", "redis", "psycopg"):
        assert name in on, on


def test_none_enables_nothing(peer: ThreadingHTTPServer) -> None:
    """integrations="none": no client spans, no traceparent header."""
    with captured("none") as cap:
        requests.get(_url(peer), timeout=5)
        assert cap.spans == []
        assert _integrations.enabled() == []
    assert "traceparent" not in peer.seen[0]  # type: ignore[attr-defined]


def test_enabling_twice_never_doubles_spans(peer: ThreadingHTTPServer) -> None:
    """enable() again (and a second init()) keeps one span and one traceparent per request."""
    with captured(["requests", "requests"]) as cap:
        tel = obskit.init(integrations=["requests"])
        assert _integrations.enable(tel.config) == ["requests"]
        requests.get(_url(peer), timeout=5)
        assert len([s for s in cap.spans if s.name == "GET"]) == 1
    assert _integrations.enabled() == []


def test_disable_all_removes_instrumentation(peer: ThreadingHTTPServer) -> None:
    """After disable_all() a request makes no span and sends no traceparent."""
    with captured(["requests"]) as cap:
        _integrations.disable_all()
        requests.get(_url(peer), timeout=5)
        assert cap.spans == []
    assert "traceparent" not in peer.seen[0]  # type: ignore[attr-defined]


def test_disable_all_keeps_the_applications_own_instrumentation(peer: ThreadingHTTPServer) -> None:
    """Instrumentation the app switched on before init() is not obskit's to undo."""
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    RequestsInstrumentor().instrument()
    try:
        with captured(["requests"]):
            assert _integrations.enabled() == ["requests"]
        assert RequestsInstrumentor().is_instrumented_by_opentelemetry
    finally:
        RequestsInstrumentor().uninstrument()


def test_named_but_missing_library_warns_once_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicitly named integration whose library cannot import logs one warning naming the extra."""
    monkeypatch.setitem(sys.modules, "redis", None)  # what an uninstalled package looks like to import
    with captured(["redis", "redis"]) as cap:
        assert _integrations.enabled() == []
        warnings = _warnings(cap)
    assert len(warnings) == 1, warnings
    assert "'redis'" in warnings[0] and "pip install 'obskit[redis]'" in warnings[0]


def test_auto_skips_missing_library_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under "auto" a missing library is skipped without a warning; the others still enable."""
    monkeypatch.setitem(sys.modules, "redis", None)
    with captured("auto") as cap:
        on = _integrations.enabled()
        assert _warnings(cap) == []
    assert "redis" not in on and "requests" in on


def test_unknown_name_warns_listing_known_ones() -> None:
    """A list naming an unknown integration is a bad value, rejected whole: one warning naming it and every
    known integration, and the list has no effect (the default, auto, applies; httpx is not enabled alone)."""
    with captured("auto"):
        auto = _integrations.enabled()
    with captured(["reqeusts", "httpx"]) as cap:
        assert _integrations.enabled() == auto
        warnings = _warnings(cap)
    assert len(warnings) == 1, warnings
    assert "'reqeusts'" in warnings[0]
    assert all(name in warnings[0] for name in _integrations.names())


def test_failing_setup_warns_and_the_rest_enable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An integration whose setup raises is reported and skipped; init() and the others carry on."""

    def broken(config: Any) -> None:
        raise RuntimeError("boom")

    found = _integrations._discover()
    monkeypatch.setitem(found, "broken", _integrations.Integration("broken", "broken", {}, setup=broken))
    with captured(["broken", "requests"]) as cap:
        assert _integrations.enabled() == ["requests"]
        warnings = _warnings(cap)
    assert len(warnings) == 1 and "'broken'" in warnings[0] and "RuntimeError: boom" in warnings[0]


def _init_after_a_reset_that_keeps_requests(integrations: Any) -> Any:
    """init() with requests, shutdown() (which keeps what init() instrumented), then init(integrations=...)
    with an in-memory exporter; returns that exporter. Reset before and after by the ``fresh`` fixture."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    quiet = {"otlp_endpoint": None, "metrics": False, "logs": False}
    obskit.init(service_name="first", integrations=["requests"], **quiet)
    obskit.shutdown()  # the first provider is shut down; the requests instrumentation stays
    assert _integrations.enabled() == ["requests"]
    exporter = InMemorySpanExporter()
    obskit.init(service_name="second", integrations=integrations,
                span_processors=[SimpleSpanProcessor(exporter)], **quiet)
    return exporter


def test_new_tracer_provider_gets_fresh_instrumentation(peer: ThreadingHTTPServer, fresh: None) -> None:
    """init(), a reset that keeps the instrumentation, init() again: spans reach the new provider, once."""
    exporter = _init_after_a_reset_that_keeps_requests(["requests"])
    requests.get(_url(peer), timeout=5)
    assert [s.name for s in exporter.get_finished_spans()] == ["GET"]
    assert "traceparent" in peer.seen[0]  # type: ignore[attr-defined]


def test_sqlalchemy_on_psycopg_is_traced_by_the_psycopg_integration() -> None:
    """SQLAlchemy's postgresql+psycopg dialect opens psycopg connections, so its queries get spans."""
    pytest.importorskip("psycopg")
    sa = pytest.importorskip("sqlalchemy")
    _pg_dsn()
    with captured(["psycopg"]) as cap:
        engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 41 + 1")).scalar() == 42
        engine.dispose()
        statements = [s.attributes["db.statement"] for s in cap.spans if s.attributes]
    assert "SELECT ? + ?" in statements


def test_middleware_names_say_how_to_wire_them() -> None:
    """Listing "asgi" (a wrapper, not an init() integration) warns with the wiring to use instead."""
    with captured(["ASGI", " requests"]) as cap:
        assert _integrations.enabled() == ["requests"]
        warnings = _warnings(cap)
    assert len(warnings) == 1 and "ObskitASGIMiddleware(app)" in warnings[0], warnings


def test_redis_asyncio_client_spans() -> None:
    """redis.asyncio commands are traced like the sync client's."""
    redis = pytest.importorskip("redis")
    require(_reachable(6379), "Redis is not reachable on 127.0.0.1:6379")

    async def run() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=6379)
        await client.set("obskit:test:async", "1")
        await client.delete("obskit:test:async")
        await client.aclose()

    with captured(["redis"]) as cap:
        asyncio.run(run())
        names = [s.name for s in cap.spans]
    assert names == ["SET", "DEL"], names


@pytest.mark.parametrize("integrations", ["none", ["httpx"]])
def test_stale_instrumentation_is_removed_by_a_later_init_without_it(
        peer: ThreadingHTTPServer, fresh: None, integrations: Any) -> None:
    """init() with requests, a reset that keeps it, then init() without requests: no spans, no header."""
    exporter = _init_after_a_reset_that_keeps_requests(integrations)
    assert "requests" not in _integrations.enabled()
    requests.get(_url(peer), timeout=5)
    assert exporter.get_finished_spans() == ()
    assert "traceparent" not in peer.seen[0]  # type: ignore[attr-defined]


def test_psycopg_hook_is_idempotent_and_undoable() -> None:
    """instrument() twice wraps once (one span per query); uninstrument() leaves new connections untraced."""
    psycopg = pytest.importorskip("psycopg")
    from obskit.integrations import psycopg as hook

    dsn = _pg_dsn()
    with captured(["psycopg"]) as cap:
        assert hook.is_instrumented() and hook.instrument() is False
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT 1")
        assert [s.name for s in cap.spans] == ["SELECT"]
        hook.uninstrument()
        assert not hook.is_instrumented()
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT 1")
        assert [s.name for s in cap.spans] == ["SELECT"]
