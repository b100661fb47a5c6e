"""obskit's wire encoder writes exactly the SDK's OTLP requests, faster, and never loses a batch.

Spans and log records are made by the real SDK (TracerProvider, LoggerProvider, in-memory exporters) from
generated plans; the bytes obskit writes must parse to the message the SDK's encoder builds, and equal
its serialization byte for byte.
"""

from __future__ import annotations

import math
import random
import socket
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as sdk_encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as sdk_encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from otlp_receiver import OTLPReceiver

from obskit._runtime import _otlp_http, _wire

I64 = st.integers(-(2**63), 2**63 - 1)
U64 = st.integers(0, 2**64 - 1)
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # any unicode but lone surrogates
KEY = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)
SCALAR = st.one_of(TEXT, st.booleans(), I64, st.floats(allow_nan=False), st.binary(max_size=8))
# What a span attribute may hold: a primitive or a homogeneous sequence of one (None allowed inside).
SPAN_VALUE = st.one_of(SCALAR, *(st.lists(st.one_of(s, st.none()), max_size=4) for s in (
    TEXT, st.booleans(), I64, st.floats(allow_nan=False))))
# What a log body or log attribute may hold: any value, nested.
ANY_VALUE = st.recursive(st.one_of(st.none(), SCALAR), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12)
TRACE_STATE = st.lists(st.tuples(st.sampled_from(["a", "vendor", "k1@sys"]),
                                 st.sampled_from(["1", "x-y", "v"])), max_size=2, unique_by=lambda kv: kv[0])
LIMIT = st.one_of(st.none(), st.integers(0, 3))


def resource_specs(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """1-3 resources, the first sometimes repeated as an equal but distinct object (the SDK groups them)."""
    one = st.tuples(st.dictionaries(KEY, values, max_size=4), st.sampled_from(["", "https://schema/1.0"]))
    return st.tuples(st.lists(one, min_size=1, max_size=3), st.booleans()).map(
        lambda t: t[0] + t[0][:1] if t[1] else t[0])


SCOPE = st.tuples(st.sampled_from(["", "app", "lib.http"]),
                  st.one_of(st.none(), st.sampled_from(["", "1.2"])),
                  st.one_of(st.none(), st.just("https://scope/1")),
                  st.one_of(st.none(), st.dictionaries(KEY, SCALAR, max_size=2)))


class _Ids(IdGenerator):
    """IDs from the plan first (edges: 1, all ones), then from a seeded generator."""

    def __init__(self, ids: list[int], seed: int) -> None:
        self._ids, self._rng = list(ids), random.Random(seed)

    def generate_span_id(self) -> int:
        return (self._ids.pop() % 2**64 or 1) if self._ids else self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._ids.pop() if self._ids else self._rng.getrandbits(128) or 1


@st.composite
def context(draw: st.DrawFn) -> SpanContext:
    return SpanContext(draw(st.integers(1, 2**128 - 1)), draw(st.integers(1, 2**64 - 1)), draw(st.booleans()),
                       TraceFlags(draw(st.integers(0, 255))), TraceState(draw(TRACE_STATE)))


@st.composite
def span_plan(draw: st.DrawFn, values: st.SearchStrategy[Any] = SPAN_VALUE) -> dict[str, Any]:
    attrs = st.dictionaries(KEY, values, max_size=6)
    return {
        "name": draw(TEXT), "kind": draw(st.sampled_from(list(SpanKind))), "attributes": draw(attrs),
        "start": draw(U64), "end": draw(st.one_of(st.none(), U64)),
        "parent": draw(st.one_of(st.none(), st.just("previous"), context())),
        "events": draw(st.lists(st.tuples(TEXT, attrs, st.one_of(st.none(), U64)), max_size=3)),
        "links": draw(st.lists(st.tuples(context(), attrs), max_size=2)),
        "status": draw(st.tuples(st.sampled_from(list(StatusCode)), st.one_of(st.none(), TEXT))),
        "set_later": draw(st.dictionaries(KEY, values, max_size=2)),
        "where": draw(st.tuples(st.integers(0, 3), st.integers(0, 2))),
    }


@st.composite
def span_world(draw: st.DrawFn, values: st.SearchStrategy[Any] = SPAN_VALUE) -> dict[str, Any]:
    return {"resources": draw(resource_specs(values)),
            "scopes": draw(st.lists(SCOPE, min_size=1, max_size=3)),
            "limits": draw(st.tuples(LIMIT, LIMIT, LIMIT, LIMIT)),
            "ids": draw(st.lists(st.sampled_from([1, 2**64 - 1, 2**128 - 1, 2**63]), max_size=3)),
            "seed": draw(st.integers(0, 2**32)), "spans": draw(st.lists(span_plan(values), max_size=6)),
            "order": draw(st.randoms(use_true_random=False))}


def make_spans(world: dict[str, Any]) -> list[Any]:
    """The plan's spans, made and ended by real TracerProviders, in a shuffled batch."""
    a, e, links, ea = world["limits"]
    limits = SpanLimits(max_span_attributes=a, max_events=e, max_links=links, max_event_attributes=ea,
                        max_link_attributes=ea)
    memory = InMemorySpanExporter()
    tracers = []
    for attrs, schema in world["resources"]:
        provider = TracerProvider(resource=Resource(attrs, schema), span_limits=limits,
                                  shutdown_on_exit=False, id_generator=_Ids(world["ids"], world["seed"]))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracers.append([provider.get_tracer(n, v, schema_url=s, attributes=at)
                        for n, v, s, at in world["scopes"]])
    previous = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for plan in world["spans"]:
            row = tracers[plan["where"][0] % len(tracers)]
            tracer = row[plan["where"][1] % len(row)]
            parent = plan["parent"]
            if parent == "previous":
                parent = previous.get_span_context() if previous is not None else None
            ctx = (trace.set_span_in_context(NonRecordingSpan(parent)) if isinstance(parent, SpanContext)
                   else None)
            span = tracer.start_span(plan["name"], context=ctx, kind=plan["kind"],
                                     attributes=plan["attributes"], start_time=plan["start"],
                                     links=[Link(c, at) for c, at in plan["links"]])
            span.set_attributes(plan["set_later"])
            for name, attrs, ts in plan["events"]:
                span.add_event(name, attrs, ts)
            span.set_status(Status(*plan["status"]))
            span.end(plan["end"])
            previous = span
    spans = list(memory.get_finished_spans())
    world["order"].shuffle(spans)
    return spans


@st.composite
def log_plan(draw: st.DrawFn, values: st.SearchStrategy[Any] = ANY_VALUE) -> dict[str, Any]:
    return {
        "timestamp": draw(st.one_of(st.none(), U64)), "observed": draw(st.one_of(st.none(), U64)),
        "severity": draw(st.one_of(st.none(), st.sampled_from(list(SeverityNumber)))),
        "text": draw(st.one_of(st.none(), TEXT)), "body": draw(values),
        "attributes": draw(st.one_of(st.none(), st.dictionaries(KEY, values, max_size=5))),
        "event_name": draw(st.one_of(st.none(), TEXT)), "context": draw(st.one_of(st.none(), context())),
        "where": draw(st.tuples(st.integers(0, 3), st.integers(0, 2))),
    }


@st.composite
def log_world(draw: st.DrawFn, values: st.SearchStrategy[Any] = ANY_VALUE) -> dict[str, Any]:
    return {"resources": draw(resource_specs(values)),
            "scopes": draw(st.lists(SCOPE, min_size=1, max_size=3)), "limit": draw(LIMIT),
            "records": draw(st.lists(log_plan(values), max_size=6)),
            "order": draw(st.randoms(use_true_random=False))}


def make_logs(world: dict[str, Any]) -> list[Any]:
    """The plan's log records, emitted through real LoggerProviders, in a shuffled batch."""
    memory = InMemoryLogRecordExporter()
    loggers = []
    for attrs, schema in world["resources"]:
        provider = LoggerProvider(resource=Resource(attrs, schema), shutdown_on_exit=False,
                                  log_record_limits=LogRecordLimits(max_attributes=world["limit"]))
        provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
        loggers.append([provider.get_logger(n, v, schema_url=s, attributes=at)
                        for n, v, s, at in world["scopes"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for plan in world["records"]:
            row = loggers[plan["where"][0] % len(loggers)]
            ctx = plan["context"]
            row[plan["where"][1] % len(row)].emit(
                timestamp=plan["timestamp"], observed_timestamp=plan["observed"],
                context=trace.set_span_in_context(NonRecordingSpan(ctx)) if ctx is not None else None,
                severity_number=plan["severity"], severity_text=plan["text"], body=plan["body"],
                attributes=plan["attributes"], event_name=plan["event_name"])
    records = list(memory.get_finished_logs())
    world["order"].shuffle(records)
    return records


def assert_same_spans(spans: list[Any], ours: bytes) -> None:
    sdk = sdk_encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(ours) == sdk
    assert ours == sdk.SerializeToString()


def assert_same_logs(records: list[Any], ours: bytes) -> None:
    sdk = sdk_encode_logs(records)
    assert ExportLogsServiceRequest.FromString(ours) == sdk
    assert ours == sdk.SerializeToString()


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(span_world())
def test_spans_encode_exactly_as_the_sdk(world: dict[str, Any]) -> None:
    """For generated spans (resources, scopes, every field, events, links, limits) obskit's fast bytes parse
    to the SDK's request and equal its serialization."""
    spans = make_spans(world)
    assert_same_spans(spans, _wire.encode_spans(spans))


@PROPERTY
@given(log_world())
def test_log_records_encode_exactly_as_the_sdk(world: dict[str, Any]) -> None:
    """For generated log records (any body, nested attributes, severities, trace context, event names,
    limits) obskit's fast bytes equal the SDK's request."""
    records = make_logs(world)
    assert_same_logs(records, _wire.encode_logs(records))


HOSTILE = st.one_of(st.text(max_size=6), st.integers(), SCALAR)  # lone surrogates, ints past int64


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span_world(HOSTILE), log_world(st.one_of(ANY_VALUE, HOSTILE)))
def test_what_the_fast_encoder_declines_is_encoded_by_the_sdk(spans_world: dict[str, Any],
                                                              logs_world: dict[str, Any]) -> None:
    """With ints beyond int64 and lone surrogates, the request is still the SDK's, or fails as the SDK's
    encoder fails."""
    assert_like_the_sdk(_wire.spans_request, sdk_encode_spans, make_spans(spans_world))
    assert_like_the_sdk(_wire.logs_request, sdk_encode_logs, make_logs(logs_world))


def assert_like_the_sdk(ours: Any, sdk: Any, batch: list[Any]) -> None:
    try:
        expected = sdk(batch).SerializeToString()
    except Exception as exc:
        with pytest.raises(type(exc)):
            ours(batch)
    else:
        assert ours(batch) == expected


# Keys and values redaction and the size bound act on: secrets by key, credentials in text, strings to cut.
SECRET_KEY = st.one_of(KEY, st.sampled_from(["password", "db.password", "http.request.header.authorization",
                                             "exception.message", "url.full", "user.ssn"]))
SECRET_VALUE = st.one_of(SPAN_VALUE, st.sampled_from([
    "token=abc&page=2", "https://user:pw@example.com/x?api_key=1", "x" * 33_000, "é" * 33_000 + "?token=1",
    "a=b", "mail@example.com"]), st.lists(st.sampled_from(["ok", "password=1", "y" * 33_000]), max_size=3))


@st.composite
def secret_span_world(draw: st.DrawFn) -> dict[str, Any]:
    """A span world whose attributes hold secrets and long strings, with every time fixed, so that the
    same world makes equal spans twice."""
    world = draw(span_world(SECRET_VALUE))
    names = st.one_of(TEXT, st.sampled_from(["GET /x?token=1", "z" * 33_000]))
    for plan in world["spans"]:
        plan["name"] = draw(names)
        plan["attributes"] = draw(st.dictionaries(SECRET_KEY, SECRET_VALUE, max_size=6))
        plan["end"] = plan["end"] or 1
        plan["events"] = [(n, a, ts or 1) for n, a, ts in plan["events"]]
        if draw(st.booleans()):  # a request's span: no events, links or status text (the one-pass case)
            plan["events"], plan["links"], plan["status"] = [], [], (StatusCode.UNSET, None)
    return world


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret_span_world(), st.sampled_from([(), ("ssn",)]), st.booleans())
def test_one_pass_export_equals_redaction_then_bounds_then_encoding(
        world: dict[str, Any], extra: tuple[str, ...], scrub_exceptions: bool) -> None:
    """Redacting and bounding while encoding (``clean_spans``) gives each span the bytes that redacting it,
    then bounding it, then encoding it give, for any redaction keys, twice in a row (from the caches)."""
    from obskit._runtime import _bounds, _redact
    from obskit._traces import _redaction

    def three_passes(sp: Any) -> bytes:
        _redaction.scrub(sp)
        _bounds.span_size(sp)
        return _wire._span(sp)

    before = _redact.current()
    _redact.install(_redact.Redactor(extra, scrub_exceptions=scrub_exceptions))
    try:
        _wire._KIND.update(_wire._kinds())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = sorted(three_passes(sp) for sp in make_spans(world))
            for _ in range(2):
                ours = sorted(_wire.clean_spans(make_spans(world), _redaction._scrub_and_bound))
                assert ours == expected
    finally:
        _redact.install(before)


# --- named cases ------------------------------------------------------------------------------------------

HTTP_SERVER_ATTRIBUTES = {
    "http.request.method": "GET", "url.path": "/items/42", "url.scheme": "http", "http.route": "/items/{id}",
    "http.response.status_code": 200, "server.address": "127.0.0.1", "server.port": 8000,
    "network.protocol.version": "1.1", "user_agent.original": "wrk/4.2", "client.address": "127.0.0.1",
    "client.port": 51234,
}


@pytest.fixture
def tracer_and_spans() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "wire"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider.get_tracer("wire-test", "1.0"), memory
    provider.shutdown()


def test_http_server_span_is_byte_identical(tracer_and_spans: tuple[Any, InMemorySpanExporter]) -> None:
    """The typical HTTP server span (11 attributes, one error status) encodes as the SDK encodes it, twice
    in a row (the second time from the caches)."""
    tracer, memory = tracer_and_spans
    with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER,
                                      attributes=HTTP_SERVER_ATTRIBUTES) as span:
        span.set_status(Status(StatusCode.ERROR, "boom"))
    spans = list(memory.get_finished_spans())
    assert_same_spans(spans, _wire.encode_spans(spans))
    assert_same_spans(spans, _wire.encode_spans(spans))


def test_bool_and_int_values_never_share_a_cache_entry(
        tracer_and_spans: tuple[Any, InMemorySpanExporter]) -> None:
    """``True == 1`` in Python: a cached ``("a", True)`` is never reused for ``("a", 1)``, nor the reverse."""
    tracer, memory = tracer_and_spans
    for value in (True, 1, False, 0, "1", True):
        with tracer.start_as_current_span("s", attributes={"a": value}):
            pass
    spans = list(memory.get_finished_spans())
    assert_same_spans(spans, _wire.encode_spans(spans))


def test_nan_and_signed_zero_floats_are_byte_identical(
        tracer_and_spans: tuple[Any, InMemorySpanExporter]) -> None:
    """NaN (which no message equals) and -0.0 are written bit for bit as the SDK writes them."""
    tracer, memory = tracer_and_spans
    odd = {"nan": float("nan"), "neg0": -0.0, "inf": float("-inf")}
    with tracer.start_as_current_span("s", attributes=odd):
        pass
    spans = list(memory.get_finished_spans())
    assert _wire.encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()


def test_int_past_int64_goes_to_the_sdk_unreported(tracer_and_spans: tuple[Any, InMemorySpanExporter],
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    """An attribute of 2**63 is declined by the fast encoder (Unsupported); the batch gets the SDK's bytes
    (which drop that attribute) and no internal error is reported."""
    tracer, memory = tracer_and_spans
    with tracer.start_as_current_span("s", attributes={"big": 2**63, "ok": -(2**63)}):
        pass
    spans = list(memory.get_finished_spans())
    with pytest.raises(_wire.Unsupported):
        _wire.encode_spans(spans)
    assert _wire.spans_request(spans) == sdk_encode_spans(spans).SerializePartialToString()
    assert "internal error" not in capfd.readouterr().err


def test_a_fault_in_the_fast_encoder_falls_back_and_is_reported(
        tracer_and_spans: tuple[Any, InMemorySpanExporter], capfd: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the fast encoder (injected here) costs nothing but speed: the batch gets the SDK's bytes and
    the fault is reported on stderr."""
    tracer, memory = tracer_and_spans
    with tracer.start_as_current_span("s", attributes=HTTP_SERVER_ATTRIBUTES):
        pass
    spans = list(memory.get_finished_spans())

    def broken(span: Any) -> bytes:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(_wire, "_span", broken)
    assert _wire.spans_request(spans) == sdk_encode_spans(spans).SerializePartialToString()
    assert "fast OTLP span encoder" in capfd.readouterr().err


def test_empty_batches_match_the_sdk() -> None:
    """An empty batch is the empty request, as the SDK writes it."""
    assert _wire.encode_spans([]) == sdk_encode_spans([]).SerializeToString() == b""
    assert _wire.encode_logs([]) == sdk_encode_logs([]).SerializeToString() == b""


def test_attribute_cache_stays_bounded_and_skips_long_values(
        tracer_and_spans: tuple[Any, InMemorySpanExporter]) -> None:
    """The key/value and key caches never hold more than CACHE_MAX entries, and a long value (a unique URL)
    is never kept."""
    tracer, memory = tracer_and_spans
    _wire._kv_cache.clear()
    with tracer.start_as_current_span("s", attributes={f"k{i}": i for i in range(100)} | {"url": "x" * 300}):
        pass
    spans = list(memory.get_finished_spans())
    for start in range(0, _wire.CACHE_MAX + 500, 100):
        _wire._attributes(b"\x4a", {f"k{i}": i for i in range(start, start + 100)})
        assert len(_wire._kv_cache) <= _wire.CACHE_MAX and len(_wire._key_cache) <= _wire.CACHE_MAX
    _wire._kv_cache.clear()
    assert_same_spans(spans, _wire.encode_spans(spans))
    assert ("url", "x" * 300) not in _wire._kv_cache and ("k5", 5) in _wire._kv_cache


def test_a_new_resource_object_is_encoded_anew() -> None:
    """The resource encoding is cached per object: a later resource with other attributes (a forked
    worker's new process.pid) is written with its own, never with an earlier one's bytes."""
    spans_by_resource = []
    for pid in range(5):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource({"process.pid": pid}), shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(memory))
        with provider.get_tracer("t").start_as_current_span("s"):
            pass
        spans_by_resource.append(list(memory.get_finished_spans()))
        del provider, memory  # its id may be reused by the next one
    for spans in spans_by_resource:
        assert_same_spans(spans, _wire.encode_spans(spans))


# --- the exporters ----------------------------------------------------------------------------------------

def _config(endpoint: str, protocol: str) -> Any:
    from obskit._config import resolve

    return resolve({"service_name": "wire", "otlp_endpoint": endpoint, "otlp_protocol": protocol}, {})


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_obskit_exporters_deliver_the_fast_encoding(protocol: str, fresh: None) -> None:
    """The OTLP exporters obskit builds (HTTP and gRPC) are the fast ones, and a collector receives exactly
    what the SDK's encoder would have sent, spans and log records."""
    from obskit._runtime._otlp_build import build_otlp_exporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "wire"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("GET /x", attributes=HTTP_SERVER_ATTRIBUTES):
        pass
    spans = list(memory.get_finished_spans())
    log_memory = InMemoryLogRecordExporter()
    logs = LoggerProvider(resource=Resource({"service.name": "wire"}), shutdown_on_exit=False)
    logs.add_log_record_processor(SimpleLogRecordProcessor(log_memory))
    logs.get_logger("l").emit(body={"msg": "hi", "n": [1, 2]}, severity_number=SeverityNumber.WARN,
                              attributes={"order_id": 7})
    records = list(log_memory.get_finished_logs())
    with OTLPReceiver(protocol) as rx:
        config = _config(rx.endpoint, "grpc" if protocol == "grpc" else "http/protobuf")
        span_exporter = build_otlp_exporter("traces", config)
        log_exporter = build_otlp_exporter("logs", config)
        # over HTTP obskit's own exporters (no protobuf), over gRPC the SDK's parsing obskit's encoding
        module = _otlp_http.__name__ if protocol == "http" else _wire.__name__
        assert type(span_exporter).__module__ == type(log_exporter).__module__ == module
        assert span_exporter.export(spans) is SpanExportResult.SUCCESS
        assert log_exporter.export(records).name == "SUCCESS"
        assert rx.wait_for(lambda r: bool(r.requests("traces") and r.requests("logs")))
        assert rx.requests("traces") == [sdk_encode_spans(spans)]
        assert rx.requests("logs") == [sdk_encode_logs(records)]
        span_exporter.shutdown()
        log_exporter.shutdown()


def _a_metric() -> MetricsData:
    point = NumberDataPoint({"status": "ok"}, 1, 2, 3, [Exemplar({}, 1.5, 2, span_id=5, trace_id=7)])
    return MetricsData([ResourceMetrics(Resource({"service.name": "wire"}), [ScopeMetrics(
        InstrumentationScope("obskit", "0.1.0"), [Metric("orders", "", "1", Sum(
            [point], AggregationTemporality.CUMULATIVE, True))], "")], "")])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_obskit_metric_exporter_delivers_the_sdk_encoding(protocol: str, fresh: None) -> None:
    """Over HTTP the metric exporter obskit builds is its own (no protobuf), and a collector receives exactly
    the SDK's encoding; over gRPC it is the SDK's."""
    from obskit._runtime._otlp_build import build_otlp_exporter

    data = _a_metric()
    with OTLPReceiver(protocol) as rx:
        exporter = build_otlp_exporter("metrics", _config(rx.endpoint, "grpc" if protocol == "grpc"
                                                          else "http/protobuf"))
        assert (type(exporter) is _otlp_http.OTLPHTTPMetricExporter) is (protocol == "http")
        assert exporter.export(data, timeout_millis=10_000) is MetricExportResult.SUCCESS
        assert rx.wait_for(lambda r: r.requests("metrics") == [sdk_encode_metrics(data)])
        assert exporter.force_flush() is True
        exporter.shutdown()


def test_http_metric_exporter_keeps_the_sdk_limits_and_logger(caplog: pytest.LogCaptureFixture) -> None:
    """obskit's metric exporter: the SDK's size limit, its failure after shutdown, its log lines on the SDK
    metric exporter's logger; ``MetricExporter``'s preferences (none: a reader's defaults, cumulative)."""
    data = _a_metric()
    name = "opentelemetry.exporter.otlp.proto.http.metric_exporter"
    with OTLPReceiver("http") as rx:
        exporter = _otlp_http.OTLPHTTPMetricExporter(f"{rx.endpoint}/v1/metrics", max_request_size=16)
        assert exporter._preferred_temporality is None and exporter._preferred_aggregation is None
        with caplog.at_level("WARNING", logger=name):
            assert exporter.export(data) is MetricExportResult.FAILURE
        assert rx.requests("metrics") == []
        exporter._max_request_size = 0
        assert exporter.export(data) is MetricExportResult.SUCCESS
        assert rx.wait_for(lambda r: len(r.requests("metrics")) == 1)
        exporter.shutdown()
        assert exporter.export(data) is MetricExportResult.FAILURE
    assert caplog.records and {r.name for r in caplog.records} == {name}


@pytest.mark.parametrize("kind", ["obskit", "sdk"])
def test_http_exporter_keeps_the_sdk_size_limit(kind: str,
                                                tracer_and_spans: tuple[Any, InMemorySpanExporter]) -> None:
    """A request over the exporter's max_request_size is refused before sending, as the SDK's export does:
    obskit's HTTP exporter, and the SDK's (with obskit's encoding) it falls back to on other OTel versions."""
    tracer, memory = tracer_and_spans
    with tracer.start_as_current_span("s", attributes=HTTP_SERVER_ATTRIBUTES):
        pass
    spans = list(memory.get_finished_spans())
    cls = _otlp_http.OTLPHTTPSpanExporter if kind == "obskit" else _wire.http_exporter_class("traces")
    with OTLPReceiver("http") as rx:
        exporter = cls(endpoint=f"{rx.endpoint}/v1/traces", max_request_size=64)
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert rx.requests("traces") == []
        exporter._max_request_size = 0  # the SDK's "no limit"
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert rx.wait_for(lambda r: len(r.requests("traces")) == 1)
        exporter.shutdown()
        assert exporter.export(spans) is SpanExportResult.FAILURE  # after shutdown, as the SDK's


def test_http_exporter_sends_the_sdk_default_headers() -> None:
    """obskit's HTTP exporter sends the OTLP Content-Type and User-Agent the SDK's exporters send."""
    from opentelemetry.exporter.otlp.proto.http import _OTLP_HTTP_HEADERS

    assert _otlp_http.OTLP_HTTP_HEADERS == _OTLP_HTTP_HEADERS
    exporter = _otlp_http.OTLPHTTPLogExporter("http://127.0.0.1:9/v1/logs", {"x-k": "v"})
    assert exporter._client._headers == {"content-type": "application/x-protobuf",
                                         "user-agent": _OTLP_HTTP_HEADERS["User-Agent"], "x-k": "v"}
    exporter.shutdown()


def test_http_exporter_logs_a_refused_batch_on_the_sdk_logger(
        tracer_and_spans: tuple[Any, InMemorySpanExporter], caplog: pytest.LogCaptureFixture) -> None:
    """A batch that cannot be delivered fails, logged on the SDK exporter's logger (users' filters apply)."""
    tracer, memory = tracer_and_spans
    with tracer.start_as_current_span("s"):
        pass
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    exporter = _otlp_http.OTLPHTTPSpanExporter(f"http://127.0.0.1:{port}/v1/traces", timeout=0.5)
    with caplog.at_level("WARNING", logger="opentelemetry.exporter.otlp.proto.http.trace_exporter"):
        assert exporter.export(list(memory.get_finished_spans())) is SpanExportResult.FAILURE
    exporter.shutdown()
    assert {r.name for r in caplog.records} == {"opentelemetry.exporter.otlp.proto.http.trace_exporter"}


def test_http_falls_back_to_the_sdk_exporter(tracer_and_spans: tuple[Any, InMemorySpanExporter],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Where obskit's HTTP exporter cannot be imported (another OTel version), the SDK's sends the spans (with
    obskit's encoding) and the metrics."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    from obskit._runtime._otlp_build import build_otlp_exporter

    tracer, memory = tracer_and_spans
    with tracer.start_as_current_span("s", attributes=HTTP_SERVER_ATTRIBUTES):
        pass
    spans = list(memory.get_finished_spans())
    monkeypatch.setitem(sys.modules, "obskit._runtime._otlp_http", None)  # its import raises ImportError
    monkeypatch.delattr(sys.modules["obskit._runtime"], "_otlp_http")
    with OTLPReceiver("http") as rx:
        exporter = build_otlp_exporter("traces", _config(rx.endpoint, "http/protobuf"))
        assert type(exporter) is _wire.http_exporter_class("traces")
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert rx.wait_for(lambda r: r.requests("traces") == [sdk_encode_spans(spans)])
        exporter.shutdown()
        metric_exporter = build_otlp_exporter("metrics", _config(rx.endpoint, "http/protobuf"))
        assert type(metric_exporter) is OTLPMetricExporter
        assert metric_exporter.export(_a_metric()) is MetricExportResult.SUCCESS
        assert rx.wait_for(lambda r: r.requests("metrics") == [sdk_encode_metrics(_a_metric())])
        metric_exporter.shutdown()


# --- metrics ------------------------------------------------------------------------------------------------

FLOAT = st.floats()  # NaN, infinities and -0.0 included: their bits are written as they are
NUMBER = st.one_of(I64, FLOAT)
U128 = st.integers(0, 2**128 - 1)
EXEMPLAR = st.builds(Exemplar, st.dictionaries(KEY, SPAN_VALUE, max_size=3), NUMBER, U64,
                     st.one_of(st.none(), U64), st.one_of(st.none(), U128))
EXEMPLARS = st.lists(EXEMPLAR, max_size=2)
POINT_ATTRS = st.dictionaries(KEY, SPAN_VALUE, max_size=4)
NUMBER_POINT = st.builds(NumberDataPoint, POINT_ATTRS, U64, U64, NUMBER, EXEMPLARS)
HISTOGRAM_POINT = st.builds(
    HistogramDataPoint, POINT_ATTRS, U64, U64, U64, FLOAT, st.lists(U64, max_size=4),
    st.lists(FLOAT, max_size=4), st.one_of(st.none(), FLOAT), st.one_of(st.none(), FLOAT), EXEMPLARS)
TEMPORALITY = st.sampled_from(list(AggregationTemporality))
METRIC_DATA = st.one_of(
    st.builds(Sum, st.lists(NUMBER_POINT, max_size=3), TEMPORALITY, st.booleans()),
    st.builds(Gauge, st.lists(NUMBER_POINT, max_size=3)),
    st.builds(Histogram, st.lists(HISTOGRAM_POINT, max_size=3), TEMPORALITY))
METRIC = st.builds(Metric, TEXT, st.one_of(st.none(), TEXT), st.one_of(st.none(), TEXT), METRIC_DATA)
INSTRUMENTATION_SCOPE = SCOPE.map(lambda s: InstrumentationScope(*s))


@st.composite
def metrics_data(draw: st.DrawFn) -> MetricsData:
    """1-3 resources (an equal one repeated sometimes: the SDK's grouping keeps the last one's scopes), each
    with 1-3 scopes (an equal one repeated sometimes) of 0-3 metrics."""
    out = []
    for attrs, schema in draw(resource_specs(SCALAR)):
        scopes = draw(st.lists(INSTRUMENTATION_SCOPE, min_size=1, max_size=3))
        if draw(st.booleans()):
            scopes.append(scopes[0])
        out.append(ResourceMetrics(Resource(attrs, schema), [
            ScopeMetrics(scope, draw(st.lists(METRIC, max_size=3)), scope.schema_url or "")
            for scope in scopes], schema))
    return MetricsData(out)


def assert_same_metrics(data: MetricsData, ours: bytes) -> None:
    sdk = sdk_encode_metrics(data)
    assert ExportMetricsServiceRequest.FromString(ours) == sdk or any(
        math.isnan(x) for x in _floats_of(data))  # NaN != NaN in the parsed messages
    assert ours == sdk.SerializeToString()


def _floats_of(data: MetricsData) -> Iterator[float]:
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    yield from (v for v in vars(p).values() if isinstance(v, float))
                    yield from (v for v in getattr(p, "explicit_bounds", ()) if isinstance(v, float))
                    yield from (e.value for e in p.exemplars if isinstance(e.value, float))


@PROPERTY
@given(metrics_data())
def test_metrics_encode_exactly_as_the_sdk(data: MetricsData) -> None:
    ours = _wire.encode_metrics(data)
    assert_same_metrics(data, ours)
    assert _wire.metrics_request(data) == ours


def test_pushed_metrics_are_byte_identical() -> None:
    """What the pusher sends for obskit's instruments (counter with an exemplar, gauge, histogram) is the
    SDK's encoding, byte for byte."""
    from obskit._metrics import _instruments, counter, gauge, histogram
    from obskit._metrics._otlp import snapshot

    _instruments.reset()
    try:
        orders = counter("wire_orders", "Orders", labels=["status"])
        depth = gauge("wire_depth", "Items waiting", labels=["queue"])
        latency = histogram("wire_latency", "Latency", unit="seconds", labels=["provider"])
        orders.inc(status="ok")
        orders.inc(2.5, status="failed")
        depth.set(7, queue="payments")
        latency.observe(0.003, provider="acme")
        with TracerProvider(shutdown_on_exit=False).get_tracer("t").start_as_current_span("s"):
            latency.observe(0.25, provider="acme")
            orders.inc(status="ok")
        data = snapshot(_instruments.instruments(), Resource.create({"service.name": "wire"}))
        ours = _wire.encode_metrics(data)
        assert_same_metrics(data, ours)
        exemplars = [e for m in ExportMetricsServiceRequest.FromString(ours).resource_metrics[0]
                     .scope_metrics[0].metrics for p in (m.sum.data_points or m.histogram.data_points)
                     for e in p.exemplars]
        assert exemplars and all(len(e.trace_id) == 16 and len(e.span_id) == 8 for e in exemplars)
    finally:
        _instruments.reset()


def test_exponential_histograms_go_to_the_sdk_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch holding an exponential histogram (which the fast encoder leaves alone) is the SDK's bytes,
    nothing reported; so is an empty batch."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    reported: list[Any] = []
    monkeypatch.setattr(_wire, "report_internal_error", lambda *a: reported.append(a))
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False, views=[
        View(instrument_name="exp", aggregation=ExponentialBucketHistogramAggregation())])
    meter = provider.get_meter("m", "1")
    meter.create_histogram("exp").record(3.5, {"k": "v"})
    meter.create_counter("plain").add(2)
    data = reader.get_metrics_data()
    assert data is not None
    with pytest.raises(_wire.Unsupported):
        _wire.encode_metrics(data)
    assert _wire.metrics_request(data) == sdk_encode_metrics(data).SerializeToString()
    empty = MetricsData([])
    assert _wire.metrics_request(empty) == b"" == sdk_encode_metrics(empty).SerializeToString()
    assert reported == []
    provider.shutdown()
