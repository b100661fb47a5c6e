"""`obskit demo --serve` as a user runs it (a subprocess on loopback ports), and the demos' summary."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from otlp_receiver import OTLPReceiver

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    env.update(extra)
    return env


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`obskit demo --serve` on free ports; yields (the process, its /metrics port) once it is up."""
    proc = subprocess.Popen([sys.executable, "-m", "obskit._cli", "demo", "--serve", "--port", "0",
                             "--format", "json", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env or clean_env(), cwd=HERE)
    try:
        assert proc.stderr is not None
        banner = [proc.stderr.readline() for _ in range(2)]
        match = re.search(r"/metrics on http://[\d.]+:(\d+)/metrics", banner[1])
        assert match, banner
        yield proc, int(match.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def value(text: str, pattern: str) -> float:
    """Sum of the samples whose line matches ``pattern`` (a regex over the whole sample line)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if not line.startswith("#") and re.match(pattern, line))


def test_serve_fills_the_dashboards_metrics_then_stops_at_duration() -> None:
    """Under its own load, with an outage every 6 s: RED per route with 5xx, the breaker opening and
    closing, fallbacks, retries, the bulkhead, outgoing HTTP, DB and RPC; it stops at --duration with a
    summary."""
    with serving("--metrics-port", "0", "--duration", "16", "--outage-every", "6") as (proc, port):
        deadline = time.monotonic() + 14
        text = ""
        while time.monotonic() < deadline:
            text = scrape(port)
            if value(text, r'obskit_circuit_breaker_transitions_total\{.*to_state="closed"') >= 1:
                break
            time.sleep(1)
        assert value(text, r'http_server_request_duration_seconds_count\{.*http_route="/orders"') > 10
        assert value(text, r'http_server_request_duration_seconds_count\{.*http_route="/orders/\{id\}"') > 0
        assert value(text, r'http_server_request_duration_seconds_count\{.*http_response_status_code="5') > 0
        assert value(text, r'http_server_active_requests\{') >= 0 and "http_server_active_requests{" in text
        assert value(text, r'obskit_circuit_breaker_transitions_total\{.*to_state="open"') >= 1
        assert value(text, r'obskit_circuit_breaker_transitions_total\{.*to_state="closed"') >= 1
        assert value(text, r'obskit_fallback_calls_total\{') > 0
        assert value(text, r'obskit_retry_calls_total\{') > 0
        assert value(text, r'obskit_bulkhead_limit\{name="payment_pool"\}') == 4
        for metric in ("http_client_request_duration_seconds_count", "rpc_client_call_duration_seconds_count",
                       "db_client_operation_duration_seconds_count"):
            assert value(text, metric + r"\{") > 0, metric
        assert proc.wait(30) == 0
        assert proc.stderr is not None
        summary = proc.stderr.read()
    assert "--- obskit demo --serve ---" in summary
    assert re.search(r"\d+ requests \(.*x 500", summary), summary
    assert re.search(r"produced \d+ spans, \d+ log lines and \d+ metric series", summary)
    assert "breaker 'payment_service' opened at" in summary


def test_serve_stops_cleanly_on_ctrl_c() -> None:
    """SIGINT (Ctrl-C) ends the service: exit 0, and the summary is printed."""
    with serving("--metrics-port", "0") as (proc, port):
        assert "obskit_telemetry_dropped_total" in scrape(port)
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert proc.stderr is not None
        assert "--- obskit demo --serve ---" in proc.stderr.read()


def test_one_shot_summary_counts_what_it_produced() -> None:
    """`obskit demo` ends with counts a newcomer can check (log lines = lines printed) and the breaker's
    story in three lines; with an endpoint it says where to look (Jaeger search for the service, Grafana)."""
    with OTLPReceiver("grpc") as rx:
        proc = subprocess.run([sys.executable, "-m", "obskit._cli", "demo", "--format", "json"],
                              capture_output=True, text=True, timeout=120, cwd=HERE,
                              env=clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                                            OTEL_SERVICE_NAME="summary-demo"))
        assert proc.returncode == 0, proc.stderr
        exported_spans = len(rx.spans())
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    match = re.search(r"produced (\d+) spans, (\d+) log lines and (\d+) metric series", proc.stderr)
    assert match, proc.stderr
    spans, lines, series = map(int, match.groups())
    assert lines == len(printed)
    assert spans == exported_spans
    assert series > 20
    story = proc.stderr.split("metric series")[1].splitlines()[1:4]
    assert story[0].startswith("breaker 'payment_service' opened at") and "failure rate" in story[0]
    assert "rejected" in story[1] and "closed again" in story[2], story
    assert "http://localhost:16686/search?service=summary-demo" in proc.stderr
    assert "http://localhost:3000/d/obskit-service" in proc.stderr
