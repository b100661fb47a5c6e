"""A real Prometheus server scrapes this process on loopback: values and the exemplar round trip."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from obskit._config import resolve
from obskit._metrics import _instruments as _metrics
from obskit._metrics import counter, histogram, start_metrics

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(base: str, path: str, **params: Any) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        payload = json.loads(resp.read())
    assert payload["status"] == "success", payload
    return payload["data"]


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """Our /metrics on a free port, and a Prometheus scraping it every second; both stopped afterwards."""
    binary = shutil.which("prometheus")
    require(binary is not None, "prometheus not installed (Debian package 'prometheus')")
    assert binary is not None
    _metrics.reset()
    handle = start_metrics(resolve({"metrics_port": 0}, environ={}), Resource.create({}))
    assert handle is not None and handle.port
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: app\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{handle.port}']\n")
    port = free_port()
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
             f"--storage.tsdb.path={tmp_path / 'data'}", "--enable-feature=exemplar-storage",
             "--log.level=warn"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", handle.port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        handle.shutdown(5)
        _metrics.reset()


def wait_query(base: str, query: str, want: float, timeout: float = 60) -> list[Any]:
    deadline = time.monotonic() + timeout
    result: list[Any] = []
    while time.monotonic() < deadline:
        try:
            result = api(base, "query", query=query)["result"]
        except OSError:
            result = []
        if result and float(result[0]["value"][1]) == want:
            return result
        time.sleep(0.25)
    pytest.fail(f"{query} never reached {want}: {result}")


def test_prometheus_scrapes_values_and_exemplar(scraped: tuple[str, int]) -> None:
    """Prometheus stores our counter and histogram values and the trace exemplar of a sampled span."""
    base, _ = scraped
    orders = counter("prom_orders_processed", "Orders processed", labels=["status"])
    latency = histogram("prom_payment_latency", "Payment call latency", unit="seconds", labels=["provider"])
    orders.inc(status="ok")
    orders.inc(3, status="failed")
    with TracerProvider(sampler=ALWAYS_ON).get_tracer("t").start_as_current_span("charge") as span:
        latency.observe(0.3, provider="acme")
    trace_id = format(span.get_span_context().trace_id, "032x")
    span_id = format(span.get_span_context().span_id, "016x")
    start = time.time() - 60

    wait_query(base, 'prom_orders_processed_total{status="failed"}', 3)
    wait_query(base, 'prom_orders_processed_total{status="ok"}', 1)
    wait_query(base, 'prom_payment_latency_seconds_count{provider="acme"}', 1)
    wait_query(base, 'prom_payment_latency_seconds_bucket{provider="acme",le="0.5"}', 1)
    wait_query(base, 'up{job="app"}', 1)

    exemplars: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not exemplars:
        data = api(base, "query_exemplars", query="prom_payment_latency_seconds_bucket",
                   start=start, end=time.time() + 60)
        exemplars = [e for series in data for e in series["exemplars"]]
        time.sleep(0.25)
    if not exemplars:
        req = urllib.request.Request(f"http://127.0.0.1:{scraped[1]}/metrics",
                                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        body = urllib.request.urlopen(req, timeout=10).read().decode()
        pytest.fail("Prometheus stored no exemplar; exposed: "
                    + "\n".join(line for line in body.splitlines() if "prom_payment" in line and "#" in line))
    assert exemplars[0]["labels"] == {"trace_id": trace_id, "span_id": span_id}
    assert float(exemplars[0]["value"]) == 0.3
