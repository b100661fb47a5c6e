"""Telemetry: metrics (WHAT), logs (WHY), span events (WHERE), conservation, and guarded sinks."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

import obskit
from obskit._resilience import CircuitBreaker, CircuitState, _call_metrics, add_sink, remove_sink
from obskit._resilience import _observe as _telemetry
from obskit._resilience import _retry as retry_module
from obskit.testing import Capture

OUTCOMES = ("success", "failure", "ignored", "rejected", "cancelled")
STATES = [s.value for s in CircuitState]


class Clock:
    """Manual clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def calls_total(name: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("obskit_circuit_breaker_calls_total", {"name": name, "outcome": outcome})
        or 0
    )


def state_samples(name: str) -> dict[str, float]:
    """One scrape of the state gauge for ``name``."""
    for family in REGISTRY.collect():
        if family.name == "obskit_circuit_breaker_state":
            return {s.labels["state"]: s.value for s in family.samples if s.labels["name"] == name}
    return {}


def transitions_total(name: str) -> float:
    total = 0.0
    for family in REGISTRY.collect():
        if family.name == "obskit_circuit_breaker_transitions":
            total += sum(
                s.value for s in family.samples if s.name.endswith("_total") and s.labels["name"] == name
            )
    return total


@pytest.fixture
def tracer() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    """A private tracer provider with an in-memory exporter (the global one is left alone)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


def test_calls_are_conserved_under_concurrency() -> None:
    """Over threads and mixed outcomes, calls_total summed over outcomes equals the invocations."""
    name = unique("cons")
    b = CircuitBreaker(
        name, minimum_calls=5, window=20, wait_in_open=0.001, half_open_calls=2, ignore=KeyError
    )
    kinds = {"ok": None, "fail": ConnectionError, "ignored": KeyError, "cancelled": asyncio.CancelledError}

    @b
    def work(kind: str) -> str:
        exc = kinds[kind]
        if exc is not None:
            raise exc()
        return "ok"

    per_thread = 400
    expected = (obskit.CircuitOpenError, ConnectionError, KeyError, asyncio.CancelledError)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(per_thread):
            with contextlib.suppress(*expected):
                work(rng.choice(list(kinds)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(calls_total(name, o) for o in OUTCOMES) == 8 * per_thread
    assert calls_total(name, "rejected") > 0 and calls_total(name, "cancelled") > 0
    count = REGISTRY.get_sample_value(
        "obskit_circuit_breaker_call_duration_seconds_count", {"name": name, "outcome": "success"}
    )
    assert count == calls_total(name, "success")


def test_state_gauge_is_one_hot_at_every_scrape() -> None:
    """While threads flip the breaker through every state, each scrape shows exactly one state at 1."""
    name = unique("hot")
    b = CircuitBreaker(name, minimum_calls=2, wait_in_open=0.0005, half_open_calls=1)
    stop = threading.Event()

    @b
    def fail() -> None:
        raise ConnectionError

    def churn() -> None:
        while not stop.is_set():
            for action in (b.force_open, b.disable, b.reset):
                action()
                for _ in range(3):
                    with contextlib.suppress(ConnectionError, obskit.CircuitOpenError):
                        fail()

    threads = [threading.Thread(target=churn) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        seen = set()
        for _ in range(300):
            samples = state_samples(name)
            assert sorted(samples) == sorted(STATES)
            assert sorted(samples.values()) == [0.0] * 4 + [1.0]
            seen.update(k for k, v in samples.items() if v == 1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(seen) >= 3


def test_rate_gauges_absent_below_minimum_calls() -> None:
    """Failure and slow-call rate gauges appear only once the window holds minimum_calls."""
    name = unique("rate")
    b = CircuitBreaker(name, minimum_calls=4, failure_rate_threshold=1.0)

    @b
    def work(fail: bool) -> None:
        if fail:
            raise ConnectionError

    for fail in (True, False, False):
        with pytest.raises(ConnectionError) if fail else _nothing():
            work(fail)
    assert REGISTRY.get_sample_value("obskit_circuit_breaker_failure_rate", {"name": name}) is None
    work(False)
    assert REGISTRY.get_sample_value("obskit_circuit_breaker_failure_rate", {"name": name}) == 0.25
    assert REGISTRY.get_sample_value("obskit_circuit_breaker_slow_call_rate", {"name": name}) == 0.0


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_transitions_match_state_changed_logs(obskit_capture: Capture) -> None:
    """Every counted transition has its log line: WARNING into open, INFO otherwise, with rates."""
    name, clock = unique("logs"), Clock()
    b = CircuitBreaker(name, clock=clock, minimum_calls=2, wait_in_open=5.0, half_open_calls=1)

    @b
    def work(fail: bool) -> None:
        if fail:
            raise ConnectionError

    for _ in range(2):
        with pytest.raises(ConnectionError):
            work(True)
    clock.now += 5.0
    with pytest.raises(ConnectionError):
        work(True)  # the probe fails: open again
    clock.now += 5.0
    work(False)  # the probe succeeds: closed
    b.force_open()
    b.reset()
    lines = [e for e in obskit_capture.events("circuit_breaker.state_changed") if e["name"] == name]
    assert len(lines) == transitions_total(name) > 0
    for line in lines:
        assert line["level"] == ("warning" if line["to_state"] == "open" else "info")
        assert {"from_state", "to_state", "reason", "window_size"} <= set(line)
    opened = next(line for line in lines if line["to_state"] == "open")
    assert opened["failure_rate"] == 1.0 and opened["window_size"] == 2


def test_span_events_say_where(
    tracer: tuple[Any, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rejections, transitions, fallbacks and retries appear as events on the caller's span."""
    monkeypatch.setattr(retry_module, "_sleep", lambda s: None)
    otel, exporter = tracer
    name = unique("span")
    b = CircuitBreaker(name, minimum_calls=1, wait_in_open=60, fallback=lambda exc: "fallback")

    @obskit.retry(attempts=2, on=ConnectionError, name="span-retry")
    def flaky() -> None:
        raise ConnectionError

    @b
    def down() -> None:
        raise ConnectionError

    with otel.start_as_current_span("request"):
        with pytest.raises(ConnectionError):
            flaky()
        down()
        down()
    (span,) = exporter.get_finished_spans()
    names = [e.name for e in span.events]
    assert names == [
        "retry.attempt",
        "circuit_breaker.state_changed",
        "fallback.invoked",
        "circuit_breaker.rejected",
        "fallback.invoked",
    ]
    retry_event = span.events[0].attributes or {}
    assert retry_event["attempt"] == 2 and retry_event["error_type"] == "ConnectionError"
    assert "wait" in retry_event
    changed = span.events[1].attributes or {}
    assert (changed["from_state"], changed["to_state"]) == ("closed", "open")
    assert (span.events[2].attributes or {})["reason"] == "failure"
    assert (span.events[3].attributes or {})["retry_after"] > 0


def test_failing_telemetry_never_changes_the_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """A raising sink, broken call metrics and a broken logger leave results and other channels intact."""

    def bad_sink(event: object) -> None:
        raise RuntimeError("sink down")

    class BadLogger:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("logger down")

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("metrics down")

    monkeypatch.setattr(_telemetry, "_logger", BadLogger())
    monkeypatch.setattr(_call_metrics._FastSeries, "record", boom)
    monkeypatch.setattr(_call_metrics._FastSeries, "count_only", boom)
    add_sink(bad_sink)
    try:
        name = unique("bad")
        b = CircuitBreaker(name, minimum_calls=1, fallback=lambda x, exc: f"fallback {x}")

        @b
        def work(x: int) -> str:
            if x:
                raise ConnectionError
            return "ok"

        assert work(0) == "ok"
        assert work(1) == "fallback 1"  # failure -> opens (logging fails) -> fallback still answers
        assert work(0) == "fallback 0"  # rejected
        assert b.state is CircuitState.OPEN
        assert transitions_total(name) == 1  # each channel is guarded alone: the broken logger hid nothing
    finally:
        remove_sink(bad_sink)


def test_logs_never_carry_call_arguments(obskit_capture: Capture) -> None:
    """Arguments (card numbers, payloads) never reach the resilience log lines."""
    b = CircuitBreaker(unique("args"), minimum_calls=1, fallback=lambda card, exc: "queued")

    @b
    def charge(card: str) -> None:
        raise ConnectionError("gateway down")

    charge("4111-1111-1111-1111")
    charge("4111-1111-1111-1111")
    lines = [e for e in obskit_capture.logs if e.get("logger") == "obskit.resilience"]
    assert lines and not any("4111" in str(line) for line in lines)


def test_payment_scenario_end_to_end(obskit_capture: Capture) -> None:
    """Payments fail, the breaker opens, the fallback queues, the service recovers, the breaker closes."""
    name, clock = unique("payment_service"), Clock()
    log = obskit.get_logger("payments")
    queue: list[dict[str, int]] = []
    service = {"up": False}

    def fallback_payment(request: dict[str, int], exc: Exception) -> dict[str, str]:
        log.warning("payment service unavailable, queuing for retry", error=str(exc))
        queue.append(request)
        return {"status": "queued"}

    payment_breaker = obskit.CircuitBreaker(
        name, fallback=fallback_payment, clock=clock, minimum_calls=5, wait_in_open=30.0, half_open_calls=2
    )

    @payment_breaker
    def process_payment(request: dict[str, int]) -> dict[str, str]:
        if not service["up"]:
            raise ConnectionError("payment service down")
        return {"status": "paid"}

    with obskit.span("checkout.outage"):
        results = [process_payment({"order": i}) for i in range(10)]
    assert results == [{"status": "queued"}] * 10 and len(queue) == 10
    assert payment_breaker.state is CircuitState.OPEN

    service["up"] = True
    clock.now += 30.0
    with obskit.span("checkout.recovered"):
        results = [process_payment({"order": i}) for i in range(10, 14)]
    assert results == [{"status": "paid"}] * 4
    assert payment_breaker.state is CircuitState.CLOSED

    # WHAT: metrics
    def metric(metric_name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(metric_name, labels)

    assert [metric("obskit_circuit_breaker_calls_total", name=name, outcome=o) for o in OUTCOMES[:4]] == [
        4.0,
        5.0,
        0.0,  # every outcome series exists from the first call, so rate() queries work at once
        5.0,
    ]
    for src, dst in (("closed", "open"), ("open", "half_open"), ("half_open", "closed")):
        assert (
            metric("obskit_circuit_breaker_transitions_total", name=name, from_state=src, to_state=dst) == 1
        )
    assert metric("obskit_circuit_breaker_state", name=name, state="closed") == 1
    assert metric("obskit_circuit_breaker_state", name=name, state="open") == 0

    # WHY: logs
    changes = [
        (e["from_state"], e["to_state"], e["level"])
        for e in obskit_capture.events("circuit_breaker.state_changed")
    ]
    assert changes == [
        ("closed", "open", "warning"),
        ("open", "half_open", "info"),
        ("half_open", "closed", "info"),
    ]
    reasons = [e["reason"] for e in obskit_capture.events("fallback.invoked")]
    assert reasons == ["failure"] * 5 + ["rejected"] * 5
    assert len(obskit_capture.events("payment service unavailable, queuing for retry")) == 10

    # WHERE: span events
    outage = [e.name for e in obskit_capture.span("checkout.outage").events]
    assert outage.count("fallback.invoked") == 10
    assert outage.count("circuit_breaker.rejected") == 5
    assert outage.count("circuit_breaker.state_changed") == 1
    recovered = [e.name for e in obskit_capture.span("checkout.recovered").events]
    assert recovered == ["circuit_breaker.state_changed", "circuit_breaker.state_changed"]
