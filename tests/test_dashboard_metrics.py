"""The series the dashboards need and obskit adds for them: fallbacks, the bulkhead's limit, the push age."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import protocol_of
from otlp_receiver import OTLPReceiver

import obskit
from obskit._metrics._exposition import render


def exposed() -> str:
    return render("text/plain")[0].decode()


@pytest.fixture
def quiet(fresh: None) -> Iterator[None]:
    """obskit reset around the test (metric values zeroed)."""
    yield


def test_fallbacks_are_counted_by_reason(quiet: None) -> None:
    """Each fallback a breaker answers with adds 1 to obskit_fallback_calls_total{name, reason}."""
    def fallback(*args: object) -> str:
        return "queued"

    breaker = obskit.CircuitBreaker("dash_fallback", fallback=fallback, minimum_calls=2, window=2,
                                    wait_in_open=60)

    @breaker
    def call() -> str:
        raise ConnectionError("down")

    for _ in range(3):
        assert call() == "queued"
    text = exposed()
    assert 'obskit_fallback_calls_total{name="dash_fallback",reason="failure"} 2.0' in text
    assert 'obskit_fallback_calls_total{name="dash_fallback",reason="rejected"} 1.0' in text


def test_bulkhead_limit_is_exposed_beside_active(quiet: None) -> None:
    """obskit_bulkhead_limit{name} holds max_concurrent, so saturation is active / limit."""
    @obskit.bulkhead(max_concurrent=3, name="dash_bulkhead")
    def work() -> None:
        pass

    work()
    text = exposed()
    assert 'obskit_bulkhead_limit{name="dash_bulkhead"} 3.0' in text
    assert 'obskit_bulkhead_active{name="dash_bulkhead"} 0.0' in text


def test_push_timestamp_follows_each_successful_push(quiet: None, receiver: OTLPReceiver) -> None:
    """After a successful OTLP push, obskit_metrics_last_push_timestamp_seconds{pid} is that push's time,
    and the next push carries it to the backend."""
    import os

    before = time.time()
    obskit.init(service_name="push-age", otlp_endpoint=receiver.endpoint, otlp_protocol=protocol_of(receiver),
                traces=False, logs=False, env={})
    assert obskit.force_flush(5)
    line = next(x for x in exposed().splitlines()
                if x.startswith(f'obskit_metrics_last_push_timestamp_seconds{{pid="{os.getpid()}"}}'))
    assert before <= float(line.split()[-1]) <= time.time()
    assert obskit.force_flush(5)
    names = {m.name for m in receiver.metrics()}
    assert "obskit_metrics_last_push_timestamp_seconds" in names


def test_thread_count_is_exposed_and_moves(quiet: None) -> None:
    """process_thread_count on /metrics after init() is this process's thread count, and follows a new
    thread."""
    import threading

    obskit.init(service_name="threads", traces=False, logs=False, env={})

    def count() -> float:
        line = next(x for x in exposed().splitlines() if x.startswith("process_thread_count "))
        return float(line.split()[-1])

    before = count()
    stop = threading.Event()
    extra = threading.Thread(target=stop.wait)
    extra.start()
    try:
        assert count() == before + 1
    finally:
        stop.set()
        extra.join()
