"""A burst of spans, then shutdown: how many reach the collector through obskit and through the raw SDK.

Both sides export over OTLP/gRPC to the same loopback collector (``tests/otlp_receiver.py``, decoding real
protobuf), in the same run, in paired rounds whose order alternates so that neither side always goes first.
The raw side is what a user of the SDK writes: ``TracerProvider`` + ``BatchSpanProcessor`` +
``OTLPSpanExporter``, all built before the burst. Spans beyond the queue are dropped on both sides; obskit
counts its own (``obskit_telemetry_dropped_total``), so delivered + dropped must equal emitted.
Run: ``python tests/benchmarks/bench_burst.py [spans] [rounds]``. Target: obskit delivers >= the raw SDK.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

sys.path.insert(0, str(Path(__file__).parent.parent))

from otlp_receiver import OTLPReceiver, attributes


class _Receiver(OTLPReceiver):
    """The loopback collector, noting when each service's first spans arrived."""

    def __init__(self) -> None:
        super().__init__("grpc")
        self.first: dict[str, float] = {}

    def _record(self, signal: str, request: Any, headers: dict[str, str]) -> None:
        now = time.perf_counter()
        for rs in getattr(request, "resource_spans", ()):
            self.first.setdefault(str(attributes(rs.resource.attributes).get("service.name")), now)
        super()._record(signal, request, headers)

    def delivered(self, service: str) -> int:
        return sum(len(ss.spans) for r in self.requests("traces") for rs in r.resource_spans
                   if attributes(rs.resource.attributes).get("service.name") == service
                   for ss in rs.scope_spans)


def _raw(rx: _Receiver, service: str, n: int) -> dict[str, float]:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=rx.endpoint, insecure=True)))
    tracer = provider.get_tracer("bench")
    start = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span("op"):
            pass
    emitted = time.perf_counter()
    provider.shutdown()
    done = time.perf_counter()
    return {"emit_s": emitted - start, "shutdown_s": done - emitted,
            "first_export_s": rx.first.get(service, done) - start, "delivered": rx.delivered(service)}


def _obskit(rx: _Receiver, service: str, n: int) -> dict[str, float]:
    import obskit
    from obskit._runtime import _health

    _health.reset()
    obskit.init(service_name=service, otlp_endpoint=rx.endpoint, otlp_protocol="grpc",
                log_stream=io.StringIO(), metrics=False, integrations="none")
    start = time.perf_counter()
    for _ in range(n):
        with obskit.span("op"):
            pass
    emitted = time.perf_counter()
    obskit.shutdown(timeout=60)
    done = time.perf_counter()
    return {"emit_s": emitted - start, "shutdown_s": done - emitted,
            "first_export_s": rx.first.get(service, done) - start, "delivered": rx.delivered(service),
            "dropped": _health.counts().get(("dropped", "traces"), 0)}


def run(n: int = 50_000, rounds: int = 3) -> dict[str, float]:
    """Paired rounds; per side the median round's figures, and the median of the rounds' delivered ratios."""
    from obskit.testing import reset

    reset()
    per_side: dict[str, list[dict[str, float]]] = {"raw": [], "obskit": []}
    ratios = []
    with _Receiver() as rx:
        for r in range(rounds):
            sides = [("raw", _raw), ("obskit", _obskit)]
            got = {name: fn(rx, f"{name}-{r}", n) for name, fn in (sides if r % 2 == 0 else sides[::-1])}
            reset()
            for name, figures in got.items():
                per_side[name].append(figures)
            ratios.append(got["obskit"]["delivered"] / max(got["raw"]["delivered"], 1))
    out: dict[str, float] = {"emitted": float(n), "ratio": statistics.median(ratios)}
    for name, runs in per_side.items():
        for key in runs[0]:
            out[f"{name}_{key}"] = statistics.median(f[key] for f in runs)
        out[f"{name}_delivered_fraction"] = out[f"{name}_delivered"] / n
    out["obskit_accounted_fraction"] = statistics.median((f["delivered"] + f["dropped"]) / n
                                                         for f in per_side["obskit"])
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 50_000
    rounds = int(args[1]) if len(args) > 1 else 3
    r = run(n, rounds)
    emitted = int(r["emitted"])
    print(f"{emitted} spans as fast as possible, then shutdown(); OTLP/gRPC to one loopback collector; "
          f"{rounds} paired rounds (median)")
    print(f"{'side':<9}{'emit s':>8}{'1st export s':>14}{'shutdown s':>12}   {'delivered/emitted':<22}")
    for side, label in (("raw", "raw SDK"), ("obskit", "obskit")):
        delivered, fraction = int(r[f"{side}_delivered"]), r[f"{side}_delivered_fraction"]
        print(f"{label:<9}{r[f'{side}_emit_s']:>8.2f}{r[f'{side}_first_export_s']:>14.3f}"
              f"{r[f'{side}_shutdown_s']:>12.2f}   {delivered}/{emitted} ({fraction:.0%})")
    print(f"obskit dropped and counted {int(r['obskit_dropped'])}; delivered + dropped = "
          f"{r['obskit_accounted_fraction']:.0%} of emitted")
    print(f"ratio obskit/raw delivered: {r['ratio']:.2f} (median of rounds). Target: >= 1.00")
    return 0


if __name__ == "__main__":
    sys.exit(main())
