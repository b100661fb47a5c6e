"""Client RED metrics: each ``requests`` and ``httpx`` call to a real loopback server is one count of
``http_client_request_duration_seconds``, labelled by method, status and server, never by URL path."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from red_metrics import OPENMETRICS, count, samples, series_labels

from obskit._metrics._exposition import render
from obskit.testing import capture

CLIENT = "http_client_request_duration_seconds"
N = 4


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 503 if self.path.startswith("/down") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _client_series() -> list[Any]:
    return samples(render(OPENMETRICS)[0].decode())


def test_requests_calls_are_counted() -> None:
    """N requests.get calls plus one 503: the client count is N + 1, the 503 with error_type 503."""
    requests = pytest.importorskip("requests")
    pytest.importorskip("opentelemetry.instrumentation.requests")
    with capture(integrations=["requests"]), _server() as port:
        for i in range(N):
            assert requests.get(f"http://127.0.0.1:{port}/items/{i}", timeout=10).status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/down", timeout=10).status_code == 503
        found = _client_series()
    assert count(found, CLIENT, http_request_method="GET", http_response_status_code="200") == N, found
    assert count(found, CLIENT, http_response_status_code="503", error_type="503") == 1
    assert count(found, CLIENT) == N + 1
    assert all("/items/" not in "".join(lb.values()) for lb in series_labels(found, CLIENT))


def test_httpx_sync_and_async_calls_are_counted() -> None:
    """N httpx.Client calls and N AsyncClient calls: the client count is 2N."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("opentelemetry.instrumentation.httpx")

    async def async_calls(port: int) -> list[int]:
        async with httpx.AsyncClient() as client:
            return [(await client.get(f"http://127.0.0.1:{port}/items/{i}")).status_code for i in range(N)]

    with capture(integrations=["httpx"]), _server() as port:
        with httpx.Client() as client:
            codes = [client.get(f"http://127.0.0.1:{port}/items/{i}").status_code for i in range(N)]
        assert codes == [200] * N
        assert asyncio.run(async_calls(port)) == [200] * N
        found = _client_series()
    assert count(found, CLIENT, http_request_method="GET", http_response_status_code="200") == 2 * N, found
    assert all("/items/" not in "".join(lb.values()) for lb in series_labels(found, CLIENT))
