"""Every benchmark script runs with a tiny n and reports every figure it prints: a smoke test, never a
timing assertion (the figures themselves are read from a full run, in the same process, by a person)."""

from __future__ import annotations

import importlib.util
import math
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import require

BENCHMARKS = Path(__file__).parent / "benchmarks"

CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "bench_db": ({"n": 20, "rounds": 1}, {f"{side}_{key}" for side in ("sqlalchemy", "psycopg2") for key in (
        "bare_us", "obskit_us", "ratio", "overhead_us")} | {"sdk_span_us", "emitted", "delivered"}),
    "bench_export": ({"n": 16, "rounds": 1, "batch": 8}, {f"{signal}_{key}" for signal in ("span", "log")
                                                          for key in (
        "sdk_us", "obskit_us", "ratio", "grpc_sdk_us", "grpc_obskit_us", "grpc_ratio")} | {
        f"export_{signal}_{key}" for signal in ("span", "log") for key in (
            "sdk_us", "obskit_us", "ratio", "sdk_delivered", "obskit_delivered", "emitted")}),
    "bench_burst": ({"n": 200, "rounds": 1}, {f"{side}_{key}" for side in ("raw", "obskit") for key in (
        "emit_s", "shutdown_s", "first_export_s", "delivered", "delivered_fraction")}
        | {"emitted", "ratio", "obskit_accounted_fraction"}),
    "bench_tracing": ({"n": 50, "rounds": 1}, {"raw", "obskit", "raw_attrs", "obskit_attrs", "ratio",
                                               "ratio_attrs", "raw_delivered", "obskit_delivered",
                                               "raw_attrs_delivered", "obskit_attrs_delivered"}),
    "bench_logging": ({"n": 200, "rounds": 1}, {f"{side}_{key}" for key in ("ns", "delivered") for side in (
        "obskit", "structlog", "stdlib", "requests", "otlp_requests", "otlp_sustained")}
        | {"ratio", "otlp_ratio", "otlp_sustained_ratio"}),
    "bench_metrics": ({"n": 50, "rounds": 1}, {"counter_obskit", "counter_prometheus", "counter_otel_sdk",
                                               "histogram_obskit_exemplar", "counter_vs_prometheus",
                                               "exemplar_over_plain"}),
    "bench_otel_api": ({"n": 50, "rounds": 1}, {"prometheus_ns", "otel_sdk_ns", "obskit_ns", "vs_prometheus",
                                                "sdk_over_obskit", "emitted", "obskit_held"}),
    "bench_resilience": ({"n": 50, "repeat": 1}, {"bare_us", "obskit_us", "pybreaker_us",
                                                  "obskit_overhead_us", "ratio_to_pybreaker"}),
    "bench_http_clients": ({"n": 20, "rounds": 1}, {f"{client}_{key}" for client in ("urllib3", "urllib")
                                                     for key in ("bare_us", "obskit_us", "ratio",
                                                                 "overhead_us")} | {"emitted", "delivered"}),
    # Peers (logfire, sentry, ddtrace) left out: optional packages, and twice the servers to start. Django
    # too: its three servers would take the test from about 19 s to 28 s (each server ~3 s: start, every
    # worker booted, 1 s of load, stop); it shares Flask's gunicorn path, only the app differs.
    "bench_http": ({"seconds": 1, "connections": 4, "peers": False, "frameworks": ("fastapi", "flask")}, {
        f"{fw}_{key}" for fw in ("fastapi", "flask") for key in (
        "bare_rps", "obskit_rps", "contrib_rps", "obskit_ratio", "contrib_ratio", "obskit_served",
        "obskit_delivered", "obskit_delivered_fraction", "contrib_served", "bare_cpu_us", "obskit_cpu_us",
        "contrib_cpu_us", "obskit_cpu_ratio", "obskit_cpu_vs_contrib", "bare_p99_ms", "obskit_p99_ms",
        "contrib_p99_ms")} | {f"fastapi_contrib_default_{key}" for key in (
        "rps", "ratio", "cpu_us", "cpu_ratio", "served", "p99_ms")}
        | {"fastapi_obskit_cpu_vs_contrib_default"}),
    # contrib may deliver 0
    "bench_startup": ({"rounds": 1, "peers": False}, {f"{side}_{key}" for side in ("obskit", "hand")
                                                      for key in (
        "start_ms", "exit_ms", "export_ms", "after_ms", "teardown_ms", "atexit_ms", "delivered", "emitted")}
        | {"python_start_ms", "python_exit_ms", "start_vs_hand", "exit_vs_hand"}),
    "bench_memory": ({"seconds": 1, "connections": 4, "peers": False, "top": 3}, {
        f"{side}_{collector}_{key}" for side in ("obskit", "contrib") for collector in ("up", "down")
        for key in ("idle_mb", "rss_mb", "hwm_mb", "served")} | {
        "bare_up_rss_mb", "obskit_up_delivered", "up_ratio", "down_ratio", "obskit_held_kb",
        "contrib_held_kb", "held_ratio", "obskit_modules", "contrib_modules"}),  # contrib may deliver 0
    "bench_aiohttp": ({"n": 20, "rounds": 1}, {"bare_us", "obskit_us", "ratio", "overhead_us",
                                               "server_only_us", "server_only_ratio", "served", "delivered",
                                               "delivered_fraction"}),
    "bench_grpc": ({"n": 20, "rounds": 1}, {"bare_us", "obskit_us", "ratio", "overhead_us", "emitted",
                                            "delivered"}),
    "bench_rabbitmq": ({"n": 20, "rounds": 1}, {"pika_bare_us", "pika_obskit_us", "pika_ratio",
                                                "pika_overhead_us", "sdk_span_us", "emitted", "delivered"}),
}
# Benchmarks that drive a real server with a load generator from Debian (.ci/run installs it).
NEEDS = {"bench_http": "wrk"}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_and_reports_every_figure(name: str, fresh: None) -> None:
    """run() with a tiny n returns a positive, finite value for every figure its table prints."""
    kwargs, expected = CASES[name]
    if name in NEEDS:
        require(shutil.which(NEEDS[name]) is not None, f"{NEEDS[name]} not installed (Debian package)")
    result = _load(name).run(**kwargs)
    assert expected <= set(result), expected - set(result)
    for key in expected:
        assert math.isfinite(result[key]) and result[key] > 0, (key, result[key])


def test_benchmarks_folder_has_no_unlisted_script() -> None:
    """A new benchmark script gets a smoke test here too."""
    assert {p.stem for p in BENCHMARKS.glob("bench_*.py")} == set(CASES)


def test_logging_benchmark_main_prints_its_table(capsys: pytest.CaptureFixture[str], fresh: None) -> None:
    """bench_logging.main(argv) runs end to end with a small n and prints the ratio."""
    assert _load("bench_logging").main(["100"]) == 0
    assert "ratio" in capsys.readouterr().out


def test_sentry_receiver_counts_the_transactions_of_each_project() -> None:
    """bench_http's loopback Sentry counts transaction items per project, plain or gzipped, items with or
    without a length, and never a line inside a payload that merely looks like an item header."""
    import gzip
    import urllib.request

    bench_http = _load("bench_http")
    payload = b'one\n{"type":"transaction"}\nthree'  # an attachment whose second line reads as a header
    envelope = (b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'
                b'{"type":"transaction","length":2}\n{}\n'
                b'{"type":"attachment","length":%d}\n%s\n'
                b'{"type":"transaction"}\n{"spans":[]}\n'
                b'{"type":"client_report"}\n{}\n') % (len(payload), payload)
    with bench_http.SentryReceiver() as sentry:
        for body, headers in ((envelope, {}), (gzip.compress(envelope), {"Content-Encoding": "gzip"})):
            request = urllib.request.Request(f"http://127.0.0.1:{sentry.port}/api/7/envelope/", data=body,
                                             headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        assert (sentry.transactions(7), sentry.transactions(8), len(sentry.arrivals)) == (4, 0, 2)
