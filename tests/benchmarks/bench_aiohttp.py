"""What obskit's aiohttp integration costs per request: a hello-world ``web.Application`` served on loopback
and requested by a ``ClientSession``, both in one process and one event loop, one keep-alive connection,
requests one after the other; bare and with obskit, rounds interleaved in the same run, the best kept.

- ``bare``: aiohttp alone, its access lines on (stdlib logging at INFO to a discarding stream);
- ``obskit``: ``obskit.init()`` as a service runs it, with only the OTLP exporter swapped for one that counts
  (the seam ``bench_tracing`` uses): a CLIENT and a SERVER span per request through obskit's batch processor
  and redacting exporter, ``http_server_request_duration_seconds`` with its exemplar,
  ``http_server_active_requests``, ``http_client_request_duration_seconds``, and the access line rendered
  as an obskit JSON line carrying the trace_id.

- ``server_only``: the same, with the client hook switched off: what the serving end alone costs.

The per-request time covers both ends (client and server spans), so it is the worst case: a real handler,
a real network and one end per process shrink the ratio. ``served``/``delivered``: SERVER spans the obskit
rounds started / SERVER spans the exporter received, counted after a flush.
Run: ``python tests/benchmarks/bench_aiohttp.py [requests_per_round]``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from typing import Any


class _Counting:
    """A span exporter that counts SERVER spans and keeps none."""

    def __init__(self) -> None:
        self.server_spans = 0

    def exporter(self) -> Any:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
        from opentelemetry.trace import SpanKind

        counting = self

        class Exporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                counting.server_spans += sum(1 for s in spans if s.kind == SpanKind.SERVER)
                return SpanExportResult.SUCCESS

        return Exporter()


async def _requests(url: str, n: int) -> float:
    """µs per request for ``n`` GETs on a new session (a new connection: aiohttp reads whether access
    logging is on when a connection is made)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:  # the connection is opened outside the timing
            await resp.read()
        start = time.perf_counter_ns()
        for _ in range(n):
            async with session.get(url) as resp:
                await resp.read()
        return (time.perf_counter_ns() - start) / n / 1000


def _bare_logging() -> logging.Handler:
    """What an app without obskit typically has: the root logger at INFO, a plain handler (discarding)."""
    handler = logging.StreamHandler(io.StringIO())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def run(n: int = 2000, rounds: int = 5) -> dict[str, float]:
    """µs per request for each side (best of ``rounds``), the ratio, and SERVER spans served/delivered."""
    from aiohttp import web
    from obskit.integrations import _aiohttp_client

    import obskit
    from obskit._runtime import _exporters
    from obskit.testing import reset

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    counting = _Counting()
    original_new_otlp = _exporters._new_otlp
    _exporters._new_otlp = lambda signal, config: counting.exporter()  # the one seam
    env = {"OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    best = {"bare": float("inf"), "obskit": float("inf"), "server_only": float("inf")}
    served = 0

    async def main() -> None:
        nonlocal served
        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hello/world"
        try:
            for _ in range(rounds):
                reset()
                handler = _bare_logging()
                try:
                    best["bare"] = min(best["bare"], await _requests(url, n))
                finally:
                    logging.getLogger().removeHandler(handler)
                obskit.init(service_name="bench-aiohttp", otlp_endpoint="http://127.0.0.1:4317",
                            otlp_protocol="grpc", log_stream=io.StringIO(), metrics_port=None,
                            integrations=["aiohttp"], env=env)
                best["obskit"] = min(best["obskit"], await _requests(url, n))
                _aiohttp_client.PATCH.uninstrument()
                best["server_only"] = min(best["server_only"], await _requests(url, n))
                served += 2 * (n + 1)
                obskit.force_flush()
        finally:
            await runner.cleanup()

    try:
        reset()
        asyncio.run(main())
        obskit.force_flush()
    finally:
        _exporters._new_otlp = original_new_otlp
        reset()
    return {
        "bare_us": best["bare"], "obskit_us": best["obskit"], "ratio": best["obskit"] / best["bare"],
        "overhead_us": max(best["obskit"] - best["bare"], 1e-9), "server_only_us": best["server_only"],
        "server_only_ratio": best["server_only"] / best["bare"],
        "served": float(served), "delivered": float(counting.server_spans),
        "delivered_fraction": counting.server_spans / served,
    }


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2000
    r = run(n)
    print(f"{'aiohttp hello-world, in-process':<34}{'bare µs':>9}{'obskit µs':>11}{'ratio':>8}{'+µs':>8}")
    for label, traced, ratio in (("one request (client + server)", "obskit_us", "ratio"),
                                 ("server traced, client not", "server_only_us", "server_only_ratio")):
        print(f"{label:<34}{r['bare_us']:>9.1f}{r[traced]:>11.1f}{r[ratio]:>8.2f}"
              f"{r[traced] - r['bare_us']:>8.1f}")
    print(f"SERVER spans delivered/served: {int(r['delivered'])}/{int(r['served'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
