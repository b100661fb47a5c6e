"""What the SQL integrations cost per statement: ``SELECT 1`` on the local PostgreSQL (127.0.0.1:5432, db
``test``) through SQLAlchemy (psycopg2 dialect) and through psycopg2 directly, each with and without obskit's
integration, same process, same server, rounds interleaved and the best kept.

The traced side does all a service pays for: a span per statement with its attributes and sanitized text,
handed to a batch processor (exported in memory, counted as delivered), and a
``db_client_operation_duration_seconds`` observation. A round trip to a local PostgreSQL is tens of
microseconds, so the ratio is the worst case; against a real network and real queries it shrinks.
Run: ``python tests/benchmarks/bench_db.py [statements_per_round]``.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from typing import Any

DSN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _time_us(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / n / 1000


class _Counting:
    """Counts exported spans and keeps none: an in-memory list of every span would make the collector's
    passes over a growing heap part of what is measured."""

    def __init__(self) -> None:
        self.spans = 0

    def exporter(self) -> Any:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        counting = self

        class Exporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                counting.spans += sum(1 for s in spans if s.name.startswith("SELECT"))
                return SpanExportResult.SUCCESS

        return Exporter()


def run(n: int = 2000, rounds: int = 5) -> dict[str, float]:
    """µs per statement for each side (best of ``rounds``), the ratios, and spans emitted/delivered."""
    import psycopg2
    import sqlalchemy as sa
    from obskit.integrations import psycopg2 as pg2_integration
    from obskit.integrations import sqlalchemy as sa_integration
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import obskit
    from obskit.testing import reset

    reset()
    engine = sa.create_engine(DSN, pool_size=1)
    # The pool's one connection, opened before init(): the psycopg2 hook leaves it alone.
    with engine.connect() as warm:
        warm.execute(sa.text("SELECT 1"))
    plain = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")  # opened before init: untraced
    counting = _Counting()
    processor = BatchSpanProcessor(counting.exporter(), max_queue_size=2 * n * rounds + 1024)
    try:
        obskit.init(service_name="bench-db", otlp_endpoint=None, metrics_port=None, log_stream=io.StringIO(),
                    integrations=["sqlalchemy", "psycopg2"], span_processors=[processor])
        traced = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")  # after init: traced
        select = sa.text("SELECT 1")
        with engine.connect() as conn, plain.cursor() as plain_cur, traced.cursor() as traced_cur:

            def sqlalchemy_side() -> None:
                execute = conn.execute
                for _ in range(n):
                    execute(select).scalar()

            def psycopg2_side(cur: Any) -> Callable[[], None]:
                def go() -> None:
                    for _ in range(n):
                        cur.execute("SELECT 1")
                        cur.fetchone()
                return go

            best = dict.fromkeys(("sqlalchemy_bare", "sqlalchemy_obskit", "psycopg2_bare", "psycopg2_obskit"),
                                 float("inf"))
            bare_tracer = TracerProvider().get_tracer("bench")

            def one_span_side() -> None:  # the yardstick: what one span costs the raw SDK on this machine
                for _ in range(n):
                    with bare_tracer.start_as_current_span("SELECT test", attributes={"db.system": "x"}):
                        pass

            best["sdk_span"] = float("inf")
            emitted = 0
            for _ in range(rounds):
                best["sdk_span"] = min(best["sdk_span"], _time_us(one_span_side, n))
                sa_integration.uninstrument()
                best["sqlalchemy_bare"] = min(best["sqlalchemy_bare"], _time_us(sqlalchemy_side, n))
                sa_integration.instrument()
                best["sqlalchemy_obskit"] = min(best["sqlalchemy_obskit"], _time_us(sqlalchemy_side, n))
                best["psycopg2_bare"] = min(best["psycopg2_bare"], _time_us(psycopg2_side(plain_cur), n))
                best["psycopg2_obskit"] = min(best["psycopg2_obskit"], _time_us(psycopg2_side(traced_cur), n))
                emitted += 2 * n
        traced.close()
        processor.force_flush()
        delivered = counting.spans
        assert pg2_integration.is_instrumented()
    finally:
        plain.close()
        engine.dispose()
        reset()
    return {
        **{f"{k}_us": v for k, v in best.items()},
        "sqlalchemy_ratio": best["sqlalchemy_obskit"] / best["sqlalchemy_bare"],
        "sqlalchemy_overhead_us": max(best["sqlalchemy_obskit"] - best["sqlalchemy_bare"], 1e-9),
        "psycopg2_ratio": best["psycopg2_obskit"] / best["psycopg2_bare"],
        "psycopg2_overhead_us": max(best["psycopg2_obskit"] - best["psycopg2_bare"], 1e-9),
        "emitted": float(emitted), "delivered": float(delivered),
    }


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2000
    r = run(n)
    print(f"{'SELECT 1 on local PostgreSQL':<30}{'bare µs':>10}{'obskit µs':>11}{'ratio':>8}{'+µs':>8}")
    for side in ("sqlalchemy", "psycopg2"):
        print(f"{side:<30}{r[side + '_bare_us']:>10.1f}{r[side + '_obskit_us']:>11.1f}"
              f"{r[side + '_ratio']:>8.2f}{r[side + '_overhead_us']:>8.1f}")
    print(f"one span, raw OpenTelemetry SDK, same machine: {r['sdk_span_us']:.1f} µs")
    print(f"spans delivered/emitted: {int(r['delivered'])}/{int(r['emitted'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
