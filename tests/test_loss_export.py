"""Nothing lost on the export path: bursts, counted drops, oversized records, obskit's own exports.

Everything runs against the loopback collector (real gRPC and HTTP, real protobuf); nothing here mocks an
exporter.
"""

from __future__ import annotations

import io
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from typing import Any

import pytest
from conftest import protocol_of
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_receiver import OTLPReceiver, attributes
from prometheus_client.parser import text_string_to_metric_families

import obskit
import obskit.testing
from obskit._runtime import _bounds, _exporters, _health


def _init(endpoint: str, protocol: str, **kw: Any) -> obskit.Telemetry:
    kw.setdefault("log_stream", io.StringIO())
    kw.setdefault("log_format", "json")
    kw.setdefault("metrics", False)
    kw.setdefault("integrations", "none")
    return obskit.init(service_name="loss-test", otlp_endpoint=endpoint, otlp_protocol=protocol, **kw)


def test_resource_hash_is_computed_once(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoders hash the resource per span; obskit's computes it once, also after a fork's merge."""
    tel = obskit.init(service_name="hash", log_stream=io.StringIO(), integrations="none", metrics=False)
    assert tel.tracer_provider is not None
    calls: list[int] = []
    original = Resource.__hash__
    monkeypatch.setattr(Resource, "__hash__", lambda self: calls.append(1) or original(self))
    resource = tel.tracer_provider.resource
    merged = resource.merge(Resource({"process.pid": 1}))  # what the SDK does in a forked child
    for _ in range(100):
        hash(resource)
        hash(merged)
    assert len(calls) == 2


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body) for s in fam.samples}


def _dropped(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], signal: str) -> int:
    return int(scraped[("obskit_telemetry_dropped_total", (("signal", signal),))])


def test_drops_are_counted_by_default_and_add_up(fresh: None, receiver: OTLPReceiver,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny queues drop part of a burst; /metrics counts it by default: emitted = delivered + dropped."""
    monkeypatch.delenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", raising=False)
    for prefix in ("OTEL_BSP", "OTEL_BLRP"):
        monkeypatch.setenv(f"{prefix}_MAX_QUEUE_SIZE", "32")
        monkeypatch.setenv(f"{prefix}_MAX_EXPORT_BATCH_SIZE", "8")
    tel = _init(receiver.endpoint, protocol_of(receiver), metrics=True, metrics_port=0)
    port = tel._metrics.port
    log = obskit.get_logger("burst")
    emitted = 3000
    for i in range(emitted):
        with obskit.span("burst", i=i):
            log.info("burst", i=i)
    # Drops are counted as items are handed to a full queue; log records are handed over by the log export
    # thread (records are built off the calling thread), so let it hand over all of them first.
    assert obskit.force_flush(timeout=30)
    scraped = _scrape(port)
    assert obskit.shutdown(timeout=30)
    delivered_spans = sum(1 for s in receiver.spans() if s.name == "burst")
    delivered_logs = sum(1 for r in receiver.log_records() if r.body.string_value == "burst")
    assert 0 < delivered_spans < emitted and 0 < delivered_logs < emitted
    assert _dropped(scraped, "traces") == emitted - delivered_spans
    assert _dropped(scraped, "logs") == emitted - delivered_logs


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_items_of_a_failed_export_are_counted_as_dropped(fresh: None, protocol: str) -> None:
    """With nothing listening every export fails: each span and log record in it is counted as dropped."""
    _init(f"http://127.0.0.1:{_closed_port()}", protocol, env={"OBSKIT_EXPORT_TIMEOUT": "0.5"})
    for i in range(100):
        with obskit.span("lost", i=i):
            obskit.get_logger("lost").info("lost", i=i)
    obskit.force_flush(timeout=10)
    counts = _health.counts()
    assert counts[("dropped", "traces")] == 100 and counts[("dropped", "logs")] == 100
    assert counts[("export_failures", "traces")] >= 1


def test_exporters_are_built_in_init_on_the_callers_thread(fresh: None, receiver: OTLPReceiver,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """init() builds the span, log and metric exporters before the first span: a burst never waits for gRPC
    to load. Over HTTP the metric exporter is obskit's too (no protobuf), so it is built there as well."""
    built: list[tuple[str, str]] = []
    real = _exporters._new_otlp

    def spy(signal: Any, config: Any) -> Any:
        built.append((signal, threading.current_thread().name))
        return real(signal, config)

    monkeypatch.setattr(_exporters, "_new_otlp", spy)
    _init(receiver.endpoint, protocol_of(receiver), metrics=True)
    me = threading.current_thread().name
    assert sorted(built) == [("logs", me), ("metrics", me), ("traces", me)]
    with obskit.span("first"):
        obskit.get_logger("first").info("first")
    assert obskit.shutdown(timeout=10)
    assert sorted(built) == [("logs", me), ("metrics", me), ("traces", me)]  # each built once, in init()
    assert receiver.wait_for(lambda r: bool(r.metrics()))
    assert any(s.name == "first" for s in receiver.spans())


def test_obskit_does_not_trace_its_own_exports(fresh: None) -> None:
    """With the requests integration and OTLP/HTTP, pushes and flushes make no span; the app's calls do."""
    requests = pytest.importorskip("requests")
    memory = InMemorySpanExporter()
    with OTLPReceiver("http") as rx:
        tel = _init(rx.endpoint, "http/protobuf", metrics=True, integrations=["requests"],
                    span_processors=[SimpleSpanProcessor(memory)])
        assert tel.integrations == ["requests"]
        obskit.counter("pushed_things").inc()
        with obskit.span("app-work"):
            obskit.get_logger("app").info("working")
        assert obskit.force_flush(timeout=10)  # a span, a log record and a metric push, over HTTP
        requests.get(f"{rx.endpoint}/the-apps-own-call", timeout=10)
        assert obskit.shutdown(timeout=10)  # exports and pushes once more
        assert rx.metrics_requests() and rx.requests("traces") and rx.requests("logs")
    assert sorted(s.name for s in memory.get_finished_spans()) == ["GET", "app-work"]


def test_an_oversized_record_costs_only_itself(fresh: None, receiver: OTLPReceiver) -> None:
    """10 MB in a log body, a log attribute, a span attribute: cut and marked; every neighbour arrives."""
    _init(receiver.endpoint, protocol_of(receiver))
    log = obskit.get_logger("big")
    for i in range(20):
        log.info("ordinary", i=i)
    log.info("b" * 10_000_000)
    log.info("big attribute", blob="a" * 10_000_000)
    for i in range(20, 40):
        log.info("ordinary", i=i)
    with obskit.span("big span", blob="s" * 10_000_000):
        pass
    with obskit.span("ordinary span"):
        pass
    assert obskit.force_flush(timeout=30)
    ordinary = sorted(attributes(r.attributes)["i"] for r in receiver.log_records()
                      if r.body.string_value == "ordinary")
    assert ordinary == list(range(40))
    mark = f"... [truncated by obskit: {10_000_000} characters]"
    bodies = [r.body.string_value for r in receiver.log_records() if r.body.string_value.startswith("bbb")]
    assert bodies == ["b" * _bounds.MAX_CHARS + mark]
    blob = [attributes(r.attributes)["blob"] for r in receiver.log_records()
            if r.body.string_value == "big attribute"]
    assert blob == ["a" * _bounds.MAX_CHARS + mark]
    spans = {s.name: attributes(s.attributes) for s in receiver.spans()}
    assert spans["big span"]["blob"] == "s" * _bounds.MAX_CHARS + mark and "ordinary span" in spans


def test_a_batch_too_big_for_one_message_goes_out_in_parts(fresh: None, receiver: OTLPReceiver) -> None:
    """300 records of 30 KB (9 MB) all arrive whole; one still 6 MB after cutting is the only one lost."""
    _init(receiver.endpoint, protocol_of(receiver))
    log = obskit.get_logger("wide")
    for i in range(150):
        log.info("wide", i=i, text="w" * 30_000)
    log.info("too wide", parts=["p" * 30_000] * 200)  # no string to cut: 6 MB of 30 KB strings
    for i in range(150, 300):
        log.info("wide", i=i, text="w" * 30_000)
    obskit.force_flush(timeout=30)
    wide = [attributes(r.attributes) for r in receiver.log_records() if r.body.string_value == "wide"]
    assert sorted(a["i"] for a in wide) == list(range(300)) and all(len(a["text"]) == 30_000 for a in wide)
    too_wide = [r for r in receiver.log_records() if r.body.string_value == "too wide"]
    if receiver.protocol == "grpc":  # the loopback HTTP collector takes any size
        assert too_wide == [] and _health.counts()[("dropped", "logs")] == 1
    else:
        assert len(too_wide) == 1


def test_drops_of_an_earlier_setup_do_not_count_after_reset(fresh: None) -> None:
    """A queue made before ``reset()`` (an export thread abandoned by a bounded shutdown) that drops later
    does not add to the new setup's counts; one made after does."""
    from obskit._runtime import _batching

    old = _batching._CountingQueue(1, "traces")
    obskit.testing.reset()
    new = _batching._CountingQueue(1, "traces")
    for queue in (old, new):
        queue.appendleft("a")
        queue.appendleft("b")  # over the limit of 1: the oldest is evicted and counted
    assert _health.counts().get(("dropped", "traces"), 0) == 1


# Notes every module imported on a thread other than the main one, from before obskit is imported to the end;
# emits a burst (more than one batch, so the export threads send while the app runs), waits for a metric push.
IMPORTS_OFF_MAIN = textwrap.dedent("""
    import io, sys, threading, time
    imported = []

    def hook(event, args):
        if event == "import" and threading.current_thread() is not threading.main_thread():
            imported.append(f"{threading.current_thread().name}: {args[0]}")

    sys.addaudithook(hook)
    import obskit
    obskit.init(service_name="imports", otlp_endpoint=sys.argv[1], otlp_protocol=sys.argv[2],
                log_stream=io.StringIO(), integrations="none",
                env={"OTEL_METRIC_EXPORT_INTERVAL": "200", "OBSKIT_EXPORT_TIMEOUT": "1"})
    log = obskit.get_logger("burst")
    count = obskit.counter("burst_items", "Items of the burst")
    for i in range(1500):
        with obskit.span("burst", i=i):
            log.info("burst", i=i)
            count.inc()
    time.sleep(1.0)
    obskit.shutdown(timeout=10)
    print(sorted(set(imported)))
    """)


@pytest.mark.parametrize("collector", ["up", "down"])
def test_export_threads_import_nothing(receiver: OTLPReceiver, collector: str) -> None:
    """Everything the export threads need is imported in init(): an import on a thread that competes with a
    busy app for the GIL took a second here (the idna codec that socket.getaddrinfo loads on the first
    connect), while the burst it should have been sending filled the queue and was dropped."""
    endpoint = receiver.endpoint if collector == "up" else f"http://127.0.0.1:{_closed_port()}"
    proc = subprocess.run([sys.executable, "-c", IMPORTS_OFF_MAIN, endpoint, protocol_of(receiver)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", proc.stdout
    if collector == "up":  # the threads did send: spans, log records and pushed metrics all arrived
        assert sum(1 for s in receiver.spans() if s.name == "burst") == 1500
        assert sum(1 for r in receiver.log_records() if r.body.string_value == "burst") == 1500
        assert any(m.name == "burst_items" for m in receiver.metrics())


def test_an_export_outliving_its_shutdown_logs_nothing_into_the_next_setup(fresh: None) -> None:
    """shutdown() gives up on a hung collector and leaves its export running; when that export fails later,
    its exporter's lines belong to the setup that was shut down: none lands in the one started since (under
    pytest, a test's capture got an earlier test's "Failed to export spans batch" this way)."""
    seen: list[str] = []

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("opentelemetry"):
                seen.append(record.getMessage())

    watch = Watch()
    with OTLPReceiver("http", mode="hang") as hung:
        _init(hung.endpoint, "http/protobuf", env={"OBSKIT_EXPORT_TIMEOUT": "1"})
        with obskit.span("old"):
            pass
        obskit.shutdown(timeout=0.3)  # the export hangs: shutdown gives up and its thread carries on
        logging.getLogger().addHandler(watch)
        try:
            with obskit.testing.capture() as cap:
                deadline = time.monotonic() + 20
                while not seen and time.monotonic() < deadline:
                    time.sleep(0.1)
                lines = cap.logs
        finally:
            logging.getLogger().removeHandler(watch)
    assert seen, "the old export never logged: the test proves nothing"
    assert not [line for line in lines if str(line.get("logger", "")).startswith("opentelemetry")], lines
