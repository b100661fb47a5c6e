"""Per-line cost of an obskit JSON log line, against plain structlog and with OTLP export on.

(a) obskit JSON line, correlated (trace_id/span_id of a recording span), redaction on, lines back to back;
(b) plain structlog, not correlated, with structlog's own fastest JSON setup: ``JSONRenderer`` serialising
    with ``orjson`` (as obskit does) into a ``BytesLogger``. Target: a/b <= 1;
(c) for information: the same line from stdlib ``logging`` through obskit's root handler;
(d) line (a) as a service logs it: requests of 5 lines, each request then waiting 1 ms for I/O; only the
    log calls are timed;
(e) the same requests with OTLP log export on: obskit's own provider (batch processor, exporter guard) with
    the network exporter replaced by one that counts. The records are built on the bridge's worker, which
    runs while the caller logs (competing for the interpreter) and while it waits. Target: e/d <= 2;
(f) line (a) with OTLP export on, back to back: no waiting, so the worker can only run by taking the
    interpreter from the caller, and the bounded queue drops what it cannot keep (counted).

Every figure comes with delivered/emitted: lines that reached the stream (a-d), records that reached the
exporter (e, f; what is still queued when a timing ends is flushed, untimed, and counted), over lines
logged. All variants run in the same process, in paired rounds (each round times every variant back to
back); ns/line is the best round, a ratio the median of the rounds' ratios.
Run: ``python tests/benchmarks/bench_logging.py [lines_per_round]``.
"""

from __future__ import annotations

import gc
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from obskit._config import Config, resolve
from obskit._logs import _global
from obskit._logs._api import configure_logging, get_logger
from obskit._logs._api import reset as reset_logging
from obskit._logs._otlp import build_logger_provider
from obskit._runtime import _exporters, _health

FIELDS: dict[str, Any] = {"user_id": 42, "path": "/checkout", "status": 200, "ms": 12.5}


class _Discard:
    """A stream that drops what it is given (text or bytes) and counts the writes, one per line."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, s: str | bytes) -> int:
        self.lines += 1
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class _Counting(LogRecordExporter):
    """Stands in for the OTLP exporter behind obskit's guard: counts the records instead of sending them."""

    def __init__(self) -> None:
        self.records = 0

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.records += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _timed(fn: Callable[[], None], n: int) -> int:
    """Nanoseconds for ``n`` calls of ``fn``."""
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return time.perf_counter_ns() - start


def _in_requests(fn: Callable[[], None], n: int, per_request: int, io_wait: float) -> int:
    """Nanoseconds spent in ``n`` calls of ``fn``, made ``per_request`` at a time with ``io_wait`` seconds of
    sleep (a request's I/O) after each group; the sleeps are not counted."""
    total = 0
    for start in range(0, n, per_request):
        total += _timed(fn, min(per_request, n - start))
        time.sleep(io_wait)
    return total


def run(n: int = 20_000, rounds: int = 7, request_lines: int = 2_000, per_request: int = 5,
        io_wait: float = 0.001) -> dict[str, Any]:
    """Every variant in paired rounds; ns per line, delivered/emitted and the target ratios."""
    sink = _Discard()
    counting = _Counting()
    original_new_otlp = _exporters._new_otlp
    _exporters._new_otlp = lambda signal, config: counting  # the one seam: everything else is obskit's
    plain = _plain_structlog(sink)
    std_log = logging.getLogger("bench.stdlib")
    provider: LoggerProvider | None = None
    variants = "abcdef"
    times: dict[str, list[float]] = {k: [] for k in variants}
    dropped_before = _health.counts().get(("dropped", "logs"), 0)
    emitted = dict.fromkeys(variants, 0)
    delivered = dict.fromkeys(variants, 0)
    in_requests = min(request_lines, n)
    try:
        config = _config(sink)
        provider = build_logger_provider(config, Resource({"service.name": "bench"}))
        obskit_log = get_logger("bench")

        def obskit_line() -> None:
            obskit_log.info("request handled", **FIELDS)

        def plain_line() -> None:
            plain.info("request handled", **FIELDS)

        def stdlib_line() -> None:
            std_log.info("request handled", extra=FIELDS)

        def measure(key: str, fn: Callable[[], None], requests: bool) -> None:
            lines = in_requests if requests else n
            before = counting.records if key in "ef" else sink.lines
            ns = _in_requests(fn, lines, per_request, io_wait) if requests else _timed(fn, lines)
            if key in "ef":
                assert provider is not None
                provider.force_flush(60_000)  # untimed: what is still queued counts as delivered
            times[key].append(ns / lines)
            emitted[key] += lines
            delivered[key] += (counting.records if key in "ef" else sink.lines) - before

        with TracerProvider().get_tracer("bench").start_as_current_span("request") as span:
            assert span.is_recording()
            for _ in range(rounds):
                gc.collect()
                configure_logging(config, logger_provider=None)
                measure("a", obskit_line, requests=False)
                measure("b", plain_line, requests=False)
                measure("c", stdlib_line, requests=False)
                measure("d", obskit_line, requests=True)
                configure_logging(config, logger_provider=provider)
                measure("e", obskit_line, requests=True)
                measure("f", obskit_line, requests=False)
    finally:
        reset_logging()
        if provider is not None:
            provider.shutdown()
            _global.release(provider)
        _exporters._new_otlp = original_new_otlp

    def ratio(x: str, y: str) -> float:
        return statistics.median(a / b for a, b in zip(times[x], times[y], strict=True))

    names = ("obskit", "structlog", "stdlib", "requests", "otlp_requests", "otlp_sustained")
    out: dict[str, Any] = {
        "n": n, "request_lines": in_requests, "per_request": per_request, "io_wait": io_wait,
        "ratio": ratio("a", "b"), "otlp_ratio": ratio("e", "d"), "otlp_sustained_ratio": ratio("f", "a"),
        "dropped": _health.counts().get(("dropped", "logs"), 0) - dropped_before,
    }
    for key, name in zip(variants, names, strict=True):
        out[f"{name}_ns"] = min(times[key])
        out[f"{name}_delivered"] = delivered[key] / emitted[key]
    return out


def _config(sink: _Discard) -> Config:
    return resolve({"log_format": "json", "log_stream": sink, "service_name": "bench",
                    "otlp_endpoint": "http://127.0.0.1:4317", "otlp_protocol": "grpc"}, environ={})


def _plain_structlog(sink: _Discard) -> Any:
    return structlog.wrap_logger(
        structlog.BytesLogger(file=sink),  # type: ignore[arg-type]
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 20_000
    r = run(n)
    request = f"requests of {r['per_request']}, {r['io_wait'] * 1000:g} ms I/O"
    rows = [
        ("(a) obskit JSON, correlated, in a recording span", "obskit"),
        ("(b) plain structlog + orjson, no correlation", "structlog"),
        ("(c) stdlib logging.info through obskit, correlated", "stdlib"),
        (f"(d) (a) in {request}", "requests"),
        (f"(e) (a) + OTLP export, in {request}", "otlp_requests"),
        ("(f) (a) + OTLP export, back to back", "otlp_sustained"),
    ]
    print(f"{'variant':<56} {'ns/line':>10} {'delivered/emitted':>18}")
    for label, name in rows:
        print(f"{label:<56} {r[name + '_ns']:>10.0f} {r[name + '_delivered']:>18.3f}")
    print(f"{'ratio a/b (target <= 1)':<56} {r['ratio']:>10.2f}")
    print(f"{'ratio e/d (target <= 2)':<56} {r['otlp_ratio']:>10.2f}")
    print(f"{'ratio f/a':<56} {r['otlp_sustained_ratio']:>10.2f}")
    print(f"{'records dropped by the full queue (counted)':<56} {r['dropped']:>10}")
    print(f"lines per round: {n} back to back, {r['request_lines']} in requests; ns/line: best round; "
          "ratios: median over paired rounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
