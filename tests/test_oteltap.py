"""A receiver nobody here wrote: obskit's OTLP/HTTP export read by ``oteltap`` (an independent receiver from
the package index, a native OTLP decoder behind a Python API), so obskit is not only checked against the
project's own loopback receiver.

oteltap hands back each span, log record and metric without its resource; the resource is checked on what
oteltap re-emits (its own re-encoding of the requests it decoded), received by the project's receiver.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from otlp_receiver import OTLPReceiver

oteltap = pytest.importorskip("oteltap")
pytestmark = pytest.mark.slow

EMITTER = textwrap.dedent("""
    import sys
    import obskit

    obskit.init(service_name="tap-checkout", service_version="1.4.2", otlp_endpoint=sys.argv[1],
                otlp_protocol="http/protobuf")
    log = obskit.get_logger("tap.checkout")
    latency = obskit.histogram("tap_payment_latency", "Payment latency", unit="seconds", labels=["provider"])
    orders = obskit.counter("tap_orders", "Orders", labels=["status"])
    log.info("starting")                                   # outside any span: no trace id
    with obskit.span("checkout", order_id=7):
        with obskit.span("charge"):
            log.warning("card declined once, retrying", order_id=7)
            latency.observe(0.25, provider="acme")
            orders.inc(status="ok")
            try:
                raise ValueError("amount exceeds the limit")
            except ValueError:
                log.exception("charge failed", order_id=7)
    sys.exit(0 if obskit.shutdown(10) else 3)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_oteltap_receives_traces_logs_and_metrics_linked_by_trace_id(tmp_path: Path) -> None:
    """Spans, log records (with severity) and metrics (with exemplars) reach oteltap, all carrying the
    trace id of the span they were made in; the resource (service, version, OTEL_RESOURCE_ATTRIBUTES)
    survives oteltap's decoding and re-emission."""
    from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings

    port = free_port()
    script = tmp_path / "emit.py"
    script.write_text(EMITTER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    env["OTEL_RESOURCE_ATTRIBUTES"] = "team=payments,deployment.environment.name=test"
    with OTLPReceiver("http") as rx:
        settings = OtelTapHttpProtobufReceiverSettings(
            http_port=port, reemit_traces_to_url=f"{rx.endpoint}/v1/traces",
            reemit_logs_to_url=f"{rx.endpoint}/v1/logs", reemit_metrics_to_url=f"{rx.endpoint}/v1/metrics")
        async with OtelTapHttpProtobufReceiver(settings) as tap:
            wanted = {
                "checkout": tap.await_trace(lambda s: s.name == "checkout", timeout=30),
                "charge": tap.await_trace(lambda s: s.name == "charge", timeout=30),
                "warning": tap.await_log(lambda r: r.body.string_value == "card declined once, retrying",
                                         timeout=30),
                "error": tap.await_log(lambda r: r.body.string_value == "charge failed", timeout=30),
                "outside": tap.await_log(lambda r: r.body.string_value == "starting", timeout=30),
                "latency": tap.await_metric(lambda m: m.name == "tap_payment_latency", timeout=30),
                "orders": tap.await_metric(lambda m: m.name == "tap_orders", timeout=30),
            }
            futures = {k: asyncio.ensure_future(v) for k, v in wanted.items()}
            proc = await asyncio.to_thread(subprocess.run, [sys.executable, str(script), f"http://127.0.0.1:{port}"],
                                           capture_output=True, text=True, timeout=120, env=env)
            assert proc.returncode == 0, proc.stderr[-3000:]
            got = dict(zip(futures, await asyncio.gather(*futures.values()), strict=True))
        assert rx.wait_for(lambda r: bool(r.resources("traces") and r.resources("logs")
                                          and r.resources("metrics")), timeout=10)

    checkout, charge = got["checkout"], got["charge"]
    trace_id = checkout.trace_id
    assert len(trace_id) == 16 and trace_id != bytes(16)
    assert charge.trace_id == trace_id and charge.parent_span_id == checkout.span_id
    assert {a.key: a.value.int_value for a in checkout.attributes}["order_id"] == 7

    warning, error, outside = got["warning"], got["error"], got["outside"]
    assert warning.trace_id == trace_id and warning.span_id == charge.span_id
    assert warning.severity_number == 13 and warning.severity_text.startswith("WARN")  # SEVERITY_NUMBER_WARN
    assert error.trace_id == trace_id and error.severity_number == 17  # SEVERITY_NUMBER_ERROR
    assert "ValueError" in {a.key: a.value.string_value for a in error.attributes}.get("exception.type", "")
    assert outside.trace_id == b"" and outside.severity_number == 9  # INFO, outside any span

    (point,) = got["latency"].histogram.data_points
    assert point.count == 1 and point.sum == 0.25
    assert [(e.trace_id, e.span_id) for e in point.exemplars] == [(trace_id, charge.span_id)]
    (counted,) = [p for p in got["orders"].sum.data_points if p.as_double == 1.0]
    assert [e.trace_id for e in counted.exemplars] == [trace_id]

    for signal in ("traces", "logs", "metrics"):
        resource = rx.resources(signal)[0]
        assert resource["service.name"] == "tap-checkout" and resource["service.version"] == "1.4.2"
        assert resource["team"] == "payments" and resource["deployment.environment.name"] == "test"
