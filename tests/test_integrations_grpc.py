"""The grpc integration against real loopback servers, with no code generation (generic handlers, bytes in
and out): sync client and server, grpc.aio client and server, and obskit's own OTLP/gRPC export beside
them."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
import pytest
from obskit.integrations import _grpc_calls
from obskit.integrations import grpc as obskit_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from otlp_receiver import OTLPReceiver, attributes
from red_metrics import OPENMETRICS, Sample, count, samples

from obskit._metrics._exposition import render
from obskit.testing import Capture, capture

SERVICE = "obskit.test.Echo"
CLIENT = "rpc_client_call_duration_seconds"
SERVER = "rpc_server_call_duration_seconds"
NOT_FOUND = str(grpc.StatusCode.NOT_FOUND.value[0])
UNKNOWN = str(grpc.StatusCode.UNKNOWN.value[0])
N = 3


# --- the servers --------------------------------------------------------------------------------------------

def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"echo:" + request


def _missing(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such item")
    raise AssertionError("abort returned")


def _fail(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise ValueError("a bug in the handler")


def _count_to(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(int(request)):
        yield b"%d" % i


async def _aio_echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"echo:" + request


async def _aio_missing(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such item")
    raise AssertionError("abort returned")


async def _aio_fail(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise ValueError("a bug in the handler")


async def _aio_count_to(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for i in range(int(request)):
        yield b"%d" % i


async def _aio_total(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    return b"%d" % sum([len(r) async for r in requests])


def _generic(unary: dict[str, Callable[..., Any]], stream: dict[str, Callable[..., Any]],
             client_stream: dict[str, Callable[..., Any]]) -> Any:
    handlers = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in unary.items()}
    handlers.update({name: grpc.unary_stream_rpc_method_handler(fn) for name, fn in stream.items()})
    handlers.update({name: grpc.stream_unary_rpc_method_handler(fn) for name, fn in client_stream.items()})
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


SYNC_HANDLERS = _generic({"Echo": _echo, "Missing": _missing, "Fail": _fail}, {"CountTo": _count_to}, {})
AIO_HANDLERS = _generic({"Echo": _aio_echo, "Missing": _aio_missing, "Fail": _aio_fail},
                        {"CountTo": _aio_count_to}, {"Total": _aio_total})


@contextlib.contextmanager
def _sync_server(*args: Any, **kwargs: Any) -> Iterator[str]:
    """A grpc.server on loopback, created now (so after init() when called inside capture()); its address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), *args, **kwargs)
    server.add_generic_rpc_handlers((SYNC_HANDLERS,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@contextlib.asynccontextmanager
async def _aio_server() -> AsyncIterator[str]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((AIO_HANDLERS,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


def _path(method: str) -> str:
    return f"/{SERVICE}/{method}"


# --- reading what was recorded ------------------------------------------------------------------------------

def _scrape() -> list[Sample]:
    return samples(render(OPENMETRICS)[0].decode())


def _calls(found: list[Sample], name: str, method: str | None = None, **labels: str) -> float:
    if method is not None:
        labels["rpc_method"] = method
    return count(found, name, rpc_system="grpc", rpc_service=SERVICE, **labels)


def _eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """A response stream is recorded when grpc reports it done, which may be just after the last message."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def _rpc_spans(cap: Capture, method: str) -> tuple[ReadableSpan, ReadableSpan]:
    """(client span, server span) of the one call to ``method``."""
    name = f"{SERVICE}/{method}"
    found = [s for s in cap.spans if s.name == name]
    client = [s for s in found if s.kind == SpanKind.CLIENT]
    server = [s for s in found if s.kind == SpanKind.SERVER]
    assert len(client) == 1 and len(server) == 1, [(s.name, s.kind) for s in cap.spans]
    return client[0], server[0]


def _assert_one_trace(cap: Capture, parent: trace.Span) -> None:
    """The Echo call made inside ``parent``: client span under it, server span under the client span."""
    client, server = _rpc_spans(cap, "Echo")
    for span in (client, server):
        assert span.attributes is not None
        assert dict(span.attributes) | {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Echo",
                                        "rpc.grpc.status_code": 0} == dict(span.attributes)
    assert client.parent is not None and server.parent is not None
    assert client.parent.span_id == parent.get_span_context().span_id
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id == parent.get_span_context().trace_id


def _assert_errors(cap: Capture) -> None:
    """NOT_FOUND: 5 on both spans, an error on the client's only; a handler's bug: 2 (UNKNOWN), errors."""
    client, server = _rpc_spans(cap, "Missing")
    assert client.attributes is not None and server.attributes is not None
    assert client.attributes["rpc.grpc.status_code"] == server.attributes["rpc.grpc.status_code"] == 5
    assert client.status.status_code == StatusCode.ERROR
    assert server.status.status_code != StatusCode.ERROR  # NOT_FOUND is the caller's fault, not the server's
    client, server = _rpc_spans(cap, "Fail")
    assert client.attributes is not None and server.attributes is not None
    assert client.attributes["rpc.grpc.status_code"] == server.attributes["rpc.grpc.status_code"] == 2
    assert client.status.status_code == server.status.status_code == StatusCode.ERROR


def _assert_error_series(found: list[Sample]) -> None:
    """The Missing and Fail calls, each counted once on both sides under its status."""
    for side in (CLIENT, SERVER):
        assert _calls(found, side, "Missing", rpc_grpc_status_code=NOT_FOUND) == 1, side
        assert _calls(found, side, "Fail", rpc_grpc_status_code=UNKNOWN) == 1, side


def _assert_counted(found: list[Sample], calls: dict[tuple[str, str], int]) -> None:
    """Each (method, status) counted ``calls`` times on both sides, nothing else, and every series once."""
    for side in (CLIENT, SERVER):
        for (method, code), n in calls.items():
            assert _calls(found, side, method, rpc_grpc_status_code=code) == n, (side, method, code, found)
        assert _calls(found, side) == sum(calls.values()), side
        series = [tuple(sorted(s.labels.items())) for s in found if s.name == f"{side}_count"]
        assert len(series) == len(set(series)), series


def _sync_calls(target: str) -> trace.Span:
    with grpc.insecure_channel(target) as channel:
        with trace.get_tracer("test").start_as_current_span("parent") as parent:
            assert channel.unary_unary(_path("Echo"))(b"x") == b"echo:x"
        for method, code in (("Missing", grpc.StatusCode.NOT_FOUND), ("Fail", grpc.StatusCode.UNKNOWN)):
            with pytest.raises(grpc.RpcError) as raised:
                channel.unary_unary(_path(method))(b"x")
            assert raised.value.code() == code  # the application's error, unchanged
    return parent


# --- sync ---------------------------------------------------------------------------------------------------

def test_sync_call_is_a_client_and_a_server_span_in_the_callers_trace() -> None:
    """grpc.server/insecure_channel after init(): spans package.Service/Method, RPC attributes, one trace."""
    with capture(integrations=["grpc"]) as cap, _sync_server() as target:
        _assert_one_trace(cap, _sync_calls(target))


def test_sync_error_status_is_on_the_spans_and_the_series() -> None:
    """context.abort(NOT_FOUND) and an uncaught exception: 5 and 2 on the spans and rpc_grpc_status_code."""
    with capture(integrations=["grpc"]) as cap, _sync_server() as target:
        _sync_calls(target)
        _assert_errors(cap)
        found = _scrape()
    _assert_error_series(found)


def test_sync_duration_counts_equal_the_calls_on_one_scrape() -> None:
    """N unary calls, a future, a failure and a response stream: one count each, client and server alike."""
    with capture(integrations=["grpc"]), _sync_server() as target:
        with grpc.insecure_channel(target) as channel:
            echo = channel.unary_unary(_path("Echo"))
            for i in range(N):
                assert echo(b"%d" % i) == b"echo:%d" % i
            assert echo.future(b"f").result(timeout=10) == b"echo:f"
            with pytest.raises(grpc.RpcError):
                channel.unary_unary(_path("Missing"))(b"x")
            assert list(channel.unary_stream(_path("CountTo"))(b"3")) == [b"0", b"1", b"2"]
        assert _eventually(lambda: _calls(_scrape(), CLIENT, "CountTo") == 1)
        found = _scrape()
    _assert_counted(found, {("Echo", "0"): N + 1, ("Missing", NOT_FOUND): 1, ("CountTo", "0"): 1})


# --- asyncio ------------------------------------------------------------------------------------------------

async def _aio_calls(target: str) -> trace.Span:
    async with grpc.aio.insecure_channel(target) as channel:
        with trace.get_tracer("test").start_as_current_span("parent") as parent:
            assert await channel.unary_unary(_path("Echo"))(b"x") == b"echo:x"
        for method, code in (("Missing", grpc.StatusCode.NOT_FOUND), ("Fail", grpc.StatusCode.UNKNOWN)):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await channel.unary_unary(_path(method))(b"x")
            assert raised.value.code() == code
    return parent


def test_aio_call_is_a_client_and_a_server_span_in_the_callers_trace() -> None:
    """grpc.aio.server/insecure_channel after init(): the same names, attributes and one trace."""
    async def main() -> trace.Span:
        async with _aio_server() as target:
            return await _aio_calls(target)

    with capture(integrations=["grpc"]) as cap:
        parent = asyncio.run(main())
        _assert_one_trace(cap, parent)


def test_aio_error_status_is_on_the_spans_and_the_series() -> None:
    """grpc.aio: await context.abort(NOT_FOUND) and an uncaught exception, on spans and series."""
    async def main() -> None:
        async with _aio_server() as target:
            await _aio_calls(target)

    with capture(integrations=["grpc"]) as cap:
        asyncio.run(main())
        _assert_errors(cap)
        found = _scrape()
    _assert_error_series(found)


def test_aio_duration_counts_equal_the_calls_on_one_scrape() -> None:
    """grpc.aio: N unary calls, a failure, a response stream, a request stream: one count each, both sides."""
    async def requests() -> AsyncIterator[bytes]:
        for chunk in (b"ab", b"cde"):
            yield chunk

    async def main() -> list[Sample]:
        async with _aio_server() as target, grpc.aio.insecure_channel(target) as channel:
            echo = channel.unary_unary(_path("Echo"))
            for i in range(N):
                assert await echo(b"%d" % i) == b"echo:%d" % i
            with pytest.raises(grpc.aio.AioRpcError):
                await channel.unary_unary(_path("Missing"))(b"x")
            assert [r async for r in channel.unary_stream(_path("CountTo"))(b"3")] == [b"0", b"1", b"2"]
            assert await channel.stream_unary(_path("Total"))(requests()) == b"5"
            for _ in range(500):  # the stream's status is read by a task of this loop: let it run
                if _calls(_scrape(), CLIENT, "CountTo") == 1:
                    break
                await asyncio.sleep(0.01)
            return _scrape()

    with capture(integrations=["grpc"]):
        found = asyncio.run(main())
    _assert_counted(found, {("Echo", "0"): N, ("Missing", NOT_FOUND): 1, ("CountTo", "0"): 1,
                            ("Total", "0"): 1})


# --- on, off, and what it leaves alone ----------------------------------------------------------------------

def test_switching_on_twice_counts_once_and_off_leaves_new_servers_alone() -> None:
    """instrument() again changes nothing (one count per call); off: the originals back, nothing recorded."""
    original = (grpc.server, grpc.insecure_channel, grpc.aio.server, grpc.aio.insecure_channel)
    with capture(integrations=["grpc"]) as cap:
        assert obskit_grpc.is_instrumented()
        assert obskit_grpc.instrument() is False
        with _sync_server() as target, grpc.insecure_channel(target) as channel:
            channel.unary_unary(_path("Echo"))(b"x")
        assert len(cap.spans) == 2
        assert _calls(_scrape(), CLIENT, "Echo") == _calls(_scrape(), SERVER, "Echo") == 1
        obskit_grpc.uninstrument()
        assert (grpc.server, grpc.insecure_channel, grpc.aio.server, grpc.aio.insecure_channel) == original
        with _sync_server() as target, grpc.insecure_channel(target) as channel:
            assert channel.unary_unary(_path("Echo"))(b"y") == b"echo:y"
        assert len(cap.spans) == 2
        assert _calls(_scrape(), CLIENT, "Echo") == _calls(_scrape(), SERVER, "Echo") == 1
        assert obskit_grpc.instrument() is True
        with _sync_server() as target, grpc.insecure_channel(target) as channel:
            channel.unary_unary(_path("Echo"))(b"z")
        assert _calls(_scrape(), CLIENT, "Echo") == _calls(_scrape(), SERVER, "Echo") == 2
    assert (grpc.server, grpc.insecure_channel, grpc.aio.server, grpc.aio.insecure_channel) == original


def test_a_server_created_before_init_keeps_serving_untraced() -> None:
    """grpc.server() is replaced at init(): an earlier server serves as before; only the client records."""
    with _sync_server() as target, capture(integrations=["grpc"]) as cap:
        with grpc.insecure_channel(target) as channel:
            assert channel.unary_unary(_path("Echo"))(b"x") == b"echo:x"
        assert [s.kind for s in cap.spans] == [SpanKind.CLIENT]
        found = _scrape()
        assert _calls(found, CLIENT, "Echo") == 1 and _calls(found, SERVER) == 0


class _Tagging(grpc.ServerInterceptor):  # type: ignore[misc]
    """An application's own server interceptor: counts the calls it sees."""

    def __init__(self) -> None:
        self.seen = 0

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        self.seen += 1
        return continuation(details)


def test_server_interceptors_given_by_position_still_work() -> None:
    """grpc.server(pool, None, [interceptor]): the application's interceptor runs and the call is traced."""
    mine = _Tagging()
    with capture(integrations=["grpc"]) as cap, _sync_server(None, [mine]) as target:
        with grpc.insecure_channel(target) as channel:
            assert channel.unary_unary(_path("Echo"))(b"x") == b"echo:x"
        assert mine.seen == 1
        assert sorted(str(s.kind) for s in cap.spans) == ["SpanKind.CLIENT", "SpanKind.SERVER"]


@pytest.mark.parametrize("broken", ["attributes", "_name_span"])
def test_a_telemetry_failure_never_reaches_the_call(broken: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recording (or naming the span) raises on every call: responses and the application's errors are as
    without obskit, sync and asyncio, unary and streaming."""
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("telemetry is broken")

    async def aio_side() -> None:
        async with _aio_server() as target:
            await _aio_calls(target)
            async with grpc.aio.insecure_channel(target) as channel:
                assert [r async for r in channel.unary_stream(_path("CountTo"))(b"2")] == [b"0", b"1"]

    with capture(integrations=["grpc"]) as cap:
        if broken == "attributes":
            monkeypatch.setattr(_grpc_calls.Recorder, "attributes", fail)  # Call.end: every observation
        else:
            monkeypatch.setattr(_grpc_calls, "_name_span", fail)  # Recorder.start: every call
        with _sync_server() as target:
            _sync_calls(target)
            with grpc.insecure_channel(target) as channel:
                assert list(channel.unary_stream(_path("CountTo"))(b"2")) == [b"0", b"1"]
        asyncio.run(aio_side())
        assert cap.spans  # the contrib spans are still made
        assert _calls(_scrape(), CLIENT) == _calls(_scrape(), SERVER) == 0


# --- obskit's own exports, and init() without grpc ----------------------------------------------------------

EXPORT_OVER_GRPC = textwrap.dedent("""
    import io, sys
    from concurrent import futures

    import grpc
    from opentelemetry import trace

    import obskit
    from obskit._metrics._exposition import render
    from obskit.integrations import grpc as obskit_grpc

    obskit_grpc.instrument()
    # Imported after the instrumentation, the exporter binds the instrumented channel constructor.
    from opentelemetry.exporter.otlp.proto.grpc import exporter as otlp_grpc
    print("intercepted", otlp_grpc.insecure_channel is grpc.insecure_channel)
    obskit.init(service_name="grpc-export", otlp_endpoint=sys.argv[1], otlp_protocol="grpc",
                metrics_port=None, integrations=["grpc"], log_stream=io.StringIO())

    def echo(request, context):
        return b"echo:" + request

    handler = grpc.method_handlers_generic_handler(
        "obskit.test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with trace.get_tracer("t").start_as_current_span("app"):
            channel.unary_unary("/obskit.test.Echo/Echo")(b"x")
    for _ in range(3):  # each flush exports what the one before might have recorded about itself
        assert obskit.force_flush(10)
    print(render("text/plain")[0].decode())
    server.stop(None)
    obskit.shutdown(10)
""")


def test_otlp_export_over_grpc_is_neither_traced_nor_counted() -> None:
    """OTLP/gRPC export through instrumented channels: the app's RPC is exported, no Export span or series."""
    with OTLPReceiver("grpc") as rx:
        proc = subprocess.run([sys.executable, "-c", EXPORT_OVER_GRPC, rx.endpoint], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "intercepted True" in proc.stdout  # the premise: exports pass through obskit's interceptors
        assert rx.wait_for(lambda r: len(r.spans()) >= 3)
        spans = rx.spans()
        services = {attributes(s.attributes).get("rpc.service") for s in spans}
        assert services == {None, SERVICE}, [(s.name, attributes(s.attributes)) for s in spans]
        assert sorted(s.name for s in spans) == ["app", f"{SERVICE}/Echo", f"{SERVICE}/Echo"]
        pushed = {attributes(p.attributes).get("rpc.service") for m in rx.metrics()
                  if m.name.startswith("rpc.") for p in m.histogram.data_points}
        assert pushed == {SERVICE}, pushed
    series = [line for line in proc.stdout.splitlines() if line.startswith(f"{CLIENT}_count")]
    assert len(series) == 1 and f'rpc_service="{SERVICE}"' in series[0], series


HOOK_ON_IMPORT = textwrap.dedent("""
    import io, sys
    import obskit

    obskit.init(service_name="hook", otlp_endpoint=None, metrics_port=None, log_stream=io.StringIO())
    from obskit.integrations import grpc as obskit_grpc
    print("imported", "grpc" in sys.modules, obskit_grpc.is_instrumented())
    import grpc
    print("after import", obskit_grpc.is_instrumented())
    obskit.shutdown()
""")


def test_init_leaves_grpc_unimported_and_switches_on_when_it_is_imported() -> None:
    """integrations="auto": init() does not import grpc; the application's `import grpc` switches it on."""
    proc = subprocess.run([sys.executable, "-c", HOOK_ON_IMPORT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "imported False False" in proc.stdout, proc.stdout
    assert "after import True" in proc.stdout, proc.stdout
