"""Metrics through the public entry points: obskit.init() and the obskit_capture fixture."""

from __future__ import annotations

import socket
import urllib.request

import pytest

import obskit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, accept: str = "") -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def test_init_serves_metrics_with_exemplars_from_obskit_spans(fresh: None) -> None:
    """init(metrics_port=...) serves /metrics; an observation in obskit.span carries its trace id."""
    port = free_port()
    obskit.init(service_name="svc", metrics_port=port, integrations="none", logs=False)
    latency = obskit.histogram("init_latency", unit="seconds")
    with obskit.span("charge") as span:
        latency.observe(0.2)
    trace_id = format(span.get_span_context().trace_id, "032x")
    body = scrape(port, "application/openmetrics-text")
    assert f'trace_id="{trace_id}"' in body and "init_latency_seconds_count 1.0" in body
    assert "obskit_telemetry_dropped_total" in body
    assert obskit.shutdown(5)
    with pytest.raises(OSError):
        scrape(port)


def test_metrics_recorded_before_init_are_exposed_after(fresh: None) -> None:
    """A value recorded before init() shows on the server init() starts."""
    early = obskit.counter("init_early")
    early.inc(2)
    port = free_port()
    obskit.init(service_name="svc", metrics_port=port, integrations="none", logs=False)
    try:
        assert "init_early_total 2.0" in scrape(port)
    finally:
        obskit.shutdown(5)


orders = obskit.counter("init_orders", "Orders", labels=["status"])


def test_obskit_capture_reads_values_and_raises_on_wrong_labels(obskit_capture: object) -> None:
    """Under obskit_capture a module-level metric records from zero and wrong labels raise ValueError."""
    orders.inc(status="ok")
    assert obskit_capture.metric("init_orders_total", status="ok") == 1  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"\['status'\]"):
        orders.inc(state="ok")


def test_obskit_capture_isolates_tests(obskit_capture: object) -> None:
    """A second test sees the module-level metric back at zero."""
    assert obskit_capture.metric("init_orders_total", status="ok") is None  # type: ignore[attr-defined]
    orders.inc(status="ok")
    assert obskit_capture.metric("init_orders_total", status="ok") == 1  # type: ignore[attr-defined]
