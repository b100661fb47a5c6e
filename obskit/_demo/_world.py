"""What surrounds the ``obskit demo --serve`` checkout service: the payment provider it calls (a real HTTP
server on loopback whose outages are scheduled), and customers (a bounded load generator).

Neither records telemetry: they are the outside world, and everything on the dashboards comes from the
checkout service's own instrumentation.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Customers", "PaymentProvider"]


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True


class PaymentProvider:
    """``POST /charge`` answers 200 in a few ms, or 503 during an outage. One outage every ``every``
    seconds, lasting a quarter of that (at least two seconds), so the breaker opens, probes and closes."""

    def __init__(self, every: float, log: Any) -> None:
        self.up = True
        self.every = every
        self.outage = max(every / 4, 2.0)
        self._log = log
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(random.uniform(0.005, 0.03) if provider.up else 0.05)
                status = 200 if provider.up else 503
                body = b'{"ok":true}' if provider.up else b'{"error":"upstream unavailable"}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Quiet(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="demo-provider", daemon=True),
            threading.Thread(target=self._schedule, name="demo-outages", daemon=True)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _schedule(self) -> None:
        while not self._stop.wait(max(self.every - self.outage, 0.5)):
            self.up = False
            self._log.error("payment provider outage begins", seconds=self.outage)
            if self._stop.wait(self.outage):
                return
            self.up = True
            self._log.info("payment provider recovered")

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


class Customers:
    """A few threads placing orders and looking them up at a steady, bounded rate until stopped."""

    def __init__(self, port: int, *, threads: int = 3, pause: float = 0.15) -> None:
        self._port = port
        self._pause = pause
        self._stop = threading.Event()
        self.sent = 0
        self.by_status: dict[int, int] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._shop, name=f"demo-customer-{i}", daemon=True)
                         for i in range(threads)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=5)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            return response.status
        except OSError:
            return 0
        finally:
            conn.close()

    def _shop(self) -> None:
        rng = random.Random()
        while not self._stop.wait(self._pause * rng.uniform(0.5, 1.5)):
            roll = rng.random()
            if roll < 0.65:
                status = self._request("POST", "/orders", {"amount": rng.randint(5, 500), "sku": "sku-1"})
            elif roll < 0.95:
                status = self._request("GET", f"/orders/{rng.randint(1, max(self.sent, 1) + 5)}")
            else:
                status = self._request("GET", "/health")
            with self._lock:
                self.sent += 1
                self.by_status[status] = self.by_status.get(status, 0) + 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
