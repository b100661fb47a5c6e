"""Per-span cost of ``obskit.span`` against a raw OpenTelemetry SDK span, same process, same run.

Both sides use a BatchSpanProcessor with an exporter that discards, so only span creation, context handling
and processing are compared. Run: ``python tests/benchmarks/bench_tracing.py``. Target: ratio <= 1.0.
"""

from __future__ import annotations

import gc
import io
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class Discard(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _best_ns(fn: Callable[[], None], n: int, rounds: int = 5) -> float:
    """Best of ``rounds`` timings of ``n`` calls, in ns per call (best-of filters scheduler noise)."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def run(n: int = 20_000, rounds: int = 9) -> dict[str, float]:
    import obskit
    from obskit.testing import reset

    reset()
    raw_provider = TracerProvider()
    raw_provider.add_span_processor(BatchSpanProcessor(Discard()))
    raw = raw_provider.get_tracer("bench")

    tel = obskit.init(service_name="bench", log_stream=io.StringIO(), metrics=False, integrations="none")
    assert tel.tracer_provider is not None
    tel.tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))

    def raw_span() -> None:
        with raw.start_as_current_span("op"):
            pass

    def obskit_span() -> None:
        with obskit.span("op"):
            pass

    def raw_span_attrs() -> None:
        with raw.start_as_current_span("op", attributes={"order_id": 42, "provider": "acme"}):
            pass

    def obskit_span_attrs() -> None:
        with obskit.span("op", order_id=42, provider="acme"):
            pass

    # Paired rounds: each round times raw then obskit back to back, so drift in machine load (the batch
    # processor's worker thread, other processes) hits both alike; the ratio is the median of the rounds'.
    out: dict[str, float] = {}
    for base, mine, label in (("raw", "obskit", "ratio"), ("raw_attrs", "obskit_attrs", "ratio_attrs")):
        fns = {"raw": raw_span, "obskit": obskit_span, "raw_attrs": raw_span_attrs,
               "obskit_attrs": obskit_span_attrs}
        ratios = []
        for _ in range(rounds):
            a = _best_ns(fns[base], n, rounds=1)
            b = _best_ns(fns[mine], n, rounds=1)
            ratios.append(b / a)
            out[base] = min(out.get(base, float("inf")), a)
            out[mine] = min(out.get(mine, float("inf")), b)
        out[label] = statistics.median(ratios)
    obskit.shutdown(timeout=2)
    raw_provider.shutdown()
    reset()
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    r = run(n)
    print(f"{'case':<28}{'raw SDK ns/op':>15}{'obskit ns/op':>15}{'ratio':>8}")
    print(f"{'span, no attributes':<28}{r['raw']:>15.0f}{r['obskit']:>15.0f}{r['ratio']:>8.2f}")
    attrs = (r["raw_attrs"], r["obskit_attrs"], r["ratio_attrs"])
    print(f"{'span, 2 attributes':<28}{attrs[0]:>15.0f}{attrs[1]:>15.0f}{attrs[2]:>8.2f}")
    print("ns/op: best round; ratio: median over paired rounds. Target: ratio <= 1.00 (the facade is free)")


if __name__ == "__main__":
    main()
