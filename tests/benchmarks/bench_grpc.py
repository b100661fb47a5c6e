"""What the grpc integration costs per call: a unary call with a small bytes body over loopback, sync client
to sync server in the same process, bare (server and channel created before ``init()``, so untouched) and
with obskit (both created after it), rounds interleaved and the best kept.

The traced side does all a service pays for on both ends: the contrib CLIENT and SERVER spans with their
attributes, ``traceparent`` injected into the metadata and extracted by the server, obskit's interceptors
(span renamed, ``rpc_client_call_duration_seconds`` and ``rpc_server_call_duration_seconds`` observed), the
spans handed to a batch processor (exported in memory, counted as delivered). A loopback call is about a
hundred microseconds of gRPC's own work, so the ratio is the worst case; against a real network and a
handler that does something it shrinks. Run: ``python tests/benchmarks/bench_grpc.py [calls_per_round]``.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_db import _time_us  # the same clock as the SQL benchmark

SERVICE = "bench.Echo"


class _Delivered:
    """An exporter that counts the Echo spans it receives and keeps none."""

    def __init__(self) -> None:
        self.count = 0

    def exporter(self) -> Any:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        owner = self

        class Exporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                owner.count += sum(s.name == f"{SERVICE}/Echo" for s in spans)
                return SpanExportResult.SUCCESS

        return Exporter()


def _server() -> tuple[Any, str]:
    """A started grpc.server with one unary bytes method, and its address."""
    from concurrent import futures

    import grpc

    def echo(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def _calls(channel: Any, n: int) -> Callable[[], None]:
    echo = channel.unary_unary(f"/{SERVICE}/Echo")
    body = b"x" * 64

    def go() -> None:
        for _ in range(n):
            echo(body)

    return go


def run(n: int = 2000, rounds: int = 5) -> dict[str, float]:
    """µs per call for each side (best of ``rounds``), the ratio, and spans emitted/delivered."""
    import grpc
    from obskit.integrations import grpc as grpc_integration
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import obskit
    from obskit.testing import reset

    reset()
    delivered = _Delivered()
    processor = BatchSpanProcessor(delivered.exporter(), max_queue_size=2 * n * rounds + 1024)
    bare_server, bare_target = _server()  # before init(): neither side is instrumented
    bare_channel = grpc.insecure_channel(bare_target)
    try:
        obskit.init(service_name="bench-grpc", otlp_endpoint=None, metrics_port=None,
                    log_stream=io.StringIO(), log_level="WARNING", integrations=["grpc"],
                    span_processors=[processor])
        assert grpc_integration.is_instrumented()
        traced_server, traced_target = _server()
        traced_channel = grpc.insecure_channel(traced_target)
        bare, traced = _calls(bare_channel, n), _calls(traced_channel, n)
        bare(), traced()  # connect both channels and warm up before timing
        best = {"bare": float("inf"), "obskit": float("inf")}
        for _ in range(rounds):
            best["bare"] = min(best["bare"], _time_us(bare, n))
            best["obskit"] = min(best["obskit"], _time_us(traced, n))
        emitted = 2 * n * (rounds + 1)  # a client and a server span per traced call, warm-up included
        processor.force_flush()
        traced_channel.close()
        traced_server.stop(None)
    finally:
        bare_channel.close()
        bare_server.stop(None)
        reset()
    return {
        "bare_us": best["bare"], "obskit_us": best["obskit"], "ratio": best["obskit"] / best["bare"],
        "overhead_us": max(best["obskit"] - best["bare"], 1e-9),
        "emitted": float(emitted), "delivered": float(delivered.count),
    }


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2000
    r = run(n)
    print(f"{'unary call over loopback':<30}{'bare µs':>10}{'obskit µs':>11}{'ratio':>8}{'+µs':>8}")
    print(f"{'grpc (sync client and server)':<30}{r['bare_us']:>10.1f}{r['obskit_us']:>11.1f}"
          f"{r['ratio']:>8.2f}{r['overhead_us']:>8.1f}")
    print(f"spans delivered/emitted: {int(r['delivered'])}/{int(r['emitted'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
