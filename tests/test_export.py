"""OTLP export guarantees, checked by decoding real protobuf in a loopback collector (gRPC and HTTP)."""

from __future__ import annotations

import io
import math
import os
import socket
import threading
import time
from typing import Any

import pytest
from conftest import protocol_of
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from otlp_receiver import OTLPReceiver, attributes

import obskit
from obskit.testing import reset


def _init(rx_endpoint: str, protocol: str, **kw: Any) -> obskit.Telemetry:
    kw.setdefault("log_stream", io.StringIO())
    kw.setdefault("log_format", "json")
    return obskit.init(service_name="export-test", otlp_endpoint=rx_endpoint, otlp_protocol=protocol,
                       integrations="none", metrics=False, **kw)


def test_every_span_arrives_with_resource_and_headers(
    fresh: None, receiver: OTLPReceiver
) -> None:
    """Against a healthy collector every span and log record emitted before shutdown() arrives."""
    _init(receiver.endpoint, protocol_of(receiver), otlp_headers={"x-api-key": "k-123"},
          service_version="9.9")
    log = obskit.get_logger("export-test")
    for i in range(300):
        with obskit.span("work", i=i):
            log.info("working", i=i, password="hunter2")
    assert obskit.shutdown(timeout=10) is True
    spans = receiver.spans()
    assert len(spans) == 300
    records = [r for r in receiver.log_records() if r.body.string_value == "working"]
    assert len(records) == 300
    span_ids = {s.span_id for s in spans}
    assert all(r.span_id in span_ids for r in records)
    assert all(attributes(r.attributes)["password"] == "[REDACTED]" for r in records)
    assert sorted(attributes(s.attributes)["i"] for s in spans) == list(range(300))
    res = receiver.resources("traces")[0]
    assert res["service.name"] == "export-test" and res["service.version"] == "9.9"
    assert all(h.get("x-api-key") == "k-123" for h in receiver.headers)


def test_trace_and_span_ids_are_w3c_shaped(fresh: None, receiver: OTLPReceiver) -> None:
    """Exported IDs are 16 and 8 bytes and the parent link survives the wire."""
    _init(receiver.endpoint, protocol_of(receiver))
    with obskit.span("parent") as parent, obskit.span("child"):
        pass
    obskit.shutdown(timeout=10)
    by_name = {s.name: s for s in receiver.spans()}
    assert len(by_name["child"].trace_id) == 16 and len(by_name["child"].span_id) == 8
    assert by_name["child"].parent_span_id == parent.get_span_context().span_id.to_bytes(8, "big")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_shutdown_is_bounded_by_its_timeout_against_a_hung_collector(fresh: None, protocol: str) -> None:
    """A collector that accepts and never answers cannot hold shutdown(timeout=2) much past 2 s."""
    with OTLPReceiver(protocol, mode="hang") as rx:
        _init(rx.endpoint, "grpc" if protocol == "grpc" else "http/protobuf")
        for _ in range(50):
            with obskit.span("stuck"):
                pass
        obskit.get_logger("t").info("a line that will never be delivered")
        assert rx.wait_for(lambda r: len(r.requests("traces")) > 0 or True, timeout=0.1)
        timeout = 2.0
        start = time.monotonic()
        obskit.shutdown(timeout=timeout)
        elapsed = time.monotonic() - start
    # The unguarded SDK waits 10-30 s here; the bound is the timeout plus thread start-up.
    assert elapsed < timeout * 1.5, elapsed


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def _request_path(n: int) -> float:
    """Seconds for ``n`` requests' worth of telemetry: a span with one log line inside."""
    log = obskit.get_logger("t")
    start = time.perf_counter()
    for i in range(n):
        with obskit.span("work"):
            log.info("working", i=i)
    return time.perf_counter() - start


def _timed(n: int, give_up_after: float) -> float:
    """``_request_path(n)`` run in a thread; inf if it has not finished after ``give_up_after`` seconds
    (a request path that blocks must fail the test, not hang it). A run given up on is waited for (10 s at
    most) before returning, so that it does not run on beside, and slow down, the next one."""
    result: list[float] = []
    worker = threading.Thread(target=lambda: result.append(_request_path(n)), daemon=True)
    worker.start()
    worker.join(give_up_after)
    if result:
        return result[0]
    worker.join(10)
    return math.inf


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("down", ["hung", "refusing"])
def test_a_collector_down_never_slows_the_request_path(fresh: None, protocol: str, down: str) -> None:
    """A dead collector costs the request path about what a healthy one does; queues bounded, loss counted."""
    from obskit._logs import _pipeline as _pl
    from obskit._runtime import _health

    otlp_protocol, n = "grpc" if protocol == "grpc" else "http/protobuf", 2_000
    with OTLPReceiver(protocol) as healthy:
        _init(healthy.endpoint, otlp_protocol)
        _request_path(600)  # warm up: channel made, a first batch exported
        baseline = min(_request_path(n) for _ in range(3))
        assert obskit.shutdown(timeout=10) is True
    reset()
    dropped_before = {s: _health.counts().get(("dropped", s), 0) for s in ("traces", "logs")}
    with OTLPReceiver(protocol, mode="hang") as hung:
        endpoint = hung.endpoint if down == "hung" else f"http://127.0.0.1:{_closed_port()}"
        tel = _init(endpoint, otlp_protocol)
        # A full batch of each first: both exporters are then stuck in (or retrying) an export. The warm-up
        # is not measured (it pays for the first connection attempts): it only must not block.
        assert _timed(600, give_up_after=30) < math.inf
        if down == "hung":
            assert hung.wait_for(lambda r: bool(r.requests("traces")) and bool(r.requests("logs")))
        # Each measured run gives up at 5x the baseline: the ratio has failed by then anyway.
        down_time = min(_timed(n, give_up_after=5 * baseline) for _ in range(3))
        assert down_time / baseline < 3, (down_time, baseline)
        queued = [len(p._batch_processor._queue) for p in _processors(tel)]  # spans, log records
        bridge: Any = _pl.STATE.exporter  # the log lines not yet made into records
        assert len(queued) == 2 and max(queued) <= 2048 and bridge._queue.qsize() <= 2048, queued
        for signal, before in dropped_before.items():
            assert _health.counts().get(("dropped", signal), 0) > before  # what could not be kept is counted
        assert obskit.shutdown(timeout=2) is False  # says it could not deliver, within its timeout


def _processors(tel: obskit.Telemetry) -> list[Any]:
    """The batch processors obskit built (span and log), whose queues hold what waits for export."""
    assert tel.tracer_provider is not None and tel.logger_provider is not None
    span_side = tel.tracer_provider._active_span_processor._span_processors
    log_side = tel.logger_provider._multi_log_record_processor._log_record_processors
    return [p for p in (*span_side, *log_side) if hasattr(p, "_batch_processor")]


class _Raising:
    """An exporter that fails in every way an exporter can."""

    def export(self, *a: Any, **k: Any) -> Any:
        raise RuntimeError("exporter exploded")

    def shutdown(self, *a: Any, **k: Any) -> None:
        raise RuntimeError("shutdown exploded")

    def force_flush(self, *a: Any, **k: Any) -> bool:
        raise RuntimeError("flush exploded")


def test_raising_exporter_never_reaches_the_app(fresh: None, monkeypatch: pytest.MonkeyPatch,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    """An exporter that raises is contained: spans, logs, flush and shutdown all still return."""
    from obskit._runtime import _exporters as _export

    monkeypatch.setattr(_export, "_new_otlp", lambda signal, config: _Raising())
    _init("http://127.0.0.1:4317", "grpc")
    for _ in range(10):
        with obskit.span("ok"):
            obskit.get_logger("t").info("still fine")
    assert obskit.force_flush(timeout=2) in (True, False)
    assert obskit.shutdown(timeout=2) in (True, False)
    assert "exporter exploded" in capfd.readouterr().err  # reported once, on stderr


class _RaisingProcessor(SpanProcessor):
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("on_start exploded")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("on_end exploded")


def test_raising_span_processor_never_reaches_the_app(fresh: None) -> None:
    """A third-party span processor that raises does not break obskit.span() or @traced."""
    tel = obskit.init(service_name="s", log_stream=io.StringIO(), integrations="none", metrics=False)
    assert tel.tracer_provider is not None
    tel.tracer_provider.add_span_processor(_RaisingProcessor())

    @obskit.traced
    def work() -> int:
        return 1

    @obskit.traced
    def items() -> Any:
        yield 1

    with obskit.span("outer"):
        assert work() == 1
        assert list(items()) == [1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_exports_with_its_own_instance_id(fresh: None) -> None:
    """After a fork (gunicorn --preload) the child builds its own channel and its own service.instance.id."""
    with OTLPReceiver("grpc") as rx:
        tel = _init(rx.endpoint, "grpc")
        with obskit.span("in-parent"):
            pass
        assert obskit.force_flush(timeout=5)  # the parent's gRPC channel now exists
        parent_instance = dict(tel.resource.attributes)["service.instance.id"]
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                with obskit.span("in-child"):
                    pass
                code = 0 if obskit.shutdown(timeout=5) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert rx.wait_for(lambda r: any(s.name == "in-child" for s in r.spans()), timeout=10)
        child_resources = [attributes(rs.resource.attributes) for req in rx.requests("traces")
                           for rs in req.resource_spans if any(s.name == "in-child" for ss in rs.scope_spans
                                                               for s in ss.spans)]
        assert child_resources[0]["service.instance.id"] != parent_instance
        assert child_resources[0]["process.pid"] == pid


def test_lines_after_shutdown_print_once_and_are_not_exported(fresh: None, receiver: OTLPReceiver) -> None:
    """After shutdown(), a log line is printed exactly once and nothing is handed to the stopped exporter."""
    stream = io.StringIO()
    _init(receiver.endpoint, protocol_of(receiver), log_stream=stream)
    log = obskit.get_logger("late")
    log.info("before")
    assert obskit.shutdown(timeout=5)
    stream.seek(0)
    stream.truncate()
    log.info("after shutdown")
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert len(lines) == 1 and '"after shutdown"' in lines[0], lines
    assert not any(r.body.string_value == "after shutdown" for r in receiver.log_records())
