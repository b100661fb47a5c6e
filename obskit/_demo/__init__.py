"""``obskit demo``: the essay's payment example, end to end, in a few seconds and with no setup.

A checkout service takes orders; its payment provider works, fails, then recovers. A circuit breaker with a
fallback that queues the payment guards the call. Every line printed inside a span carries its trace and span
IDs; stdlib logging goes through the same pipeline; metrics count what happened. With
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the same run feeds a real collector (Jaeger, Prometheus, Loki).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import IO, Any, cast

import obskit
from obskit._config import OPTIONS
from obskit._demo._tally import Tally, metric_series, where_to_look


class PaymentProvider:
    """A stand-in for a remote payment API whose availability the demo switches."""

    def __init__(self) -> None:
        self.up = True

    def process(self, order: dict[str, Any]) -> str:
        time.sleep(0.002)
        if not self.up:
            raise ConnectionError("payment provider timed out")
        return f"pay_{order['id']:04d}"


def run(*, log_format: str | None = None, orders: int = 12) -> int:
    """Run the scenario; returns a process exit code."""
    # The demo's own name only when the environment names none (OBSKIT_SERVICE_NAME or OTEL_SERVICE_NAME).
    named = any(os.environ.get(var, "").strip()
                for var in next(o for o in OPTIONS if o.name == "service_name").variables)
    tally = Tally(sys.stdout).__enter__()
    tel = obskit.init(service_name=None if named else "checkout-demo",
                      service_version=obskit.__version__, environment="demo", log_format=log_format,
                      log_stream=cast(IO[str], tally.stream), span_processors=[tally.spans])
    log = obskit.get_logger("demo.checkout")
    db_log = logging.getLogger("demo.db")  # a stdlib logger, as libraries use
    processed = obskit.counter("demo_orders_processed", "Orders processed by outcome", labels=["status"])
    latency = obskit.histogram("demo_payment_latency", "Payment call latency", unit="seconds",
                               labels=["provider"])
    provider = PaymentProvider()
    payment_queue: list[dict[str, Any]] = []

    def fallback_payment(order: dict[str, Any], exc: BaseException) -> str:
        log.warning("payment service unavailable, queuing for retry", order_id=order["id"], error=str(exc))
        payment_queue.append(order)
        return "queued"

    breaker = obskit.CircuitBreaker("payment_service", fallback=fallback_payment, minimum_calls=3,
                                    window=6, wait_in_open=0.3, half_open_calls=1)

    @breaker
    @obskit.traced(name="payment.process")
    def process_payment(order: dict[str, Any]) -> str:
        with latency.time(provider="acme"):
            return provider.process(order)

    log.info("demo starting", orders=orders, otlp_endpoint=tel.config.otlp_endpoint or "none")
    trace_ids: list[str] = []
    tally.start_clock()
    for n in range(1, orders + 1):
        if n == orders // 3 + 1:
            provider.up = False
            log.error("payment provider outage begins")
        if n == 2 * orders // 3 + 1:
            provider.up = True
            log.info("payment provider recovered; waiting for the breaker to probe")
            time.sleep(0.35)
        order = {"id": n, "amount": 10 * n, "card_number": "4111111111111111"}
        with obskit.span("checkout", order_id=n) as sp:
            trace_ids.append(f"{sp.get_span_context().trace_id:032x}")
            log.info("order received", order_id=n, amount=order["amount"], card_number=order["card_number"])
            db_log.info("reserved inventory for order %s", n)
            try:
                if n == 2:
                    raise ValueError("amount exceeds the card's limit")
                result = process_payment(order)
            except ValueError:
                log.exception("order rejected", order_id=n)
                processed.inc(status="rejected")
                continue
            status = "queued" if result == "queued" else "charged"
            processed.inc(status=status)
            log.info("order completed", order_id=n, status=status, breaker=breaker.state.value)
    log.info("demo finished", queued_for_retry=len(payment_queue), breaker=breaker.state.value)

    series = metric_series()
    flushed = obskit.shutdown(timeout=5.0)
    tally.__exit__()
    out = sys.stderr
    out.write("\n--- obskit demo ---\n")
    out.write(f"{orders} orders, {len(payment_queue)} queued for retry by the fallback, "
              f"breaker now {breaker.state.value}.\n")
    out.write(f"produced {tally.spans.count} spans, {tally.stream.lines} log lines and {series} metric "
              "series (on /metrics with OBSKIT_METRICS_PORT).\n")
    for line in tally.breaker_story("payment_service", breaker.state.value):
        out.write(line + "\n")
    out.write(f"first trace: {trace_ids[0]}  last trace: {trace_ids[-1]}\n")
    look = where_to_look(tel.config)
    if look:
        out.write(f"exported ({'flushed' if flushed else 'flush timed out'}); {look[0]}\n")
        for line in look[1:]:
            out.write(line + "\n")
    else:
        out.write("No collector configured: set OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 to send "
                  "the same run to one.\n")
    return 0
