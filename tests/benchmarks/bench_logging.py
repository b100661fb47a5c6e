"""Per-line cost of an obskit JSON log line (inside a recording span) vs plain structlog JSON.

(c), for information: the same line from stdlib ``logging`` through obskit's root handler.

Both write the same fields to a stream that discards, in the same process and run; the best of several
interleaved rounds is kept so a noisy neighbour skews neither side.
Run: ``python tests/benchmarks/bench_logging.py [lines_per_round]``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog
from opentelemetry.sdk.trace import TracerProvider

from obskit._config import resolve
from obskit._logs._api import configure_logging, get_logger
from obskit._logs._api import reset as reset_logging


class _Discard:
    """A text stream that drops everything, so only the logging path is measured."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _time_per_op(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / n


def run(n: int = 50_000, rounds: int = 5) -> dict[str, Any]:
    """Measure both variants; returns ns per line for each and the ratio obskit / structlog."""
    sink = _Discard()
    reset_logging()
    handle = configure_logging(
        resolve({"log_format": "json", "log_stream": sink, "service_name": "bench"}), logger_provider=None
    )
    try:
        obskit_log = get_logger("bench")
        plain_log = structlog.wrap_logger(
            structlog.PrintLogger(file=sink),  # type: ignore[arg-type]
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        )

        def obskit_line() -> None:
            obskit_log.info("request handled", user_id=42, path="/checkout", status=200, ms=12.5)

        def plain_line() -> None:
            plain_log.info("request handled", user_id=42, path="/checkout", status=200, ms=12.5)

        std_log = logging.getLogger("bench.stdlib")
        extra = {"user_id": 42, "path": "/checkout", "status": 200, "ms": 12.5}

        def stdlib_line() -> None:
            std_log.info("request handled", extra=extra)

        tracer = TracerProvider().get_tracer("bench")
        best_a = best_b = best_c = float("inf")
        with tracer.start_as_current_span("request") as span:
            assert span.is_recording()
            for _ in range(rounds):
                best_a = min(best_a, _time_per_op(obskit_line, n))
                best_b = min(best_b, _time_per_op(plain_line, n))
                best_c = min(best_c, _time_per_op(stdlib_line, n))
    finally:
        handle.unconfigure()
        reset_logging()
    return {
        "n": n,
        "obskit_ns": best_a,
        "structlog_ns": best_b,
        "ratio": best_a / best_b,
        "stdlib_ns": best_c,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 50_000
    r = run(n)
    print(f"{'variant':<52} {'ns/line':>10}")
    print(f"{'(a) obskit JSON, correlated, in a recording span':<52} {r['obskit_ns']:>10.0f}")
    print(f"{'(b) plain structlog JSONRenderer, no correlation':<52} {r['structlog_ns']:>10.0f}")
    print(f"{'ratio a/b':<52} {r['ratio']:>10.2f}")
    print(f"{'(c) stdlib logging.info through obskit, correlated':<52} {r['stdlib_ns']:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
