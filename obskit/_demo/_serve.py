"""``obskit demo --serve``: the payment scenario as a long-running service that fills every dashboard.

The checkout service (``_shop``) answers HTTP on ``--port``; customers (``_world``) order at a
steady rate; the payment provider has an outage every ``--outage-every`` seconds, so the breaker opens,
probes and closes again while you watch. ``/metrics`` is served on ``--metrics-port`` (default
``OBSKIT_METRICS_PORT``, else 9464). It runs until Ctrl-C (or SIGTERM) or ``--duration`` seconds, then prints
what it produced.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import IO, Any, cast

import obskit
from obskit._config import OPTIONS
from obskit._demo._tally import Tally, metric_series, where_to_look

__all__ = ["serve"]

DEFAULT_METRICS_PORT = 9464


def _named(option: str) -> bool:
    variables = next(o for o in OPTIONS if o.name == option).variables
    return any(os.environ.get(var, "").strip() for var in variables)


def _wait(stop: threading.Event, duration: float | None) -> None:
    """Until ``duration`` passes, SIGTERM or Ctrl-C."""
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            stop.wait(0.5 if left is None else min(left, 0.5))
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def serve(*, host: str = "127.0.0.1", port: int = 8000, metrics_port: int | None = None,
          duration: float | None = None, outage_every: float = 60.0, log_format: str | None = None) -> int:
    """Run the service until stopped; returns a process exit code."""
    from ._shop import CheckoutService
    from ._world import Customers, PaymentProvider

    if metrics_port is None and not _named("metrics_port"):
        metrics_port = DEFAULT_METRICS_PORT
    tally = Tally(sys.stdout).__enter__()
    tel = obskit.init(service_name=None if _named("service_name") else "checkout-demo",
                      service_version=obskit.__version__, environment="demo", log_format=log_format,
                      metrics_port=metrics_port, log_stream=cast(IO[str], tally.stream),
                      span_processors=[tally.spans])
    log = obskit.get_logger("demo.serve")
    served = getattr(tel._metrics, "port", None)
    provider = PaymentProvider(max(outage_every, 2.0), obskit.get_logger("demo.provider"))
    shop = CheckoutService(host, port, provider.port)
    customers = Customers(shop.port)
    out = sys.stderr
    out.write(f"obskit demo --serve: {tel.config.service_name} on http://{host}:{shop.port} "
              "(POST /orders, GET /orders/{id}, GET /health)\n")
    out.write(f"  /metrics on http://{tel.config.metrics_addr}:{served}/metrics\n" if served else
              "  /metrics is not served (the port could not be bound; see the warning above)\n")
    out.write(f"  payment provider outage every {provider.every:g}s for {provider.outage:g}s; "
              + (f"stopping after {duration:g}s\n" if duration is not None else "Ctrl-C to stop\n"))
    out.flush()
    log.info("demo service started", port=shop.port, metrics_port=served, outage_every=provider.every)
    tally.start_clock()
    stop = threading.Event()
    provider.start()
    shop.start()
    customers.start()
    try:
        _wait(stop, duration)
    finally:
        customers.stop()
        shop.stop()
        provider.stop()
        log.info("demo service stopping", requests=customers.sent, queued_for_retry=len(shop.queued),
                 breaker=shop.breaker.state.value)
        series = metric_series()
        flushed = obskit.shutdown(timeout=5.0)
        tally.__exit__()
    statuses = ", ".join(f"{n} x {code or 'no answer'}" for code, n in sorted(customers.by_status.items()))
    out.write("\n--- obskit demo --serve ---\n")
    out.write(f"{customers.sent} requests ({statuses}); {len(shop.queued)} payments queued by the "
              "fallback.\n")
    out.write(f"produced {tally.spans.count} spans, {tally.stream.lines} log lines and {series} metric "
              "series.\n")
    for line in tally.breaker_story("payment_service", shop.breaker.state.value):
        out.write(line + "\n")
    look = where_to_look(tel.config)
    if look:
        out.write(f"exported ({'flushed' if flushed else 'flush timed out'}); {look[0]}\n")
        for line in look[1:]:
            out.write(line + "\n")
    return 0
