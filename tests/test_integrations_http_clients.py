"""The urllib3 and urllib integrations (obskit's own hooks) against a real loopback HTTP server: one CLIENT
span per request with the stable HTTP attributes, ``traceparent`` received by the server, the duration on
/metrics by method, status and server (never the path), no span for obskit's own OTLP/HTTP exports, one span
for a ``requests`` call, and the caller's exceptions untouched while obskit's own never reach it."""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3
from opentelemetry import propagate
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from otlp_receiver import OTLPReceiver, attributes
from red_metrics import OPENMETRICS, count, samples, series_labels

import obskit
from obskit._metrics._exposition import render
from obskit.testing import capture, reset

CLIENT = "http_client_request_duration_seconds"
CLIENTS = ["urllib3", "urllib"]
# The methods as they are before any test switches anything on: uninstrument must put these very objects back.
URLOPEN = urllib3.connectionpool.HTTPConnectionPool.__dict__["urlopen"]
DO_OPEN = urllib.request.AbstractHTTPHandler.__dict__["do_open"]


class _Handler(BaseHTTPRequestHandler):
    """/down answers 503, /missing 404, /slow never, /hop redirects to /items/0; else 200."""

    def do_GET(self) -> None:
        origin: Origin = self.server.origin  # type: ignore[attr-defined]
        origin.seen.append((self.path, self.headers.get("traceparent")))
        origin.headers.append({k.lower(): v for k, v in self.headers.items()})
        if self.path.startswith("/slow"):
            time.sleep(2)  # the client gave up long before; its socket is closed
            return
        if self.path.startswith("/hop"):
            self._answer(302, b"", Location="/items/0")
        else:
            self._answer({"/down": 503, "/missing": 404}.get(self.path.split("?")[0], 200), b"ok")

    def _answer(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Origin:
    """A loopback ThreadingHTTPServer that records each request's path and the traceparent it carried."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.headers: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.origin = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


def get(client: str, url: str, timeout: float = 10.0) -> int:
    """GET with the client's plain API; the status (urllib's HTTPError for >= 400 read as its code)."""
    if client == "urllib3":
        return int(urllib3.PoolManager(retries=False).request("GET", url, timeout=timeout).status)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def get_via_proxy(client: str, proxy: str, url: str) -> int:
    """GET ``url`` through an HTTP proxy: the absolute URL, credentials and all, goes to the proxy."""
    if client == "urllib3":
        return int(urllib3.ProxyManager(proxy, retries=False).request("GET", url, timeout=10).status)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
    with opener.open(url, timeout=10) as resp:
        return int(resp.status)


def client_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is SpanKind.CLIENT]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def traceparent_of(span: ReadableSpan) -> tuple[str, str, str]:
    ctx = span.get_span_context()
    return "00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def sent(header: str | None) -> tuple[str, ...]:
    return tuple((header or "").split("-")[:3])


@contextlib.contextmanager
def raw_spans(**init: Any) -> Iterator[InMemorySpanExporter]:
    """obskit.init with an in-memory processor that sees spans as made, before any exporter's redaction."""
    memory = InMemorySpanExporter()
    processors = [SimpleSpanProcessor(memory), *init.pop("span_processors", ())]
    settings: dict[str, Any] = {"otlp_endpoint": None, "integrations": CLIENTS, **init}
    reset()
    obskit.init(service_name="http-clients", metrics_port=None, log_stream=io.StringIO(), env={},
                span_processors=processors, **settings)
    try:
        yield memory
    finally:
        reset()


# --- spans and traceparent --------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_request_is_a_client_span_and_the_server_gets_its_traceparent(client: str, origin: Origin) -> None:
    """One GET inside an app span: one CLIENT span "GET", child of the app span, with the stable attributes;
    the traceparent the server received names that very span."""
    with capture(integrations=[client]) as cap:
        with obskit.span("checkout") as parent:
            assert get(client, origin.url("/items/7?page=2")) == 200
        (span,) = client_spans(cap.spans)
    assert span.name == "GET" and span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == f"obskit.integrations.{client}"
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert attrs(span) == {
        "http.request.method": "GET", "server.address": "127.0.0.1", "server.port": origin.port,
        "url.full": origin.url("/items/7?page=2"), "http.response.status_code": 200,
        "network.protocol.version": "1.0",  # BaseHTTPRequestHandler answers HTTP/1.0
    }
    assert span.status.status_code is StatusCode.UNSET
    ((path, header),) = origin.seen
    assert path == "/items/7?page=2" and sent(header) == traceparent_of(span)


@pytest.mark.parametrize("client", CLIENTS)
def test_status_400_and_above_is_an_error_with_its_code(client: str, origin: Origin) -> None:
    """A 404 and a 503: each span has error.type set to its code and an ERROR status."""
    with capture(integrations=[client]) as cap:
        assert get(client, origin.url("/missing")) == 404
        assert get(client, origin.url("/down")) == 503
        spans = client_spans(cap.spans)
    assert [(attrs(s)["http.response.status_code"], attrs(s)["error.type"]) for s in spans] == [
        (404, "404"), (503, "503")]
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)


def test_urllib_redirect_is_two_requests_each_with_its_own_traceparent(origin: Origin) -> None:
    """urllib follows a 302: two spans (302, then 200), and each request carried its own span's context."""
    with capture(integrations=["urllib"]) as cap:
        assert get("urllib", origin.url("/hop")) == 200
        spans = client_spans(cap.spans)
    assert [attrs(s)["http.response.status_code"] for s in spans] == [302, 200]
    assert [sent(h) for _, h in origin.seen] == [traceparent_of(s) for s in spans]


@pytest.mark.parametrize("client", CLIENTS)
def test_url_full_never_holds_credentials(client: str, origin: Origin) -> None:
    """Through a proxy the absolute URL with user:password is sent; the span, as made, says REDACTED, and the
    server address is the target's, not the proxy's."""
    with raw_spans(integrations=[client]) as memory:
        assert get_via_proxy(client, origin.url(""), "http://alice:s3cret@shop.invalid/cart?id=4") == 200
        (span,) = client_spans(list(memory.get_finished_spans()))
    assert attrs(span)["url.full"] == "http://REDACTED:REDACTED@shop.invalid/cart?id=4"
    assert attrs(span)["server.address"] == "shop.invalid" and attrs(span)["server.port"] == 80
    assert "s3cret" not in str(attrs(span))


@pytest.mark.parametrize("client", CLIENTS)
def test_sensitive_query_values_are_redacted_on_export(client: str, origin: Origin) -> None:
    """A token in the query leaves the process as REDACTED (obskit's span redaction); other values stay."""
    with capture(integrations=[client]) as cap:
        assert get(client, origin.url("/items/1?token=abc123&page=2")) == 200
        (span,) = client_spans(cap.spans)
    assert attrs(span)["url.full"] == origin.url("/items/1?token=REDACTED&page=2")


def test_callers_headers_and_request_are_left_as_they_were(origin: Origin) -> None:
    """The traceparent goes with the request only: urllib3's headers dict and urllib's Request object are
    unchanged afterwards, and the caller's own headers were sent beside it."""
    headers = {"X-Order": "7"}
    request = urllib.request.Request(origin.url("/b"), headers={"X-Order": "8"})
    with capture(integrations=CLIENTS):
        assert urllib3.PoolManager().request("GET", origin.url("/a"), headers=headers).status == 200
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
    assert headers == {"X-Order": "7"}
    assert not {k.lower() for k in (*request.headers, *request.unredirected_hdrs)} & {"traceparent"}
    assert [(h["x-order"], "traceparent" in h) for h in origin.headers] == [("7", True), ("8", True)]


# --- metrics ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_duration_is_on_metrics_by_method_status_and_server_never_path(client: str, origin: Origin) -> None:
    """N GETs to N paths and one 503: the histogram counts N with status 200 and 1 with error_type 503,
    labelled by server address and port, and no label holds a path."""
    n = 4
    with capture(integrations=[client]):
        for i in range(n):
            assert get(client, origin.url(f"/items/{i}")) == 200
        assert get(client, origin.url("/down")) == 503
        found = samples(render(OPENMETRICS)[0].decode())
    server = {"server_address": "127.0.0.1", "server_port": str(origin.port)}
    assert count(found, CLIENT, http_request_method="GET", http_response_status_code="200", **server) == n
    assert count(found, CLIENT, http_response_status_code="503", error_type="503", **server) == 1
    assert count(found, CLIENT, **server) == n + 1
    assert all("/items/" not in "".join(lb.values()) for lb in series_labels(found, CLIENT))


def test_requests_over_urllib3_is_one_span_and_one_count(origin: Origin) -> None:
    """requests and urllib3 integrations both on: a requests.get is one CLIENT span (requests') and one
    duration count, and the server got that span's traceparent."""
    requests = pytest.importorskip("requests")
    pytest.importorskip("opentelemetry.instrumentation.requests")
    with capture(integrations=["requests", "urllib3"]) as cap:
        assert requests.get(origin.url("/items/1"), timeout=10).status_code == 200
        spans = client_spans(cap.spans)
        found = samples(render(OPENMETRICS)[0].decode())
    assert len(spans) == 1, [(s.name, s.instrumentation_scope) for s in spans]
    assert spans[0].instrumentation_scope is not None
    assert spans[0].instrumentation_scope.name == "opentelemetry.instrumentation.requests"
    assert count(found, CLIENT, server_port=str(origin.port)) == 1
    assert [sent(h) for _, h in origin.seen] == [traceparent_of(spans[0])]


# --- obskit's own exports ---------------------------------------------------------------------------------


def test_otlp_http_export_is_never_a_span(origin: Origin) -> None:
    """urllib3 traced, spans, logs and metrics exported over OTLP/HTTP (requests, then urllib3) to a loopback
    collector through several flushes: the application's GET is a span, no export ever is."""
    with OTLPReceiver("http") as rx, raw_spans(integrations=["urllib3"], otlp_endpoint=rx.endpoint,
                                               otlp_protocol="http/protobuf") as memory:
        log = obskit.get_logger("http-clients")
        for round_ in range(3):
            with obskit.span("work", round=round_):
                log.info("working", round=round_)
                assert get("urllib3", origin.url(f"/items/{round_}")) == 200
            obskit.force_flush(timeout=10)
        rx.wait_for(lambda r: len(r.spans()) >= 6)
        made = list(memory.get_finished_spans())
        obskit.shutdown(timeout=10)
        exported = rx.spans()
    assert len(rx.requests("traces")) >= 3 and rx.requests("logs")  # the exports did go through urllib3
    assert sorted(s.name for s in client_spans(made)) == ["GET"] * 3
    assert sorted(s.name for s in exported) == ["GET"] * 3 + ["work"] * 3
    assert not [a for s in exported if "/v1/" in str(a := attributes(s.attributes))]


# --- the caller's exceptions, and obskit's own failures ---------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raised(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError("no exception")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("failure", ["refused", "timeout"])
def test_callers_exception_propagates_unchanged_and_is_on_the_span(client: str, failure: str,
                                                                    origin: Origin) -> None:
    """Connection refused and a read timeout: the caller gets the exception it gets without obskit (same
    class and message), and the span records it: ERROR status, error.type its class, an exception event;
    the duration is counted with that error_type."""
    url = f"http://127.0.0.1:{_closed_port()}/x" if failure == "refused" else origin.url("/slow")
    with capture(integrations="none"):
        bare = _raised(lambda: get(client, url, timeout=0.5))
    with capture(integrations=[client]) as cap:
        traced = _raised(lambda: get(client, url, timeout=0.5))
        (span,) = client_spans(cap.spans)
        found = samples(render(OPENMETRICS)[0].decode())
    assert type(traced) is type(bare) and isinstance(traced, Exception)
    strip = str.maketrans("", "", "0123456789")  # object ids and ports in the message differ per run
    assert str(traced).translate(strip).split(":")[0] == str(bare).translate(strip).split(":")[0]
    error = type(traced).__qualname__
    assert span.status.status_code is StatusCode.ERROR and attrs(span)["error.type"] == error
    assert [e.name for e in span.events] == ["exception"]
    assert count(found, CLIENT, error_type=error) == 1


class _BrokenPropagator:
    """A propagator whose inject raises, as a faulty custom one would."""

    fields = {"x-broken"}

    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        raise RuntimeError("propagator bug")

    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        raise RuntimeError("propagator bug")


class _BrokenProcessor(SpanProcessor):
    """A span processor that raises when a span starts, as a faulty one would."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("processor bug")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_failing_propagator_never_reaches_the_caller(client: str, origin: Origin) -> None:
    """inject raising: the request is sent and answered, and its span still recorded (without traceparent)."""
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(_BrokenPropagator())  # type: ignore[arg-type]
    try:
        with capture(integrations=[client]) as cap:
            assert get(client, origin.url("/items/1")) == 200
            spans = client_spans(cap.spans)
    finally:
        propagate.set_global_textmap(previous)
    assert len(spans) == 1 and origin.seen == [("/items/1", None)]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_failing_span_start_never_reaches_the_caller(client: str, origin: Origin) -> None:
    """A span processor raising on start: the request goes on untraced and answers normally."""
    with raw_spans(integrations=[client], span_processors=[_BrokenProcessor()]):
        assert get(client, origin.url("/items/1")) == 200
    assert [path for path, _ in origin.seen] == ["/items/1"]


# --- switching on and off ---------------------------------------------------------------------------------


def test_on_is_idempotent_and_off_restores_the_originals(origin: Origin) -> None:
    """Switched on, instrument() again changes nothing; switched off (reset) the very original methods are
    back and a request makes no span."""
    from obskit.integrations import urllib as obskit_urllib
    from obskit.integrations import urllib3 as obskit_urllib3

    with capture(integrations=CLIENTS):
        patched = (urllib3.connectionpool.HTTPConnectionPool.__dict__["urlopen"],
                   urllib.request.AbstractHTTPHandler.__dict__["do_open"])
        assert patched[0] is not URLOPEN and patched[1] is not DO_OPEN
        assert obskit_urllib3.instrument() is False and obskit_urllib.instrument() is False
        assert (urllib3.connectionpool.HTTPConnectionPool.__dict__["urlopen"],
                urllib.request.AbstractHTTPHandler.__dict__["do_open"]) == patched
    assert urllib3.connectionpool.HTTPConnectionPool.__dict__["urlopen"] is URLOPEN
    assert urllib.request.AbstractHTTPHandler.__dict__["do_open"] is DO_OPEN
    assert not obskit_urllib3.is_instrumented() and not obskit_urllib.is_instrumented()
    with capture(integrations="none") as cap:
        assert get("urllib3", origin.url("/a")) == 200 and get("urllib", origin.url("/b")) == 200
        assert cap.spans == []
    assert [h for _, h in origin.seen] == [None, None]


def test_init_waits_for_the_application_to_import_urllib3() -> None:
    """init() does not import urllib3; the application's import switches the hook on."""
    code = textwrap.dedent("""
        import io, sys
        import obskit
        obskit.init(service_name="x", log_stream=io.StringIO(), metrics_port=None, otlp_endpoint=None,
                    integrations=["urllib3"])
        assert "urllib3" not in sys.modules, "init() imported urllib3"
        import urllib3
        print(hasattr(urllib3.connectionpool.HTTPConnectionPool.urlopen, "__obskit_original__"))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stdout + proc.stderr
