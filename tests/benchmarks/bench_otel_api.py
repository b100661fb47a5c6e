"""Per-call cost of recording through the OpenTelemetry metrics API on obskit, against prometheus-client's
``.labels(...).observe()`` and the OpenTelemetry SDK's ``Histogram.record``: same attributes, same run.

Targets: obskit's API histogram <= 1.5x prometheus-client, and >= 3x cheaper than the SDK. Rounds are
interleaved and the best kept. Every side records the same n observations, and each prints how many its
store holds afterwards (delivered/emitted), so a side that silently dropped work cannot look fast.
Run: ``python tests/benchmarks/bench_otel_api.py [calls_per_round]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import prometheus_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from obskit._metrics import _otel_api

ATTRS = {"http.request.method": "GET", "http.route": "/items/{item_id}", "http.response.status_code": 200,
         "url.scheme": "http"}


def _time(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / n


def run(n: int = 200_000, rounds: int = 5) -> dict[str, float]:
    """ns per call for each side (best of ``rounds``), the ratios, and the observation counts each holds."""
    _otel_api.reset()
    registry = prometheus_client.CollectorRegistry()
    p_hist = prometheus_client.Histogram("bench_api_p", "p", ["method", "route", "status", "scheme"],
                                         registry=registry)
    reader = InMemoryMetricReader()
    sdk_hist = MeterProvider(metric_readers=[reader]).get_meter("bench").create_histogram(
        "bench.api.sdk", unit="s")
    ours = _otel_api.ObskitMeterProvider().get_meter("bench").create_histogram("bench.api.obskit", unit="s")
    values = [0.001 * (i % 700) for i in range(n)]

    def prom() -> None:
        labels = p_hist.labels
        for v in values:
            labels("GET", "/items/{item_id}", "200", "http").observe(v)

    def sdk() -> None:
        record = sdk_hist.record
        for v in values:
            record(v, ATTRS)

    def obskit() -> None:
        record = ours.record
        for v in values:
            record(v, ATTRS)

    best = {"prometheus": float("inf"), "otel_sdk": float("inf"), "obskit": float("inf")}
    for _ in range(rounds):
        for name, fn in (("prometheus", prom), ("otel_sdk", sdk), ("obskit", obskit)):
            best[name] = min(best[name], _time(fn, n))
    emitted = float(n * rounds)
    held: dict[str, Any] = {
        "prometheus": registry.get_sample_value(
            "bench_api_p_count", {"method": "GET", "route": "/items/{item_id}", "status": "200",
                                  "scheme": "http"}),
        "obskit": sum(s.value for fam in _otel_api.api_instruments() if fam.otel_name == "bench.api.obskit"
                      for f in fam.families() for s in f.samples if s.name.endswith("_count")),
    }
    data = reader.get_metrics_data()
    held["otel_sdk"] = sum(p.count for rm in data.resource_metrics for sm in rm.scope_metrics
                           for m in sm.metrics for p in m.data.data_points)
    return {
        "prometheus_ns": best["prometheus"], "otel_sdk_ns": best["otel_sdk"], "obskit_ns": best["obskit"],
        "vs_prometheus": best["obskit"] / best["prometheus"],
        "sdk_over_obskit": best["otel_sdk"] / best["obskit"],
        "emitted": emitted, "prometheus_held": float(held["prometheus"] or 0),
        "otel_sdk_held": float(held["otel_sdk"]), "obskit_held": float(held["obskit"]),
    }


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 200_000
    r = run(n)
    emitted = int(r["emitted"])
    print(f"{'side':<28}{'ns/call':>10}{'held/emitted':>20}")
    print(f"{'prometheus-client labels().observe':<28}{r['prometheus_ns']:>10.0f}"
          f"{int(r['prometheus_held']):>12}/{emitted}")
    for label, key in (("OTel SDK Histogram.record", "otel_sdk"), ("obskit OTel API record", "obskit")):
        print(f"{label:<28}{r[key + '_ns']:>10.0f}{int(r[key + '_held']):>12}/{emitted}")
    print(f"obskit / prometheus-client: {r['vs_prometheus']:.2f}x (target <= 1.5)")
    print(f"OTel SDK / obskit:          {r['sdk_over_obskit']:.2f}x (target >= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
