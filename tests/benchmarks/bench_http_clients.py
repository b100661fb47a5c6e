"""What the urllib3 and urllib integrations cost per request: a GET to a loopback ``ThreadingHTTPServer``
with urllib3 (one ``PoolManager``, its connection kept alive) and with ``urllib.request.urlopen`` (a new
connection each time, as urllib does), each bare and with obskit's hook, same process, same server, rounds
interleaved (the hook switched off and on between sides) and the best kept: many short rounds, so that on a
shared machine the best of each side comes from a quiet moment.

The traced side does all a service pays for: a CLIENT span with its attributes handed to a batch processor
(exported in memory and counted as delivered), ``traceparent`` added to the request, and an
``http_client_request_duration_seconds`` observation. A loopback request is some tens of microseconds, so the
ratio is the worst case; against a real network it shrinks.
Run: ``python tests/benchmarks/bench_http_clients.py [requests_per_round]``.
"""

from __future__ import annotations

import io
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

CLIENTS = ("urllib3", "urllib")


class _Origin(BaseHTTPRequestHandler):
    """Answers every GET with 200 "ok", keeping the connection open when the client allows it."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait for a delayed ACK

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _CountGets(SpanExporter):
    """Counts the GET spans exported and keeps none (a growing list would be measured too)."""

    def __init__(self) -> None:
        self.delivered = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.delivered += sum(s.name == "GET" for s in spans)
        return SpanExportResult.SUCCESS


def _per_call_us(call: Callable[[], Any], n: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(n):
        call()
    return (time.perf_counter_ns() - started) / n / 1000


def run(n: int = 200, rounds: int = 20) -> dict[str, float]:
    """µs per GET for each client, bare and with obskit (best of ``rounds``), the ratios, and the spans
    emitted and delivered."""
    import urllib3
    from obskit.integrations import urllib as urllib_integration
    from obskit.integrations import urllib3 as urllib3_integration
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import obskit
    from obskit.testing import reset

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/items/42"
    pool = urllib3.PoolManager(maxsize=1)
    calls: dict[str, Callable[[], Any]] = {
        "urllib3": lambda: pool.request("GET", url).status,
        "urllib": lambda: urllib.request.urlopen(url).read(),
    }
    switches = {"urllib3": urllib3_integration, "urllib": urllib_integration}
    exporter = _CountGets()
    processor = BatchSpanProcessor(exporter, max_queue_size=2 * n * rounds + 1024)
    reset()
    try:
        obskit.init(service_name="bench-http-clients", otlp_endpoint=None, metrics_port=None,
                    log_stream=io.StringIO(), integrations=list(CLIENTS), span_processors=[processor])
        for client in CLIENTS:
            calls[client]()  # the pool's connection opened, the first span's setup done: not measured
        best = {f"{c}_{side}": float("inf") for c in CLIENTS for side in ("bare", "obskit")}
        emitted = 0
        for _ in range(rounds):
            for client in CLIENTS:
                switches[client].uninstrument()
                best[f"{client}_bare"] = min(best[f"{client}_bare"], _per_call_us(calls[client], n))
                switches[client].instrument()
                best[f"{client}_obskit"] = min(best[f"{client}_obskit"], _per_call_us(calls[client], n))
                emitted += n
        processor.force_flush()
        delivered = exporter.delivered - len(CLIENTS)  # the warm-up calls' spans
    finally:
        reset()
        pool.clear()
        server.shutdown()
        server.server_close()
    out = {f"{k}_us": v for k, v in best.items()}
    for client in CLIENTS:
        out[f"{client}_ratio"] = best[f"{client}_obskit"] / best[f"{client}_bare"]
        out[f"{client}_overhead_us"] = max(best[f"{client}_obskit"] - best[f"{client}_bare"], 1e-9)
    return {**out, "emitted": float(emitted), "delivered": float(delivered)}


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 200
    r = run(n)
    print(f"{'GET on a loopback server':<28}{'bare µs':>10}{'obskit µs':>11}{'ratio':>8}{'+µs':>8}")
    for client in CLIENTS:
        print(f"{client:<28}{r[client + '_bare_us']:>10.1f}{r[client + '_obskit_us']:>11.1f}"
              f"{r[client + '_ratio']:>8.2f}{r[client + '_overhead_us']:>8.1f}")
    print(f"spans delivered/emitted: {int(r['delivered'])}/{int(r['emitted'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
