"""OTLP push: what the loopback receiver decodes (real protobuf) equals what /metrics shows."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import protocol_of
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from otlp_receiver import OTLPReceiver, attributes
from prometheus_client.parser import text_string_to_metric_families

from obskit._config import resolve
from obskit._metrics import _instruments as _metrics
from obskit._metrics import counter, gauge, histogram, start_metrics

CUMULATIVE = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    _metrics.reset()
    yield
    _metrics.reset()


def _start(rx: OTLPReceiver, interval_ms: str = "60000") -> Any:
    config = resolve({"otlp_endpoint": rx.endpoint, "otlp_protocol": protocol_of(rx), "metrics_port": 0,
                      "service_name": "checkout"}, environ={"OTEL_METRIC_EXPORT_INTERVAL": interval_ms})
    handle = start_metrics(config, Resource.create({"service.name": "checkout"}))
    assert handle is not None
    return handle


def _last(rx: OTLPReceiver) -> dict[str, Any]:
    request = rx.metrics_requests()[-1]
    return {m.name: m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body) for s in fam.samples}


def _record() -> tuple[int, int]:
    orders = counter("orders_processed", "Orders processed", labels=["status"])
    latency = histogram("payment_latency", "Payment call latency", unit="seconds", labels=["provider"])
    depth = gauge("queue_depth", "Items waiting", labels=["queue"])
    orders.inc(status="ok")
    orders.inc(3, status="failed")
    depth.set(7, queue="payments")
    latency.observe(0.003, provider="acme")
    with TracerProvider(sampler=ALWAYS_ON).get_tracer("t").start_as_current_span("s") as span:
        latency.observe(0.25, provider="acme")
        orders.inc(status="ok")
    ctx = span.get_span_context()
    return ctx.trace_id, ctx.span_id


def test_otlp_values_equal_scrape(receiver: OTLPReceiver) -> None:
    """Counter, histogram and gauge pushed over OTLP carry the values /metrics shows, cumulatively."""
    trace_id, span_id = _record()
    handle = _start(receiver)
    try:
        assert handle.force_flush(10)
        scraped = _scrape(handle.port)
        got = _last(receiver)
        orders = got["orders_processed"]
        assert orders.sum.is_monotonic and orders.sum.aggregation_temporality == CUMULATIVE
        by_status = {attributes(p.attributes)["status"]: p.as_double for p in orders.sum.data_points}
        assert by_status == {"ok": scraped[("orders_processed_total", (("status", "ok"),))],
                             "failed": scraped[("orders_processed_total", (("status", "failed"),))]}
        assert by_status == {"ok": 2, "failed": 3}

        lat = got["payment_latency"]
        assert lat.unit == "s" and lat.histogram.aggregation_temporality == CUMULATIVE
        point = lat.histogram.data_points[0]
        key = (("provider", "acme"),)
        assert point.count == scraped[("payment_latency_seconds_count", key)] == 2
        assert point.sum == pytest.approx(scraped[("payment_latency_seconds_sum", key)])
        assert list(point.explicit_bounds)[:3] == [0.005, 0.01, 0.025]
        assert sum(point.bucket_counts) == 2 and point.bucket_counts[0] == 1
        assert len(point.bucket_counts) == len(point.explicit_bounds) + 1

        depth = got["queue_depth"].gauge.data_points[0]
        assert depth.as_double == scraped[("queue_depth", (("queue", "payments"),))] == 7

        (ex,) = point.exemplars
        assert ex.trace_id == trace_id.to_bytes(16, "big") and ex.span_id == span_id.to_bytes(8, "big")
        assert ex.as_double == 0.25
        assert any(e.trace_id == trace_id.to_bytes(16, "big") for p in orders.sum.data_points
                   for e in p.exemplars)
    finally:
        assert handle.shutdown(10)


def test_otlp_resource_and_self_telemetry(receiver: OTLPReceiver) -> None:
    """Pushes carry the service resource with an instance id, and obskit's own counters."""
    counter("x_jobs").inc()
    handle = _start(receiver)
    try:
        assert handle.force_flush(10)
        (res,) = receiver.resources("metrics")[-1:]
        assert res["service.name"] == "checkout" and res["service.instance.id"]
        assert "obskit_export_failures" in _last(receiver)
    finally:
        handle.shutdown(10)


def test_periodic_push_uses_export_interval(receiver: OTLPReceiver) -> None:
    """With OTEL_METRIC_EXPORT_INTERVAL (ms) the push repeats without any flush call."""
    c = counter("x_periodic")
    c.inc()
    handle = _start(receiver, interval_ms="100")
    try:
        assert receiver.wait_for(lambda rx: len(rx.metrics_requests()) >= 2, timeout=10)
        c.inc()
        assert receiver.wait_for(
            lambda rx: _last(rx).get("x_periodic") is not None
            and _last(rx)["x_periodic"].sum.data_points[0].as_double == 2, timeout=10)
    finally:
        handle.shutdown(10)


def test_shutdown_pushes_final_values(receiver: OTLPReceiver) -> None:
    """Shutdown sends the last values before closing."""
    c = counter("x_final")
    handle = _start(receiver)
    c.inc(5)
    assert handle.shutdown(10)
    assert _last(receiver)["x_final"].sum.data_points[0].as_double == 5


def test_unresponsive_collector_fails_flush_and_is_counted() -> None:
    """A collector that never answers makes flush return False and counts an export failure."""
    import time

    from prometheus_client import REGISTRY

    with OTLPReceiver("http", mode="hang") as rx:
        config = resolve({"otlp_endpoint": rx.endpoint, "otlp_protocol": "http/protobuf"},
                         environ={"OBSKIT_EXPORT_TIMEOUT": "0.5"})
        handle = start_metrics(config, Resource.create({}))
        assert handle is not None
        assert handle.force_flush(1.0) is False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not REGISTRY.get_sample_value(
                "obskit_export_failures_total", {"signal": "metrics"}):
            time.sleep(0.05)
        handle.shutdown(0.5)
    assert REGISTRY.get_sample_value("obskit_export_failures_total", {"signal": "metrics"}) >= 1


def test_no_push_without_endpoint() -> None:
    """Without an endpoint there is no pusher; flush and shutdown succeed trivially."""
    handle = start_metrics(resolve({}, environ={}), Resource.create({}))
    assert handle is not None and handle.pusher is None
    assert handle.force_flush(1) and handle.shutdown(1)


def test_metrics_disabled_starts_nothing() -> None:
    """metrics=False starts neither server nor push."""
    config = resolve({"metrics": False, "metrics_port": 0}, environ={})
    assert start_metrics(config, Resource.create({})) is None
