"""A server span started by ``obskit._traces._lean`` is the span the SDK would have made.

Each case builds two SDK TracerProviders alike (sampler, limits, resource, seeded id generator, a recording
processor and an in-memory exporter), starts the same span in each, one through ``Tracer.start_span`` and
one through ``_lean.start_span``, does the same things to both, and compares what the processors saw and
what the exporters received, byte for byte as OTLP.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from obskit._runtime import _wire
from obskit._traces import _lean


class _Ids(IdGenerator):
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


class _RandomIds(_Ids):
    """Seeded ids that declare themselves random, as the SDK's default generator does (W3C random flag)."""

    def is_trace_id_random(self) -> bool:
        return True


class _Recorder(SpanProcessor):
    """Notes every call a processor gets, with what the span looked like then."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.calls.append(("on_start", span.name, span.is_recording()))

    def _on_ending(self, span: Any) -> None:
        self.calls.append(("_on_ending", span.name, span.end_time is not None))

    def on_end(self, span: Any) -> None:
        self.calls.append(("on_end", span.name, span.end_time is not None))


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both paths read the same clock, so that timestamps compare equal."""
    monkeypatch.setattr(sdk_trace, "time_ns", lambda: 1_700_000_000_123_456_789)
    monkeypatch.setattr(_lean, "time_ns", lambda: 1_700_000_000_123_456_789)


def _provider(sampler: Sampler, limits: SpanLimits, seed: int, recorder: bool,
              random_ids: bool = False) -> tuple[TracerProvider, InMemorySpanExporter, _Recorder | None]:
    memory = InMemorySpanExporter()
    ids = _RandomIds(seed) if random_ids else _Ids(seed)
    provider = TracerProvider(resource=Resource({"service.name": "lean"}), sampler=sampler,
                              span_limits=limits, id_generator=ids, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    rec = _Recorder() if recorder else None
    if rec is not None:
        provider.add_span_processor(rec)
    return provider, memory, rec


SAMPLERS = {
    "always_on": ALWAYS_ON, "always_off": ALWAYS_OFF, "parent_on": ParentBased(ALWAYS_ON),
    "parent_off": ParentBased(ALWAYS_OFF), "ratio": TraceIdRatioBased(0.5),
    "parent_ratio": ParentBased(TraceIdRatioBased(0.5)),
    # remote delegates inverted, local ones not: a delegate swapped in the lean path's own decision shows
    "parent_inverted": ParentBased(ALWAYS_OFF, remote_parent_sampled=ALWAYS_OFF,
                                   remote_parent_not_sampled=ALWAYS_ON, local_parent_sampled=ALWAYS_ON,
                                   local_parent_not_sampled=ALWAYS_OFF),
}
PARENTS = ("none", "remote_sampled", "remote_unsampled", "remote_state", "local")
VALUE = st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1))
ATTRS = st.dictionaries(st.one_of(st.text(min_size=1, max_size=6), st.just("first")), VALUE, max_size=5)
OPS = st.lists(st.sampled_from(["rename", "set", "event", "exception", "error", "link", "ok", "put",
                                "put_first"]), max_size=6)


def _parent(kind: str, tracer: Any) -> tuple[otel_context.Context | None, Any]:
    """The context a request arrives with; for "local", a span of the same tracer (returned to end)."""
    if kind == "none":
        return None, None
    if kind == "local":
        outer = tracer.start_span("outer")
        return trace.set_span_in_context(outer), outer
    flags = TraceFlags(TraceFlags.SAMPLED if kind != "remote_unsampled" else TraceFlags.DEFAULT)
    state = TraceState([("vendor", "v1")]) if kind == "remote_state" else None
    ctx = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, flags, state)
    return trace.set_span_in_context(NonRecordingSpan(ctx)), None


def _apply(span: trace.Span, ops: list[str]) -> None:
    for i, op in enumerate(ops):
        if op == "rename":
            span.update_name(f"GET /items/{{id}}/{i}")
        elif op == "set":
            span.set_attribute(f"k{i}", i)
        elif op == "put":  # the lean span's own write (set_attribute on any other span)
            _lean.put(span, f"p{i}", f"v{i}")
        elif op == "put_first":  # a key set again moves to the end, as in the SDK
            _lean.put(span, "first", i)
        elif op == "event":
            span.add_event(f"event{i}", {"n": i})
        elif op == "exception":
            try:
                raise ValueError(f"boom {i}")
            except ValueError as exc:
                span.record_exception(exc, timestamp=5)
        elif op == "error":
            span.set_status(Status(StatusCode.ERROR, f"failed {i}"))
        elif op == "ok":
            span.set_status(StatusCode.OK)
        elif op == "link":
            span.add_link(SpanContext(7, 8, True, TraceFlags(TraceFlags.SAMPLED)), {"i": i})


def _both(sampler: str, parent: str, attrs: dict[str, Any], ops: list[str], limits: SpanLimits,
          seed: int, recorder: bool, random_ids: bool) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The SDK's result and the lean path's: (the started span's type, its context, the exporter's spans,
    the recorder's calls)."""
    out = []
    for lean in (False, True):
        provider, memory, rec = _provider(SAMPLERS[sampler], limits, seed, recorder, random_ids)
        tracer = provider.get_tracer("obskit.integrations.asgi", "1.0")
        context, outer = _parent(parent, tracer)
        if lean:
            span = _lean.start_span(tracer, "GET", SpanKind.SERVER, dict(attrs), context)
            assert span is not None
        else:
            span = tracer.start_span("GET", context, SpanKind.SERVER, dict(attrs))
        _apply(span, ops)
        span.end()
        if outer is not None:
            outer.end()
        finished = list(memory.get_finished_spans())
        out.append((type(span) is NonRecordingSpan, span.get_span_context(), finished,
                    rec.calls if rec is not None else None))
        provider.shutdown()
    return out[0], out[1]


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(sampler=st.sampled_from(sorted(SAMPLERS)), parent=st.sampled_from(PARENTS), attrs=ATTRS, ops=OPS,
       max_events=st.one_of(st.none(), st.integers(0, 2)), max_links=st.one_of(st.none(), st.integers(0, 2)),
       max_attributes=st.one_of(st.none(), st.integers(5, 7)), seed=st.integers(0, 2**32),
       recorder=st.booleans(), random_ids=st.booleans())
def test_lean_span_is_the_sdk_span(sampler: str, parent: str, attrs: dict[str, Any], ops: list[str],
                                   max_events: int | None, max_links: int | None, max_attributes: int | None,
                                   seed: int, recorder: bool, random_ids: bool) -> None:
    """For every stock sampler, parent (none, remote sampled or not, with a trace state, local), attributes
    and later operations (rename, attributes set or put, events, exceptions, statuses, links) under any
    limits, with only quiet processors or one of the user's too, ids random or not: the same span context,
    the same processor calls, and the same exported spans, as the SDK encodes them and as obskit's wire
    encoder does."""
    limits = SpanLimits(max_events=max_events, max_links=max_links, max_span_attributes=max_attributes)
    sdk, lean = _both(sampler, parent, attrs, ops, limits, seed, recorder, random_ids)
    assert lean[0] == sdk[0] and lean[1] == sdk[1]
    assert lean[3] == sdk[3]
    sdk_spans, lean_spans = sdk[2], lean[2]
    assert len(lean_spans) == len(sdk_spans)
    assert [s.dropped_attributes for s in lean_spans] == [s.dropped_attributes for s in sdk_spans]
    assert [s.dropped_events for s in lean_spans] == [s.dropped_events for s in sdk_spans]
    assert [s.dropped_links for s in lean_spans] == [s.dropped_links for s in sdk_spans]
    assert sdk_encode_spans(lean_spans).SerializeToString() == sdk_encode_spans(sdk_spans).SerializeToString()
    if sdk_spans:
        assert _wire.encode_spans(lean_spans) == _wire.encode_spans(sdk_spans)
        assert lean_spans[-1].to_json() == sdk_spans[-1].to_json()


def test_lean_span_is_an_sdk_span_with_the_sdk_methods() -> None:
    """The lean span is the SDK's Span class underneath: a ReadableSpan for processors, and every method
    (``set_status``, ``record_exception``, ``__exit__``) is the SDK's own."""
    provider, memory, _ = _provider(ALWAYS_ON, SpanLimits(), 1, recorder=False)
    span = _lean.start_span(provider.get_tracer("t"), "GET", SpanKind.SERVER, {}, None)
    assert isinstance(span, sdk_trace.Span) and isinstance(span, sdk_trace.ReadableSpan)
    with pytest.raises(RuntimeError), trace.use_span(span, end_on_exit=True, record_exception=True,
                                                     set_status_on_exception=True):
        raise RuntimeError("inside")
    (done,) = memory.get_finished_spans()
    assert done.status.status_code is StatusCode.ERROR
    assert [e.name for e in done.events] == ["exception"]


def test_ending_twice_exports_once_and_warns_as_the_sdk(caplog: pytest.LogCaptureFixture) -> None:
    """A second ``end()`` changes nothing and logs the SDK's own warning."""
    provider, memory, _ = _provider(ALWAYS_ON, SpanLimits(), 1, recorder=False)
    span = _lean.start_span(provider.get_tracer("t"), "GET", SpanKind.SERVER, {"a": 1}, None)
    assert span is not None
    span.end()
    with caplog.at_level(logging.WARNING):
        span.end()
        span.set_attribute("late", 1)
    assert len(memory.get_finished_spans()) == 1
    assert "late" not in (memory.get_finished_spans()[0].attributes or {})
    assert "Calling end() on an ended span." in caplog.text


def test_quiet_processors_are_not_called_at_start_but_others_are() -> None:
    """With only batch/simple processors nothing is called at start (they do nothing then); a processor of
    the user's with its own ``on_start`` and ``_on_ending`` gets both, once, in order."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    batch = BatchSpanProcessor(memory)
    provider.add_span_processor(batch)
    tracer = provider.get_tracer("t")
    assert _lean._processors(provider._active_span_processor) == (
        provider._active_span_processor._span_processors, False)
    rec = _Recorder()
    provider.add_span_processor(rec)
    span = _lean.start_span(tracer, "GET", SpanKind.SERVER, {}, None)
    assert span is not None
    span.end()
    assert rec.calls == [("on_start", "GET", True), ("_on_ending", "GET", True), ("on_end", "GET", True)]
    provider.force_flush()
    assert [s.name for s in memory.get_finished_spans()] == ["GET"]
    provider.shutdown()


class _AddsAttributes(Sampler):
    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        from opentelemetry.sdk.trace.sampling import Decision

        return SamplingResult(Decision.RECORD_AND_SAMPLE, {"sampler.added": 1})

    def get_description(self) -> str:
        return "adds"


@pytest.mark.parametrize("case", ["value_length_limit", "too_many_attributes", "sampler_adds_attributes",
                                  "disabled_tracer", "not_an_sdk_tracer", "unknown_sdk_fields"])
def test_the_sdk_starts_the_span_where_the_lean_path_cannot_vouch(case: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each condition the lean path does not reproduce sends the span back to the SDK (None), including an
    SDK whose Span holds a field the lean path does not fill."""
    limits = SpanLimits(max_span_attribute_length=4 if case == "value_length_limit" else None,
                        max_span_attributes=1 if case == "too_many_attributes" else None)
    sampler: Sampler = _AddsAttributes() if case == "sampler_adds_attributes" else ALWAYS_ON
    provider, _, _ = _provider(sampler, limits, 1, recorder=False)
    tracer: Any = provider.get_tracer("t")
    if case == "disabled_tracer":
        tracer._set_tracer_config(sdk_trace._TracerConfig(is_enabled=False))
    if case == "not_an_sdk_tracer":
        tracer = trace.NoOpTracer()
    if case == "unknown_sdk_fields":
        monkeypatch.setattr(_lean, "_fields_ok", None)
        monkeypatch.setattr(_lean, "_SPAN_FIELDS", _lean._SPAN_FIELDS - {"_lock"})
    assert _lean.start_span(tracer, "GET", SpanKind.SERVER, {"a": "1", "b": "2"}, None) is None


@pytest.fixture
def obskit_server_span() -> Iterator[Any]:
    import obskit
    from obskit.testing import capture

    with capture() as cap:
        yield cap
    del obskit


def test_server_integrations_start_their_spans_on_the_lean_path(obskit_server_span: Any) -> None:
    """Under ``obskit.init()`` (stock sampler, obskit's processors) a server integration's span is lean, and
    it is exported with its route, status and attributes."""
    from obskit.integrations import _server_span

    scope = {"type": "http", "method": "GET", "scheme": "http", "path": "/items/1", "http_version": "1.1",
             "headers": [(b"host", b"example:8000")], "client": ("10.0.0.1", 5000)}
    attrs, parent = _server_span.request_attributes(scope, "GET", None)
    span, token = _server_span.start_server_span("GET", attrs, parent)
    assert type(span) is _lean.LeanSpan
    span.update_name("GET /items/{id}")
    _server_span.end_server_span(span, token, 503, None)
    (done,) = obskit_server_span.spans
    assert done.name == "GET /items/{id}" and done.kind is SpanKind.SERVER
    assert done.attributes["http.response.status_code"] == 503
    assert done.attributes["server.address"] == "example" and done.attributes["server.port"] == 8000
    assert done.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("max_attributes", [None, 2])
def test_put_writes_as_set_attribute_writes(max_attributes: int | None) -> None:
    """A key put again moves to the end, and a full attribute set drops its oldest, as ``set_attribute``
    does on the SDK's span (the order is the order on the wire)."""
    limits = SpanLimits(max_span_attributes=max_attributes)
    ops = ["put_first", "put", "put_first"]
    sdk, lean = _both("always_on", "none", {"first": "a", "b": "c"}, ops, limits, 1, False, False)
    assert [list(s.attributes.items()) for s in lean[2]] == [list(s.attributes.items()) for s in sdk[2]]
    assert [s.dropped_attributes for s in lean[2]] == [s.dropped_attributes for s in sdk[2]]


def test_a_processor_added_while_the_span_runs_sees_its_end() -> None:
    """A processor added after the span started (only quiet ones before) gets ``_on_ending`` and
    ``on_end``, as the SDK's multi-processor gives them."""
    provider, memory, _ = _provider(ALWAYS_ON, SpanLimits(), 1, recorder=False)
    span = _lean.start_span(provider.get_tracer("t"), "GET", SpanKind.SERVER, {}, None)
    assert span is not None
    rec = _Recorder()
    provider.add_span_processor(rec)
    span.end()
    assert rec.calls == [("_on_ending", "GET", True), ("on_end", "GET", True)]
    assert [s.name for s in memory.get_finished_spans()] == ["GET"]


def test_a_queued_lean_span_holds_few_objects_for_the_garbage_collector() -> None:
    """Spans wait in the export queue long enough to be promoted to the collector's oldest generation,
    whose full collections (tens of ms in a web worker) then come the more often the more objects each
    span holds: a started lean span adds at most 4 tracked objects (itself, its attribute set, its
    context, its lock), not a dict per object and a lock per attribute set besides."""
    import gc

    provider, _, _ = _provider(ALWAYS_ON, SpanLimits(), 1, recorder=False)
    tracer = provider.get_tracer("t")
    _lean.start_span(tracer, "warm", SpanKind.SERVER, {"a": 1}, None)
    held = []
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for _ in range(500):
            held.append(_lean.start_span(tracer, "GET", SpanKind.SERVER, {"method": "GET"}, None))
        added = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert all(type(s) is _lean.LeanSpan for s in held)
    assert added <= 4 * len(held) + 10, added / len(held)


def test_a_handler_setting_a_span_attribute_while_the_sdk_warns_does_not_deadlock() -> None:
    """The lean spans' attribute sets share one lock, and the SDK logs its "attributes dict is full" warning
    while holding it: a logging handler that sets an attribute on another lean span then must not wait for
    a lock its own thread holds."""
    import threading

    provider, memory, _ = _provider(ALWAYS_ON, SpanLimits(max_span_attributes=1), 1, recorder=False)
    tracer = provider.get_tracer("t")
    full = _lean.start_span(tracer, "full", SpanKind.SERVER, {"a": 1}, None)
    other = _lean.start_span(tracer, "other", SpanKind.SERVER, {}, None)  # room for one
    assert full is not None and other is not None

    class Tagging(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            other.set_attribute("warned", record.getMessage()[:20])

    sdk_logger = logging.getLogger("opentelemetry.attributes")
    handler = Tagging()
    sdk_logger.addHandler(handler)
    try:
        worker = threading.Thread(target=full.set_attribute, args=("c", 2), daemon=True)
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), "deadlocked"
    finally:
        sdk_logger.removeHandler(handler)
    full.end()
    other.end()
    done = {s.name: s for s in memory.get_finished_spans()}
    assert done["full"].attributes == {"c": 2} and done["full"].dropped_attributes == 1
    assert done["other"].attributes is not None and list(done["other"].attributes) == ["warned"]
