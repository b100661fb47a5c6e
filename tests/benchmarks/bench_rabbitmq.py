"""What the pika integration costs per message published: ``BlockingChannel.basic_publish`` of a small body to
a queue on the local RabbitMQ (127.0.0.1:5672, guest/guest), with and without obskit's hook, same process,
same channel, rounds interleaved and the best kept.

The traced side does all a service pays for: a PRODUCER span with its attributes, the ``traceparent`` header
injected into a copy of the message's properties (the user's own headers kept), the span handed to a batch
processor (exported in memory, counted as delivered), and one ``messaging_client_sent_messages_total``
increment. A publish to a local broker is a socket write of tens of microseconds, so the ratio is the worst
case; against a real network it shrinks. The queue is capped (``x-max-length``) and deleted afterwards.
Run: ``python tests/benchmarks/bench_rabbitmq.py [messages_per_round]``.
"""

from __future__ import annotations

import io
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_db import _time_us  # the same clock as the SQL benchmark

URL = "amqp://guest:guest@127.0.0.1:5672/"


def _counting_exporter(counted: list[int]) -> Any:
    """Counts exported publish spans and keeps none (a growing list would be measured too)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Exporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            counted[0] += sum(1 for s in spans if s.name.startswith("publish"))
            return SpanExportResult.SUCCESS

    return Exporter()


def run(n: int = 2000, rounds: int = 5) -> dict[str, float]:
    """µs per publish for each side (best of ``rounds``), the ratio, and spans emitted/delivered."""
    import pika
    from obskit.integrations import pika as pika_integration
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import obskit
    from obskit.testing import reset

    reset()
    counted = [0]
    processor = BatchSpanProcessor(_counting_exporter(counted), max_queue_size=n * rounds + 1024)
    obskit.init(service_name="bench-rabbitmq", otlp_endpoint=None, metrics_port=None,
                log_stream=io.StringIO(), log_level="WARNING", integrations=["pika"],
                span_processors=[processor])
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    queue = f"obskit-bench-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(queue, arguments={"x-max-length": 1000})
    properties = pika.BasicProperties(headers={"tenant": "acme"}, message_id="m-1")
    try:
        def publish_side() -> None:
            publish = channel.basic_publish
            for _ in range(n):
                publish("", queue, b"order 42", properties)

        bare_tracer = TracerProvider().get_tracer("bench")

        def one_span_side() -> None:  # the yardstick: what one span costs the raw SDK on this machine
            for _ in range(n):
                with bare_tracer.start_as_current_span("publish q", attributes={"messaging.system": "x"}):
                    pass

        best = dict.fromkeys(("bare", "obskit", "sdk_span"), float("inf"))
        emitted = 0
        for _ in range(rounds):
            best["sdk_span"] = min(best["sdk_span"], _time_us(one_span_side, n))
            pika_integration.uninstrument()
            best["bare"] = min(best["bare"], _time_us(publish_side, n))
            pika_integration.instrument()
            best["obskit"] = min(best["obskit"], _time_us(publish_side, n))
            emitted += n
        assert pika_integration.is_instrumented()
        processor.force_flush()
        delivered = counted[0]
    finally:
        channel.queue_delete(queue)
        connection.close()
        reset()
    return {
        "pika_bare_us": best["bare"], "pika_obskit_us": best["obskit"], "sdk_span_us": best["sdk_span"],
        "pika_ratio": best["obskit"] / best["bare"],
        "pika_overhead_us": max(best["obskit"] - best["bare"], 1e-9),
        "emitted": float(emitted), "delivered": float(delivered),
    }


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2000
    r = run(n)
    print(f"{'basic_publish, local RabbitMQ':<30}{'bare µs':>10}{'obskit µs':>11}{'ratio':>8}{'+µs':>8}")
    print(f"{'pika BlockingChannel':<30}{r['pika_bare_us']:>10.1f}{r['pika_obskit_us']:>11.1f}"
          f"{r['pika_ratio']:>8.2f}{r['pika_overhead_us']:>8.1f}")
    print(f"one span, raw OpenTelemetry SDK, same machine: {r['sdk_span_us']:.1f} µs")
    print(f"spans delivered/emitted: {int(r['delivered'])}/{int(r['emitted'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
