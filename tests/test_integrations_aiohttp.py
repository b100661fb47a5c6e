"""aiohttp: a real aiohttp server on loopback (``web.AppRunner`` + ``TCPSite`` in the test's event loop) and
real ``ClientSession`` calls to it. N requests to ``/items/{item_id}`` count N under the route template on
one scrape, a failing route counts under 500 with ``error_type`` and logs one correlated line, spans are
named by route, the exemplar is a span's trace, a client call continues its trace into the server span,
client calls are counted without their path, excluded paths make nothing, an app created before ``init()``
is traced, and switching off puts aiohttp's methods back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402
from aiohttp.web_protocol import RequestHandler  # noqa: E402
from obskit.integrations import aiohttp as integration  # noqa: E402
from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry import propagate  # noqa: E402
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY  # noqa: E402
from opentelemetry.propagators.textmap import TextMapPropagator  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402
from red_metrics import OPENMETRICS, Sample, count, exemplar_trace_ids, samples, series_labels  # noqa: E402

import obskit  # noqa: E402
from obskit._metrics._exposition import render  # noqa: E402
from obskit.testing import Capture, capture  # noqa: E402

N = 5
ROUTE = "/items/{item_id}"
CLIENT = "http_client_request_duration_seconds"


def _app() -> web.Application:
    async def item(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["item_id"],
                                  "traceparent": request.headers.get("traceparent")})

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    async def gone(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get(ROUTE, item)
    app.router.add_get("/boom", boom)
    app.router.add_get("/gone/{name}", gone)
    app.router.add_get("/healthz", ok)
    app.router.add_get("/metrics", ok)
    return app


@contextlib.asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def _get(base: str, *paths: str, **kwargs: Any) -> list[tuple[int, str]]:
    """(status, body) of a GET to each path, in order, from one session."""
    out = []
    async with aiohttp.ClientSession() as session:
        for path in paths:
            async with session.get(base + path, **kwargs) as resp:
                out.append((resp.status, await resp.text()))
    return out


def _serve_and(call: Callable[[str], Awaitable[Any]], app: web.Application | None = None) -> Any:
    """Serve ``app`` (default :func:`_app`) on loopback and run ``call(base_url)`` against it."""

    async def main() -> Any:
        async with _serving(app or _app()) as base:
            return await call(base)

    return asyncio.run(main())


def _scrape() -> list[Sample]:
    return samples(render(OPENMETRICS)[0].decode())


def _spans(cap: Capture, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in cap.spans if s.kind == kind]


def _trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def test_route_template_counts_every_request_on_one_scrape() -> None:
    """N requests to /items/{item_id} with different ids: count N under the template, one span each named
    by it, no series with a raw path, and the buckets' exemplar is one of those spans' trace."""
    with capture(integrations=["aiohttp"]) as cap:
        got = _serve_and(lambda base: _get(base, *(f"/items/{i}" for i in range(N))))
        found = _scrape()
    assert [status for status, _ in got] == [200] * N
    assert count(found, http_route=ROUTE, http_request_method="GET", http_response_status_code="200",
                 url_scheme="http") == N, [s for s in found if s.name.endswith("_count")]
    for labels in series_labels(found) + series_labels(found, CLIENT):
        assert not any("/items/" in v and v != ROUTE for v in labels.values()), labels
    servers = _spans(cap, SpanKind.SERVER)
    assert [s.name for s in servers] == [f"GET {ROUTE}"] * N
    attrs = dict(servers[0].attributes or {})
    assert attrs["http.route"] == ROUTE and attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/items/0" and attrs["url.scheme"] == "http"
    assert attrs["http.request.method"] == "GET" and attrs["server.address"] == "127.0.0.1"
    assert isinstance(attrs["server.port"], int) and attrs["client.address"] == "127.0.0.1"
    assert str(attrs["user_agent.original"]).startswith("Python/")
    exemplars = exemplar_trace_ids(found)
    assert exemplars and exemplars <= {_trace_id(s) for s in servers}, exemplars
    assert [s.value for s in found if s.name == "http_server_active_requests"] == [0.0]


def test_failing_handler_counts_a_500_with_error_type_and_logs_one_correlated_line() -> None:
    """A handler that raises: a 500 counted with error_type (the exception's class) under its route, the
    span marked as an error with the exception, and exactly one log line with the traceback and trace_id."""
    with capture(integrations=["aiohttp"]) as cap:
        got = _serve_and(lambda base: _get(base, "/boom"))
        found = _scrape()
    assert got[0][0] == 500
    assert count(found, http_route="/boom", http_response_status_code="500", error_type="RuntimeError") == 1
    (span,) = _spans(cap, SpanKind.SERVER)
    assert span.name == "GET /boom" and span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert [e.name for e in span.events] == ["exception"]
    lines = [e for e in cap.logs if e.get("exception")]
    assert len(lines) == 1, lines
    assert lines[0]["logger"] == "aiohttp.server" and lines[0]["trace_id"] == _trace_id(span)
    assert "RuntimeError" in json.dumps(lines[0]["exception"])


def test_unmatched_path_is_named_by_method_and_an_http_exception_is_no_error() -> None:
    """A 404 with no route: span "GET", no http_route; a handler raising HTTPNotFound: span and series under
    its route, 404, and no error_type on either (a server's 4xx is the client's error)."""
    with capture(integrations=["aiohttp"]) as cap:
        got = _serve_and(lambda base: _get(base, "/nope/1", "/gone/x"))
        found = _scrape()
    assert [status for status, _ in got] == [404, 404]
    assert sorted(s.name for s in _spans(cap, SpanKind.SERVER)) == ["GET", "GET /gone/{name}"]
    labels = sorted(series_labels(found), key=lambda lb: lb.get("http_route", ""))
    assert [lb.get("http_route") for lb in labels] == [None, "/gone/{name}"], labels
    assert all(lb["http_response_status_code"] == "404" and "error_type" not in lb for lb in labels)
    assert all("error.type" not in (s.attributes or {}) for s in _spans(cap, SpanKind.SERVER))


def test_access_lines_carry_their_request_trace_id() -> None:
    """Each aiohttp.access line is written inside its request's span: same trace_id as that span."""
    with capture(integrations=["aiohttp"]) as cap:
        _serve_and(lambda base: _get(base, "/items/1", "/boom"))
    spans = {(s.attributes or {})["url.path"]: _trace_id(s) for s in _spans(cap, SpanKind.SERVER)}
    access = [e for e in cap.logs if e.get("logger") == "aiohttp.access"]
    assert len(access) == 2, access
    for line in access:
        path = line["first_request_line"].split()[1]
        assert line["trace_id"] == spans[path], (line, spans)


@pytest.fixture
def app_configured_logger() -> Iterator[logging.Logger]:
    """aiohttp.access as an app's own logging config may leave it: a console handler, not propagating."""
    logger = logging.getLogger("aiohttp.access")
    saved = (logger.handlers[:], logger.propagate)
    logger.addHandler(logging.StreamHandler(sys.__stderr__))
    logger.propagate = False
    yield logger
    logger.handlers[:], logger.propagate = saved


def test_aiohttp_loggers_print_once_through_obskit(capfd: pytest.CaptureFixture[str],
                                                  app_configured_logger: logging.Logger) -> None:
    """With aiohttp.access given its own console handler and propagate=False before init(), its access line
    still comes out once, as an obskit line with the trace_id, and not on the console handler."""
    with capture(integrations=["aiohttp"]) as cap:
        _serve_and(lambda base: _get(base, "/items/7"))
    access = [e for e in cap.logs if e.get("logger") == "aiohttp.access"]
    assert len(access) == 1 and access[0].get("trace_id"), cap.logs
    assert "GET /items/7" not in capfd.readouterr().err


def test_excluded_paths_make_no_span_no_series_and_no_access_line() -> None:
    """/healthz and /metrics (the default OBSKIT_EXCLUDED_PATHS): no server span, no series, access line
    demoted below INFO; a traced path beside them is recorded as usual."""
    with capture(integrations=["aiohttp"]) as cap:
        got = _serve_and(lambda base: _get(base, "/healthz", "/metrics", "/items/1"))
        found = _scrape()
    assert [status for status, _ in got] == [200, 200, 200]
    assert [(s.attributes or {})["url.path"] for s in _spans(cap, SpanKind.SERVER)] == ["/items/1"]
    assert [lb.get("http_route") for lb in series_labels(found)] == [ROUTE]
    access = [e["first_request_line"] for e in cap.logs if e.get("logger") == "aiohttp.access"]
    assert access == ["GET /items/1 HTTP/1.1"], access


def test_client_call_in_a_span_continues_the_trace_into_the_server_span() -> None:
    """Inside obskit.span("checkout"), a ClientSession GET is a CLIENT span "GET", child of checkout, that
    sends traceparent; the aiohttp server span is its child, in the same trace."""

    async def call(base: str) -> list[tuple[int, str]]:
        with obskit.span("checkout"):
            return await _get(base, "/items/3")

    with capture(integrations=["aiohttp"]) as cap:
        ((status, body),) = _serve_and(call)
    assert status == 200
    checkout = cap.span("checkout")
    (client,) = _spans(cap, SpanKind.CLIENT)
    (server,) = _spans(cap, SpanKind.SERVER)
    assert client.name == "GET" and client.parent is not None and checkout.context is not None
    assert client.parent.span_id == checkout.context.span_id
    assert server.parent is not None and client.context is not None
    assert server.parent.span_id == client.context.span_id
    assert _trace_id(server) == _trace_id(client) == _trace_id(checkout)
    assert f"{client.context.span_id:016x}" in json.loads(body)["traceparent"]
    attrs = dict(client.attributes or {})
    assert attrs["http.response.status_code"] == 200 and str(attrs["url.full"]).endswith("/items/3")


def test_client_duration_counts_each_call_by_method_status_and_server_never_path() -> None:
    """N calls to different ids plus one 500: N + 1 counts of http_client_request_duration_seconds, the
    500 with error_type, labelled by server, with no path in any label."""
    with capture(integrations=["aiohttp"]):
        got = _serve_and(lambda base: _get(base, *(f"/items/{i}" for i in range(N)), "/boom"))
        found = _scrape()
    assert [status for status, _ in got] == [200] * N + [500]
    assert count(found, CLIENT, http_request_method="GET", http_response_status_code="200",
                 server_address="127.0.0.1") == N, found
    assert count(found, CLIENT, http_response_status_code="500", error_type="500") == 1
    assert count(found, CLIENT) == N + 1
    assert all("/" not in "".join(lb.values()) for lb in series_labels(found, CLIENT))


class _Refused(Exception):
    """The caller's own exception, raised from its raise_for_status callback inside the call."""


def test_client_exceptions_propagate_unchanged_and_are_recorded() -> None:
    """The caller's own exception (from raise_for_status) comes out as the same object, and a refused
    connection as aiohttp's own error; both spans carry error.type and the exception, both calls count."""
    mine = _Refused("no")

    async def refuse(resp: Any) -> None:
        raise mine

    async def call(base: str) -> tuple[BaseException, BaseException]:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(_Refused) as first:
                await session.get(base + "/items/1", raise_for_status=refuse)
            with socket.socket() as bound:  # bound, never listening: a connection to it is refused
                bound.bind(("127.0.0.1", 0))
                with pytest.raises(aiohttp.ClientConnectionError) as second:
                    await session.get(f"http://127.0.0.1:{bound.getsockname()[1]}/closed")
        return first.value, second.value

    with capture(integrations=["aiohttp"]) as cap:
        first, second = _serve_and(call)
        found = _scrape()
    assert first is mine
    assert isinstance(second, aiohttp.ClientConnectionError)
    errors = {(s.attributes or {}).get("error.type") for s in _spans(cap, SpanKind.CLIENT)}
    assert errors == {"_Refused", type(second).__qualname__}, errors
    for span in _spans(cap, SpanKind.CLIENT):
        assert span.status.status_code == StatusCode.ERROR and [e.name for e in span.events] == ["exception"]
    assert count(found, CLIENT, error_type="_Refused") == 1
    assert count(found, CLIENT, error_type=type(second).__qualname__) == 1


@pytest.mark.parametrize("key", [_SUPPRESS_INSTRUMENTATION_KEY, "suppress_instrumentation",
                                 _SUPPRESS_HTTP_INSTRUMENTATION_KEY])
def test_client_honours_instrumentation_suppression(key: str) -> None:
    """Under each of OpenTelemetry's suppression keys a call makes no client span, sends no traceparent
    and records no client duration; the server still traces what it receives."""

    async def call(base: str) -> list[tuple[int, str]]:
        token = otel_context.attach(otel_context.set_value(key, True))
        try:
            return await _get(base, "/items/1")
        finally:
            otel_context.detach(token)

    with capture(integrations=["aiohttp"]) as cap:
        ((status, body),) = _serve_and(call)
        found = _scrape()
    assert status == 200 and json.loads(body)["traceparent"] is None
    assert _spans(cap, SpanKind.CLIENT) == [] and count(found, CLIENT) == 0
    assert [s.name for s in _spans(cap, SpanKind.SERVER)] == [f"GET {ROUTE}"]


class _BrokenPropagator(TextMapPropagator):
    """A propagator that fails both ways (a real one, misbehaving; the global the hooks call)."""

    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        raise RuntimeError("extract failed")

    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        raise RuntimeError("inject failed")

    @property
    def fields(self) -> set[str]:
        return {"traceparent"}


def test_telemetry_failures_never_reach_the_caller_or_the_server() -> None:
    """With the global propagator raising on inject and extract, the call still answers 200 with its body,
    and both spans and the server's series are still recorded."""
    saved = propagate.get_global_textmap()
    propagate.set_global_textmap(_BrokenPropagator())
    try:
        with capture(integrations=["aiohttp"]) as cap:
            got = _serve_and(lambda base: _get(base, "/items/1"))
            found = _scrape()
    finally:
        propagate.set_global_textmap(saved)
    assert got[0][0] == 200 and json.loads(got[0][1])["id"] == "1"
    assert [s.name for s in _spans(cap, SpanKind.SERVER)] == [f"GET {ROUTE}"]
    assert len(_spans(cap, SpanKind.CLIENT)) == 1
    assert count(found, http_route=ROUTE) == 1


def test_app_created_and_serving_before_init_is_traced() -> None:
    """An app made, and already serving, before init(): its requests after init() are traced and counted."""

    async def main() -> list[ReadableSpan]:
        async with _serving(_app()) as base:  # serving before init()
            with capture(integrations=["aiohttp"]) as cap:
                assert [s for s, _ in await _get(base, "/items/1", "/items/2")] == [200, 200]
                assert count(_scrape(), http_route=ROUTE) == 2
                return _spans(cap, SpanKind.SERVER)

    assert [s.name for s in asyncio.run(main())] == [f"GET {ROUTE}"] * 2


def test_switching_on_and_off_is_idempotent_and_restores_the_originals() -> None:
    """instrument() twice switches on once; uninstrument() (twice) puts both methods back as the very
    objects they were, after which requests make no spans."""
    handle, request = RequestHandler.__dict__["_handle_request"], aiohttp.ClientSession.__dict__["_request"]
    with capture(integrations="none") as cap:
        assert integration.instrument() is True
        assert integration.instrument() is False and integration.is_instrumented()
        assert RequestHandler.__dict__["_handle_request"] is not handle
        assert aiohttp.ClientSession.__dict__["_request"] is not request
        integration.uninstrument()
        integration.uninstrument()
        assert not integration.is_instrumented()
        assert RequestHandler.__dict__["_handle_request"] is handle
        assert aiohttp.ClientSession.__dict__["_request"] is request
        assert _serve_and(lambda base: _get(base, "/items/1"))[0][0] == 200
        assert cap.spans == []


INIT_THEN_IMPORT = textwrap.dedent(
    """
    import asyncio, json, sys

    from obskit.testing import capture

    with capture(integrations="auto") as cap:
        assert not [m for m in sys.modules if m.split(".")[0] == "aiohttp"], "init() imported aiohttp"
        import aiohttp
        from aiohttp import web

        async def hello(request):
            return web.Response(text="hi")

        async def main():
            runner = web.AppRunner(web.Application())
            runner.app.add_routes([web.get("/hello/{who}", hello)])
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{runner.addresses[0][1]}/hello/you") as resp:
                    assert resp.status == 200
            await runner.cleanup()

        asyncio.run(main())
        print(json.dumps(sorted([s.kind.name, s.name] for s in cap.spans)))
    """
)


def test_init_auto_hooks_aiohttp_imported_after_it() -> None:
    """In a fresh interpreter, init() with "auto" imports no aiohttp; importing it afterwards switches the
    client and the server hooks on (a CLIENT "GET" and a SERVER "GET /hello/{who}")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    proc = subprocess.run([sys.executable, "-c", INIT_THEN_IMPORT], capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [["CLIENT", "GET"],
                                                                ["SERVER", "GET /hello/{who}"]], proc.stdout

