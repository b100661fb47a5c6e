"""The checkout service ``obskit demo --serve`` runs: an HTTP API instrumented the way the dashboards expect.

``POST /orders`` reserves stock in a database (SQLite, in memory), asks a fraud-check RPC (retried when it
flakes), and charges the payment provider over HTTP behind a bulkhead and a circuit breaker whose fallback
queues the payment. ``GET /orders/{id}`` reads an order back (404 when unknown). One order in thirty (the
7th, the 37th, ...) hits a bug and answers 500: counted, not drawn at random, so that every run of a few
seconds shows an error rate on the dashboards.

Every request is a SERVER span and one observation of ``http.server.request.duration`` made inside it (so
the latency panels get exemplars), with ``http.server.active_requests`` around it; the database, RPC and
outgoing HTTP calls are CLIENT spans and observations of the stable semantic-convention histograms, all
through the OpenTelemetry metrics API that obskit serves on ``/metrics``. Only the standard library is used,
so ``pip install obskit`` is enough to run it.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import obskit

__all__ = ["CheckoutService"]

_ORDER = re.compile(r"^/orders/(\d+)$")


class _Bug(RuntimeError):
    """The defect one order in thirty runs into (an honest 500)."""


class CheckoutService:
    """The service, its HTTP server on ``host:port`` (0 picks a free port) and its dependencies."""

    def __init__(self, host: str, port: int, provider_port: int) -> None:
        self.log = obskit.get_logger("demo.checkout")
        self.tracer = trace.get_tracer("obskit.demo")
        meter = metrics.get_meter("obskit.demo")
        self.server_duration = meter.create_histogram("http.server.request.duration", unit="s",
                                                      description="Duration of HTTP server requests.")
        self.active = meter.create_up_down_counter("http.server.active_requests", unit="{request}",
                                                   description="HTTP server requests in flight.")
        self.client_duration = meter.create_histogram("http.client.request.duration", unit="s",
                                                      description="Duration of HTTP client requests.")
        self.db_duration = meter.create_histogram("db.client.operation.duration", unit="s",
                                                  description="Duration of database client operations.")
        self.rpc_duration = meter.create_histogram("rpc.client.call.duration", unit="s",
                                                   description="Duration of RPC client calls.")
        self.provider_port = provider_port
        self.queued: list[int] = []
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER, status TEXT)")
        self._db_lock = threading.Lock()
        self.breaker = obskit.CircuitBreaker("payment_service", fallback=self._queue_payment, minimum_calls=5,
                                             window=10, wait_in_open=1.0, half_open_calls=2)
        self._charge = self.breaker(obskit.bulkhead(max_concurrent=4, max_wait=0.2, name="payment_pool")(
            self._call_provider))
        self._fraud = obskit.retry(attempts=3, backoff=0.01, on=ConnectionError, name="fraud_check")(
            self._fraud_rpc)
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-checkout", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- dependencies ----------------------------------------------------------------------------------

    def _db_op(self, operation: str, sql: str, params: tuple[Any, ...]) -> list[Any]:
        attrs = {"db.system.name": "sqlite", "db.namespace": "orders", "db.operation.name": operation}
        start = time.perf_counter()
        with self.tracer.start_as_current_span(f"{operation} orders", kind=SpanKind.CLIENT, attributes=attrs):
            with self._db_lock:
                rows = self._db.execute(sql, params).fetchall()
                self._db.commit()
            self.db_duration.record(time.perf_counter() - start, attrs)
        return rows

    def _fraud_rpc(self, amount: int) -> float:
        attrs = {"rpc.system.name": "grpc", "rpc.method": "fraud.v1.FraudService/Score",
                 "server.address": "fraud-check"}
        start = time.perf_counter()
        with self.tracer.start_as_current_span("fraud.v1.FraudService/Score", kind=SpanKind.CLIENT,
                                               attributes=attrs) as span:
            time.sleep(random.uniform(0.002, 0.01))  # a stand-in: the fraud service is simulated in-process
            if random.random() < 0.1:
                self.rpc_duration.record(time.perf_counter() - start, {**attrs, "error.type": "UNAVAILABLE"})
                span.set_status(Status(StatusCode.ERROR, "UNAVAILABLE"))
                raise ConnectionError("fraud-check UNAVAILABLE")
            self.rpc_duration.record(time.perf_counter() - start, attrs)
        return min(amount / 1000, 1.0)

    def _call_provider(self, order_id: int, amount: int) -> str:
        attrs: dict[str, Any] = {"http.request.method": "POST", "server.address": "127.0.0.1",
                                 "server.port": self.provider_port}
        start = time.perf_counter()
        with self.tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes=attrs) as span:
            headers: dict[str, str] = {"Content-Type": "application/json"}
            propagate.inject(headers)
            conn = http.client.HTTPConnection("127.0.0.1", self.provider_port, timeout=2)
            try:
                conn.request("POST", "/charge", body=json.dumps({"order": order_id, "amount": amount}),
                             headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError as exc:
                self.client_duration.record(time.perf_counter() - start,
                                            {**attrs, "error.type": type(exc).__name__})
                raise
            finally:
                conn.close()
            outcome = {**attrs, "http.response.status_code": status}
            if status >= 500:
                outcome["error.type"] = str(status)
                span.set_status(Status(StatusCode.ERROR, str(status)))
            span.set_attribute("http.response.status_code", status)
            self.client_duration.record(time.perf_counter() - start, outcome)
        if status >= 500:
            raise ConnectionError(f"payment provider answered {status}")
        return "charged"

    def _queue_payment(self, order_id: int, amount: int, exc: BaseException) -> str:
        self.log.warning("payment service unavailable, queuing for retry", order_id=order_id, error=str(exc))
        self.queued.append(order_id)
        return "queued"

    # --- routes ---------------------------------------------------------------------------------------

    def place_order(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        amount = int(body.get("amount", 10))
        (order_id,) = self._db_op(
            "INSERT", "INSERT INTO orders (amount, status) VALUES (?, 'new') RETURNING id", (amount,))[0]
        self.log.info("order received", order_id=order_id, amount=amount)
        if order_id % 30 == 7:
            raise _Bug(f"inventory row locked for order {order_id}")
        score = self._fraud(amount)
        status = self._charge(order_id, amount)
        self._db_op("UPDATE", "UPDATE orders SET status = ? WHERE id = ?", (status, order_id))
        self.log.info("order completed", order_id=order_id, status=status, fraud_score=score,
                      breaker=self.breaker.state.value)
        return (201 if status == "charged" else 202), {"id": order_id, "status": status}

    def get_order(self, order_id: int) -> tuple[int, dict[str, Any]]:
        rows = self._db_op("SELECT", "SELECT id, amount, status FROM orders WHERE id = ?", (order_id,))
        if not rows:
            return 404, {"error": "no such order"}
        return 200, dict(zip(("id", "amount", "status"), rows[0], strict=True))

    def route(self, method: str, path: str) -> tuple[str | None, Callable[[dict[str, Any]], tuple[int, Any]]]:
        """(the route template, the handler) for a request; (None, 404) when nothing matches."""
        if method == "POST" and path == "/orders":
            return "/orders", self.place_order
        match = _ORDER.match(path)
        if method == "GET" and match:
            order_id = int(match.group(1))
            return "/orders/{id}", lambda body: self.get_order(order_id)
        if method == "GET" and path == "/health":
            return "/health", lambda body: (200, {"status": "ok"})
        return None, lambda body: (404, {"error": "not found"})

    def handle(self, method: str, path: str, body: dict[str, Any],
               headers: dict[str, str]) -> tuple[int, Any]:
        """One request: a SERVER span, the RED observations inside it, a 500 for an exception."""
        route, handler = self.route(method, path.split("?", 1)[0])
        base: dict[str, Any] = {"http.request.method": method, "url.scheme": "http"}
        self.active.add(1, base)
        start = time.perf_counter()
        try:
            attrs = {**base, "url.path": path, **({"http.route": route} if route else {})}
            with self.tracer.start_as_current_span(f"{method} {route or ''}".strip(), kind=SpanKind.SERVER,
                                                   attributes=attrs,
                                                   context=propagate.extract(headers)) as span:
                try:
                    status, payload = handler(body)
                except Exception as exc:
                    self.log.exception("request failed", route=route)
                    status, payload = 500, {"error": type(exc).__name__}
                    span.record_exception(exc)
                recorded: dict[str, Any] = {**base, "http.response.status_code": status}
                if route:
                    recorded["http.route"] = route
                if status >= 500:
                    recorded["error.type"] = str(status)
                    span.set_status(Status(StatusCode.ERROR, str(status)))
                span.set_attribute("http.response.status_code", status)
                self.server_duration.record(time.perf_counter() - start, recorded)
        finally:
            self.active.add(-1, base)
        return status, payload

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                status, payload = service.handle(self.command, self.path,
                                                 body if isinstance(body, dict) else {},
                                                 dict(self.headers.items()))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
