"""init()'s public seams (env, span_processors, id_generator), reset(), and shutdown() then init()."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

import obskit
from obskit import _setup


class Counting(IdGenerator):
    """Trace ids 1, 2, 3... and span ids 1, 2, 3...: what a deterministic test wants."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        self.trace_id += 1
        return self.trace_id

    def generate_span_id(self) -> int:
        self.span_id += 1
        return self.span_id


@pytest.fixture
def memory() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter, with obskit reset around the test."""
    obskit.testing.reset()
    yield InMemorySpanExporter()
    obskit.testing.reset()


def _init(exporter: InMemorySpanExporter, **kwargs: object) -> obskit.Telemetry:
    kwargs.setdefault("env", {})
    return obskit.init(log_stream=io.StringIO(), log_format="json", integrations="none",
                       span_processors=[SimpleSpanProcessor(exporter)], **kwargs)  # type: ignore[arg-type]


def test_span_processors_and_id_generator(memory: InMemorySpanExporter) -> None:
    """Extra processors see every span; a fixed id generator gives the ids a test can assert."""
    _init(memory, service_name="s", id_generator=Counting())
    with obskit.span("a"), obskit.span("b"):
        pass
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert spans["a"].context.trace_id == 1 and spans["a"].context.span_id == 1
    assert spans["b"].context.span_id == 2 and spans["b"].parent.span_id == 1  # type: ignore[union-attr]


def test_env_replaces_os_environ(memory: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    """``env=`` is the only source of settings: os.environ is not read."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-os-environ")
    tel = _init(memory, env={"OTEL_SERVICE_NAME": "from-env-arg"})
    assert tel.config.service_name == "from-env-arg"


def test_shutdown_then_init_starts_over(memory: InMemorySpanExporter) -> None:
    """After shutdown(), a new init() brings a new resource and sampler, also to tracers taken before."""
    early = trace.get_tracer("instrumentation")  # as a contrib instrumentation takes it, once
    first, third = memory, InMemorySpanExporter()  # shutdown() shuts an exporter down: one per init()
    _init(first, service_name="first", sample_ratio=1.0)
    with early.start_as_current_span("one"):
        pass
    obskit.shutdown()
    _init(InMemorySpanExporter(), service_name="second", sample_ratio=0.0)
    with early.start_as_current_span("two") as sp:
        assert not sp.is_recording()  # the new sampler applies
    obskit.shutdown()
    _init(third, service_name="third", sample_ratio=1.0)
    with early.start_as_current_span("three"), obskit.span("four"):
        pass
    spans = [*first.get_finished_spans(), *third.get_finished_spans()]
    names = {s.name: s.resource.attributes["service.name"] for s in spans}
    assert names == {"one": "first", "three": "third", "four": "third"}


def test_between_shutdown_and_init_spans_are_no_ops(memory: InMemorySpanExporter) -> None:
    """After shutdown() nothing is recorded (nothing could be exported), and nothing raises."""
    _init(memory, service_name="s")
    obskit.shutdown()
    with obskit.span("after") as sp, trace.get_tracer("x").start_as_current_span("lib") as lib:
        assert not sp.is_recording() and not lib.is_recording()
    assert memory.get_finished_spans() == ()


def test_reset_is_a_method_of_the_state(memory: InMemorySpanExporter) -> None:
    """``Telemetry.reset()`` shuts down and restores process-wide state; the module reset needs no init()."""
    tel = _init(memory, service_name="s", redact=["ssn"])
    assert _setup.current() is tel
    tel.reset()
    assert tel.shutdown() is True  # already closed: idempotent
    _setup.reset()  # with nothing live: still fine
    tel2 = _init(memory, service_name="t")
    assert tel2 is not tel and tel2.config.service_name == "t"
