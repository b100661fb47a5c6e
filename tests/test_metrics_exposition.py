"""Exposition: the background /metrics server, the mountable apps, content negotiation and promtool."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
from conftest import require
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from obskit._config import resolve
from obskit._metrics import _instruments as _metrics
from obskit._metrics import counter, histogram, metrics_asgi_app, metrics_wsgi_app, start_metrics

OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    _metrics.reset()
    yield
    _metrics.reset()


@pytest.fixture
def server_port() -> Iterator[int]:
    handle = start_metrics(resolve({"metrics_port": 0}, environ={}), Resource.create({}))
    assert handle is not None and handle.port
    yield handle.port
    assert handle.shutdown(5)


def get(url: str, accept: str | None = None) -> tuple[str, str]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def test_server_serves_text_by_default_and_openmetrics_on_request(server_port: int) -> None:
    """The background server answers Prometheus text, or OpenMetrics when the scraper asks for it."""
    counter("x_requests").inc()
    ctype, body = get(f"http://127.0.0.1:{server_port}/metrics")
    assert ctype.startswith("text/plain; version=0.0.4") and "x_requests_total 1.0" in body
    ctype, body = get(f"http://127.0.0.1:{server_port}/metrics", OM)
    assert ctype.startswith("application/openmetrics-text") and body.endswith("# EOF\n")


def test_server_binds_loopback_by_default() -> None:
    """Without OBSKIT_METRICS_ADDR the server listens on 127.0.0.1 only."""
    config = resolve({"metrics_port": 0}, environ={})
    assert config.metrics_addr == "127.0.0.1"
    handle = start_metrics(config, Resource.create({}))
    assert handle is not None and handle.server is not None
    assert handle.server._httpd.server_address[0] == "127.0.0.1"
    handle.shutdown(5)


def test_process_and_runtime_metrics_exposed(server_port: int) -> None:
    """CPU, memory, open fds and GC metrics are on /metrics by default."""
    _, body = get(f"http://127.0.0.1:{server_port}/metrics")
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "python_gc_collections_total", "obskit_export_failures_total"):
        assert name in body, name


def test_wsgi_app_serves_same_registry() -> None:
    """metrics_wsgi_app() mounted on a real WSGI server negotiates like the background server."""
    counter("x_wsgi").inc(2)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = make_server("127.0.0.1", 0, metrics_wsgi_app(), handler_class=Quiet)
    import threading

    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        port = httpd.server_port
        assert "x_wsgi_total 2.0" in get(f"http://127.0.0.1:{port}/metrics")[1]
        assert get(f"http://127.0.0.1:{port}/metrics", OM)[0].startswith("application/openmetrics-text")
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_asgi_app_negotiates_and_carries_exemplars() -> None:
    """metrics_asgi_app() serves text by default and OpenMetrics with exemplars on request."""
    h = histogram("x_asgi", unit="seconds")
    with TracerProvider(sampler=ALWAYS_ON).get_tracer("t").start_as_current_span("s") as span:
        h.observe(0.02)
    trace_id = format(span.get_span_context().trace_id, "032x")
    transport = httpx.ASGITransport(app=metrics_asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        text = await client.get("/metrics")
        om = await client.get("/metrics", headers={"Accept": OM})
        gz = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert text.headers["content-type"].startswith("text/plain") and "x_asgi_seconds_count 1.0" in text.text
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert f'trace_id="{trace_id}"' in om.text
    assert gz.headers.get("content-encoding") == "gzip" and "x_asgi_seconds_count" in gz.text


def _promtool() -> str:
    path = shutil.which("promtool")
    require(path is not None, "promtool not installed (Debian package 'prometheus')")
    assert path is not None
    return path


POPULATE = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from obskit._metrics import _self
from obskit._metrics import counter, gauge, histogram
from obskit._metrics._exposition import render

c = counter("orders_processed", "Orders processed", labels=["status"])
c.inc(status="ok")
h = histogram("payment_latency", "Payment call latency", unit="seconds", labels=["provider"])
gauge("queue_depth", "Items waiting", labels=["queue"]).set(3, queue="payments")
with TracerProvider(sampler=ALWAYS_ON).get_tracer("t").start_as_current_span("s"):
    h.observe(0.25, provider="acme")
    c.inc(2, status="failed")
_self.install()
sys.stdout.write(render()[0].decode())
"""


def test_promtool_check_metrics_passes() -> None:
    """`promtool check metrics` (it reads the text format) finds no error and no lint problem in a fresh
    process's full output: the issue's metrics, process/GC metrics and obskit's own."""
    import sys

    promtool = _promtool()
    body = subprocess.run([sys.executable, "-c", POPULATE], capture_output=True, text=True, timeout=60,
                          check=True).stdout
    assert "payment_latency_seconds_bucket" in body and "process_cpu_seconds_total" in body
    proc = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr
