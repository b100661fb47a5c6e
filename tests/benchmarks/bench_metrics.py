"""Per-call cost of obskit metrics vs prometheus-client and the OpenTelemetry SDK, same labels, same run.

Each case runs ``n`` calls per round; rounds are interleaved and the best kept, so a noisy neighbour skews
no side. Ratios, not absolute times, are the result: targets are obskit <= 1.5x prometheus-client,
>= 3x cheaper than the OTel SDK, and an observation with an exemplar (inside a sampled span) <= 2x one
without. Run: ``python tests/benchmarks/bench_metrics.py [calls_per_round]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import prometheus_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from obskit._metrics import _instruments as _metrics


def _time(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / n


def run(n: int = 200_000, rounds: int = 5) -> dict[str, float]:
    """ns per call for every case (best of ``rounds``), plus the ratios the targets are stated in."""
    _metrics.reset()
    registry = prometheus_client.CollectorRegistry()
    p_counter = prometheus_client.Counter("bench_p", "p", ["status", "region"], registry=registry)
    p_hist = prometheus_client.Histogram("bench_ph", "p", ["provider"], registry=registry)
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    o_counter = meter.create_counter("bench_o")
    o_hist = meter.create_histogram("bench_oh")
    counter = _metrics.counter("bench_obskit", labels=["status", "region"])
    hist = _metrics.histogram("bench_obskit_h", unit="seconds", labels=["provider"])
    tracer = TracerProvider().get_tracer("bench")
    rng = range(n)

    def c_obskit() -> None:
        inc = counter.inc
        for _ in rng:
            inc(status="ok", region="eu")

    def c_prom() -> None:
        labels = p_counter.labels
        for _ in rng:
            labels(status="ok", region="eu").inc()

    def c_otel() -> None:
        add = o_counter.add
        for _ in rng:
            add(1, {"status": "ok", "region": "eu"})

    def h_obskit() -> None:
        observe = hist.observe
        for _ in rng:
            observe(0.25, provider="acme")

    def h_prom() -> None:
        labels = p_hist.labels
        for _ in rng:
            labels(provider="acme").observe(0.25)

    def h_otel() -> None:
        record = o_hist.record
        for _ in rng:
            record(0.25, {"provider": "acme"})

    def c_obskit_span() -> None:
        inc = counter.inc
        with tracer.start_as_current_span("s"):
            for _ in rng:
                inc(status="ok", region="eu")

    def h_obskit_span() -> None:
        observe = hist.observe
        with tracer.start_as_current_span("s"):
            for _ in rng:
                observe(0.25, provider="acme")

    cases = {"counter_obskit": c_obskit, "counter_prometheus": c_prom, "counter_otel_sdk": c_otel,
             "histogram_obskit": h_obskit, "histogram_prometheus": h_prom, "histogram_otel_sdk": h_otel,
             "counter_obskit_exemplar": c_obskit_span, "histogram_obskit_exemplar": h_obskit_span}
    best = {name: float("inf") for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            best[name] = min(best[name], _time(fn, n))
    out = dict(best)
    out["counter_vs_prometheus"] = best["counter_obskit"] / best["counter_prometheus"]
    out["counter_otel_over_obskit"] = best["counter_otel_sdk"] / best["counter_obskit"]
    out["histogram_vs_prometheus"] = best["histogram_obskit"] / best["histogram_prometheus"]
    out["histogram_otel_over_obskit"] = best["histogram_otel_sdk"] / best["histogram_obskit"]
    out["exemplar_over_plain"] = best["histogram_obskit_exemplar"] / best["histogram_obskit"]
    out["counter_exemplar_over_plain"] = best["counter_obskit_exemplar"] / best["counter_obskit"]
    _metrics.reset()
    return out


def main() -> None:
    """Print the table."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    r = run(n)
    print(f"{'case':<28}{'ns/call':>10}")
    for key in ("counter_obskit", "counter_prometheus", "counter_otel_sdk", "histogram_obskit",
                "histogram_prometheus", "histogram_otel_sdk", "counter_obskit_exemplar",
                "histogram_obskit_exemplar"):
        print(f"{key:<28}{r[key]:>10.0f}")
    print()
    print(f"{'ratio':<34}{'value':>8}  target")
    for key, target in (("counter_vs_prometheus", "<= 1.5"), ("histogram_vs_prometheus", "<= 1.5"),
                        ("counter_otel_over_obskit", ">= 3"), ("histogram_otel_over_obskit", ">= 3"),
                        ("exemplar_over_plain", "<= 2"), ("counter_exemplar_over_plain", "(info)")):
        print(f"{key:<34}{r[key]:>8.2f}  {target}")


if __name__ == "__main__":
    main()
