"""The ``obskit`` command, run as a user would: a real subprocess, and a real loopback collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from otlp_receiver import OTLPReceiver

OBSKIT = [sys.executable, "-m", "obskit._cli"]


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    full_env.update(env or {})
    return subprocess.run(OBSKIT + args, capture_output=True, text=True, timeout=60, env=full_env,
                          cwd=Path(__file__).parent)


def test_demo_prints_correlated_json_lines() -> None:
    """`obskit demo --format json`: every line is JSON, lines inside spans carry IDs, stdlib included."""
    proc = _run(["demo", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    inside = [e for e in lines if "order_id" in e and e["event"] == "order received"]
    assert inside and all(len(e["trace_id"]) == 32 and len(e["span_id"]) == 16 for e in inside)
    stdlib = [e for e in lines if e["logger"] == "demo.db"]
    assert stdlib and all("trace_id" in e for e in stdlib)
    outside = [e for e in lines if e["event"] == "demo starting"]
    assert outside and "trace_id" not in outside[0]
    rejected = [e for e in lines if e["event"] == "order rejected"]
    assert rejected[0]["exception"][0]["exc_type"] == "ValueError"
    assert all(e.get("card_number", "[REDACTED]") == "[REDACTED]" for e in lines)
    events = [e["event"] for e in lines]
    assert "circuit_breaker.state_changed" in events and "fallback.invoked" in events
    assert "No collector configured" in proc.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_demo_feeds_a_collector_from_the_environment(protocol: str) -> None:
    """With OTEL_EXPORTER_OTLP_* set, the same demo exports spans, log records and metrics."""
    with OTLPReceiver("grpc" if protocol == "grpc" else "http") as rx:
        proc = _run(["demo", "--format", "json"], {
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_SERVICE_NAME": "demo-under-test"})
        assert proc.returncode == 0, proc.stderr
        names = {s.name for s in rx.spans()}
        assert {"checkout", "payment.process"} <= names
        assert rx.resources("traces")[0]["service.name"] == "demo-under-test"
        records = rx.log_records()
        assert any(r.body.string_value == "order received" for r in records)
        assert all(len(r.trace_id) == 16 for r in records if r.body.string_value == "order received")
        metric_names = {m.name for m in rx.metrics()}
        assert any(n.startswith("demo_orders_processed") for n in metric_names), metric_names


def test_config_command_masks_secrets() -> None:
    """`obskit config` prints resolved settings without header values."""
    proc = _run(["config"], {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20sk_live_9",
                             "OBSKIT_LOG_FORMAT": "xml"})
    assert proc.returncode == 0
    assert "sk_live_9" not in proc.stdout and "authorization" in proc.stdout
    assert "OBSKIT_LOG_FORMAT" in proc.stderr


def test_version_command() -> None:
    """`obskit version` prints the package version."""
    import obskit

    assert _run(["version"]).stdout.strip() == obskit.__version__


def test_demo_takes_its_service_name_from_either_variable() -> None:
    """OBSKIT_SERVICE_NAME names the demo's service too (an argument would beat it), else checkout-demo."""
    for env, expected in (({"OBSKIT_SERVICE_NAME": "from-obskit"}, "from-obskit"), ({}, "checkout-demo")):
        proc = _run(["demo", "--format", "json", "--orders", "3"], env)
        assert proc.returncode == 0, proc.stderr
        first = json.loads(proc.stdout.splitlines()[0])
        assert first["service"] == expected


def test_version_flag_and_bare_command() -> None:
    """`obskit --version` names the version; bare `obskit` prints the help listing every command, exit 0."""
    import obskit

    assert _run(["--version"]).stdout.strip() == f"obskit {obskit.__version__}"
    bare = _run([])
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.startswith("usage: obskit")
    assert all(cmd in bare.stdout for cmd in ("demo", "doctor", "config", "version"))


def _table(stdout: str) -> dict[str, tuple[str, str]]:
    """`obskit config`'s table as option -> (value, source)."""
    out = {}
    for line in stdout.splitlines()[1:]:
        option, rest = line.split(None, 1)
        value, source = rest.rsplit(None, 1)
        out[option] = (value.strip(), source)
    return out


def test_config_table_says_where_each_value_came_from() -> None:
    """Each row names its source: OBSKIT_* over OTEL_*, OTEL_*, default, or derived (the protocol)."""
    proc = _run(["config"], {"OBSKIT_SERVICE_NAME": "from-obskit", "OTEL_SERVICE_NAME": "from-otel",
                             "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                             "OTEL_TRACES_EXPORTER": "none", "OBSKIT_LOG_FORMAT": "xml"})
    assert proc.returncode == 0, proc.stderr
    rows = _table(proc.stdout)
    assert rows["service_name"] == ("from-obskit", "OBSKIT_SERVICE_NAME")
    assert rows["otlp_endpoint"] == ("http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_ENDPOINT")
    assert rows["traces_exporter"] == ("none", "OTEL_TRACES_EXPORTER")
    assert rows["otlp_protocol"] == ("http/protobuf", "derived")
    assert rows["log_format"] == ("auto", "default")  # the bad value is rejected, so the default is in force
    assert rows["log_level"] == ("INFO", "default")
    assert "OBSKIT_LOG_FORMAT" in proc.stderr and "'json', 'console' or 'auto'" in proc.stderr


def test_config_json_is_masked_and_names_an_argument_source() -> None:
    """`obskit config --json`: header values and URL credentials masked; an init() argument shows as such."""
    secret_env = {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20sk_live_9",
                  "OTEL_EXPORTER_OTLP_ENDPOINT": "http://alice:pw_0451@127.0.0.1:4318?api_key=k_0452"}
    proc = _run(["config", "--json"], secret_env)
    assert proc.returncode == 0, proc.stderr
    for secret in ("sk_live_9", "pw_0451", "k_0452", "alice"):
        assert secret not in proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    by_name = {r["option"]: r for r in doc["options"]}
    assert by_name["otlp_headers"] == {"option": "otlp_headers", "value": {"authorization": "****"},
                                       "source": "OTEL_EXPORTER_OTLP_HEADERS",
                                       "variables": ["OBSKIT_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"]}
    assert doc["warnings"] == []

    from obskit._config import resolve
    from obskit._config_table import rows

    env = {"OBSKIT_SERVICE_NAME": "from-env"}
    config = resolve({"service_name": "from-code"}, env)
    got = {r.option: r for r in rows(config, env, {"service_name": "from-code"})}
    assert (got["service_name"].value, got["service_name"].source) == ("from-code", "argument")
