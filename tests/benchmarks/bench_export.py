"""What exporting a span and a log record costs: the SDK's OTLP encoder against obskit's wire encoder
(``obskit/_runtime/_wire.py``), same process, same run, same items, rounds interleaved and the best kept.

The items are what a service sends: HTTP server spans with the 11 attributes of the stable HTTP conventions
(path and client port vary per request) and log records with a message, five attributes and the trace
context, both on obskit's own resource, made by the real SDK. Three figures per signal:

- encode: the request bytes of a batch (``encode_spans(batch).SerializePartialToString()`` against
  ``_wire.spans_request``), per item, in CPU time of the encoding thread (what the export thread pays; a
  busy machine stretches wall time, not this); ``*_ratio`` is obskit over SDK (lower is better);
- gRPC: the request message the gRPC exporter hands to its channel (the SDK's ``encode_spans`` against
  obskit's bytes parsed by upb), per item, CPU time likewise;
- export: the whole HTTP export to a loopback collector (``tests/otlp_receiver.py``) with the SDK's
  exporter and with the one obskit builds, per item in wall time (the collector decodes in the same
  process), with what the collector decoded over what was sent.

Run: ``python tests/benchmarks/bench_export.py [items] [rounds]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))

from otlp_receiver import OTLPReceiver


def _best_us(fn: Callable[[], object], items: int, rounds: int,
             clock: Callable[[], int] = time.perf_counter_ns) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = clock()
        fn()
        best = min(best, (clock() - start) / items / 1000)
    return best


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _resource() -> Any:
    from obskit._config import resolve
    from obskit._runtime._resource import build_resource

    return build_resource(resolve({"service_name": "bench-export"}, {}))


def _spans(n: int, resource: Any) -> list[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("opentelemetry.instrumentation.asgi", "0.66b2")
    for i in range(n):
        with tracer.start_as_current_span("GET /items/{item_id}", kind=SpanKind.SERVER, attributes={
            "http.request.method": "GET", "url.path": f"/items/{i % 500}", "url.scheme": "http",
            "http.route": "/items/{item_id}", "server.address": "127.0.0.1", "server.port": 8000,
            "network.protocol.version": "1.1", "user_agent.original": "wrk/4.2.0",
            "client.address": "127.0.0.1", "client.port": 40000 + i % 20000,
        }) as span:
            span.set_attribute("http.response.status_code", 200 if i % 50 else 500)
            if i % 50 == 0:
                span.set_status(Status(StatusCode.ERROR))
    return list(memory.get_finished_spans())


def _log_records(n: int, resource: Any) -> list[Any]:
    from opentelemetry import trace
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("obskit")
    for i in range(n):
        ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(
            0x5B8EFFF798038103D269B633813FC60C + i, 0xEEE19B7EC3C1B174 + i, False, TraceFlags(1))))
        logger.emit(context=ctx, severity_number=SeverityNumber.INFO, severity_text="INFO",
                    body="charging card", attributes={
                        "logger": "shop.payments", "order_id": 1000 + i, "amount_cents": 4999,
                        "code.function.name": "charge", "code.line.number": 42})
    return list(memory.get_finished_logs())


def _export(exporter: Any, batches: list[Sequence[Any]]) -> None:
    for batch in batches:
        exporter.export(batch)


def run(n: int = 2048, rounds: int = 5, batch: int = 512) -> dict[str, float]:
    """µs per span and per log record, SDK and obskit (encode, gRPC message, HTTP export), and what the
    collector received over what was sent."""
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from obskit._config import resolve
    from obskit._runtime import _wire
    from obskit._runtime._otlp_build import build_otlp_exporter

    resource = _resource()
    spans, records = _spans(n, resource), _log_records(n, resource)
    span_batches, record_batches = _batches(spans, batch), _batches(records, batch)
    assert all(_wire.spans_request(b) == encode_spans(b).SerializeToString() for b in span_batches)
    assert all(_wire.logs_request(b) == encode_logs(b).SerializeToString() for b in record_batches)

    sides: dict[str, Callable[[], object]] = {
        "span_sdk": lambda: [encode_spans(b).SerializePartialToString() for b in span_batches],
        "span_obskit": lambda: [_wire.spans_request(b) for b in span_batches],
        "span_grpc_sdk": lambda: [encode_spans(b) for b in span_batches],
        "span_grpc_obskit": lambda: [ExportTraceServiceRequest.FromString(_wire.spans_request(b))
                                     for b in span_batches],
        "log_sdk": lambda: [encode_logs(b).SerializeToString() for b in record_batches],
        "log_obskit": lambda: [_wire.logs_request(b) for b in record_batches],
        "log_grpc_sdk": lambda: [encode_logs(b) for b in record_batches],
        "log_grpc_obskit": lambda: [ExportLogsServiceRequest.FromString(_wire.logs_request(b))
                                    for b in record_batches],
    }
    best = dict.fromkeys(sides, float("inf"))
    for _ in range(rounds):
        for name, fn in sides.items():
            best[name] = min(best[name], _best_us(fn, n, 1, time.thread_time_ns))

    out: dict[str, float] = {f"{k}_us": v for k, v in best.items()}
    for signal in ("span", "log"):
        out[f"{signal}_ratio"] = best[f"{signal}_obskit"] / best[f"{signal}_sdk"]
        out[f"{signal}_grpc_ratio"] = best[f"{signal}_grpc_obskit"] / best[f"{signal}_grpc_sdk"]

    # The whole HTTP export, to a loopback collector per side.
    for side in ("sdk", "obskit"):
        with OTLPReceiver("http") as rx:
            if side == "sdk":
                span_exporter: Any = OTLPSpanExporter(endpoint=f"{rx.endpoint}/v1/traces")
                log_exporter: Any = OTLPLogExporter(endpoint=f"{rx.endpoint}/v1/logs")
            else:
                config = resolve({"service_name": "bench-export", "otlp_endpoint": rx.endpoint,
                                  "otlp_protocol": "http/protobuf"}, {})
                span_exporter = build_otlp_exporter("traces", config)
                log_exporter = build_otlp_exporter("logs", config)
            out[f"export_span_{side}_us"] = _best_us(
                lambda e=span_exporter: _export(e, span_batches), n, rounds)
            out[f"export_log_{side}_us"] = _best_us(
                lambda e=log_exporter: _export(e, record_batches), n, rounds)
            span_exporter.shutdown()
            log_exporter.shutdown()
            out[f"export_span_{side}_delivered"] = float(len(rx.spans()))
            out[f"export_log_{side}_delivered"] = float(len(rx.log_records()))
    out["export_span_ratio"] = out["export_span_obskit_us"] / out["export_span_sdk_us"]
    out["export_log_ratio"] = out["export_log_obskit_us"] / out["export_log_sdk_us"]
    out["export_span_emitted"] = out["export_log_emitted"] = float(n * rounds)
    return out


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2048
    rounds = int(argv[1]) if len(argv) > 1 else 5
    r = run(n, rounds)
    print(f"{'per item, µs':<34}{'SDK':>9}{'obskit':>9}{'ratio':>8}")
    for signal, label in (("span", "HTTP server span (11 attributes)"), ("log", "log record (5 attributes)")):
        print(f"{label:<34}")
        for what, key in (("  encode (request bytes)", signal), ("  gRPC request message", f"{signal}_grpc"),
                          ("  HTTP export, loopback", f"export_{signal}")):
            sdk, obskit, ratio = r[key + "_sdk_us"], r[key + "_obskit_us"], r[key + "_ratio"]
            print(f"{what:<34}{sdk:>9.2f}{obskit:>9.2f}{ratio:>8.3f}")
        emitted = int(r[f"export_{signal}_emitted"])
        print(f"  delivered/emitted: SDK {int(r[f'export_{signal}_sdk_delivered'])}/{emitted}, "
              f"obskit {int(r[f'export_{signal}_obskit_delivered'])}/{emitted}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
