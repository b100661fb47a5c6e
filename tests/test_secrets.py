"""Secrets never leave: a canary in every place a secret can enter, searched for in every output.

Outputs searched: the application's stdout and stderr, every OTLP request a loopback collector decoded (spans,
log records, metrics, resources), the headers it received, the ``/metrics`` scrape, and ``obskit config``'s
stdout and stderr, over gRPC and over HTTP. The code's canaries are planted by ``canary_app.py``; the
environment's here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from canary_app import CODE_CANARIES
from otlp_receiver import OTLPReceiver, attributes

HERE = Path(__file__).parent


def _env_canaries(rx: OTLPReceiver) -> tuple[dict[str, str], dict[str, str]]:
    """(environment variables to set, place -> canary) for a run against ``rx``."""
    c = {place: f"cnry{i:03d}env" for i, place in enumerate([
        "OTEL_EXPORTER_OTLP_HEADERS well-formed entry of a rejected value",
        "OTEL_EXPORTER_OTLP_HEADERS malformed entry",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS (obskit does not read it, so no exporter may)",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS malformed entry",
        "OBSKIT_RESOURCE_ATTRIBUTES malformed entry",
        "OTEL_RESOURCE_ATTRIBUTES auth_token",
        "OTEL_EXPORTER_OTLP_ENDPOINT query api_key",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT userinfo",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT query token",
    ])}
    k = list(c.values())
    metrics_path = "/v1/metrics" if rx.protocol == "http" else ""
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc" if rx.protocol == "grpc" else "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-rejected={k[0]},malformed-{k[1]}",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-per-signal={k[2]}",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": f"bad-{k[3]}",
        "OBSKIT_RESOURCE_ATTRIBUTES": f"broken-{k[4]}",
        "OTEL_RESOURCE_ATTRIBUTES": f"auth_token={k[5]},team=payments",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"{rx.endpoint}?api_key={k[6]}",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://user:{k[7]}@127.0.0.1:{rx.port}{metrics_path}?token={k[8]}",
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",
    }
    return env, c


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    env.update(extra)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=HERE)


def _leaks(canaries: dict[str, str], outputs: dict[str, str]) -> list[str]:
    return [f"{place} ({canary}) in {where}" for place, canary in canaries.items()
            for where, text in outputs.items() if canary in text]


def test_no_canary_reaches_any_output(receiver: OTLPReceiver, tmp_path: Path) -> None:
    """A distinct canary in each of 60 places (51 in code, 9 in the environment) appears in no output."""
    env_vars, env_canaries = _env_canaries(receiver)
    env = _clean_env(**env_vars)
    scrape = tmp_path / "metrics.txt"
    app = _run([sys.executable, "canary_app.py", str(scrape)], env)
    assert app.returncode == 0, app.stderr[-3000:]
    config = _run([sys.executable, "-m", "obskit._cli", "config"], env)
    assert config.returncode == 0, config.stderr

    assert receiver.wait_for(lambda rx: bool(rx.spans() and rx.log_records() and rx.metrics()), timeout=20)
    outputs: dict[str, str] = {
        "stdout": app.stdout, "stderr": app.stderr, "/metrics": scrape.read_text(),
        "obskit config stdout": config.stdout, "obskit config stderr": config.stderr,
        "collector headers": repr(receiver.headers),
        **{f"OTLP {signal}": "\n".join(str(r) for r in receiver.requests(signal))
           for signal in ("traces", "logs", "metrics")},
    }

    # Every exit was exercised, so a canary's absence means something.
    span_names = {s.name for s in receiver.spans()}
    assert {"start", "linked", "boom", "GET /items"} <= span_names, span_names
    assert any(s.kind == 3 for s in receiver.spans())  # CLIENT spans of httpx and requests
    assert "uvicorn.access" in app.stdout and '"event":"keys"' in app.stdout
    assert "internal error in span end" in app.stderr
    assert "canary_calls_total" in outputs["/metrics"] and "canary_logins_total" in outputs["/metrics"]
    assert {"canary_calls", "canary_logins", "canary_latency"} <= {m.name for m in receiver.metrics()}
    assert receiver.resources("traces")[0]["auth_token"] == "[REDACTED]"
    assert "OTEL_EXPORTER_OTLP_HEADERS" in app.stdout and "OBSKIT_RESOURCE_ATTRIBUTES" in app.stdout
    assert len(CODE_CANARIES) + len(env_canaries) == 60

    leaks = _leaks({**CODE_CANARIES, **env_canaries}, outputs)
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_no_canary_in_what_a_failing_export_prints(protocol: str, tmp_path: Path) -> None:
    """With the collector down, the exporters' failure messages (URLs included) carry no canary."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    canaries = {"endpoint query api_key": "cnry001dead", "per-signal endpoint userinfo": "cnry002dead",
                "per-signal endpoint query token": "cnry003dead", "log field password": "cnry004dead"}
    path = "/v1/traces" if protocol == "http/protobuf" else ""
    env = _clean_env(
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OBSKIT_EXPORT_TIMEOUT="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}?api_key=cnry001dead",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://u:cnry002dead@127.0.0.1:{port}{path}?token=cnry003dead",
    )
    code = textwrap.dedent("""
        import obskit
        obskit.init(service_name="dead", log_format="json", integrations="none")
        obskit.get_logger("x").info("hi", password="cnry004dead")
        with obskit.span("s"):
            obskit.counter("dead_calls").inc()
        obskit.force_flush(4)
        obskit.shutdown(4)
    """)
    proc = _run([sys.executable, "-c", code], {**env, "OBSKIT_DEBUG": "1"})
    assert proc.returncode == 0, proc.stderr
    leaks = _leaks(canaries, {"stdout": proc.stdout, "stderr": proc.stderr})
    assert not leaks, "\n".join(leaks) + "\n" + proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_obskit_headers_replace_the_otel_variable_on_both_transports(protocol: str) -> None:
    """OBSKIT_OTLP_HEADERS wins over OTEL_EXPORTER_OTLP_HEADERS: only its headers reach the collector."""
    with OTLPReceiver(protocol) as rx:
        env = _clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL="grpc" if protocol == "grpc" else "http/protobuf",
                         OBSKIT_OTLP_HEADERS="x-mine=1", OTEL_EXPORTER_OTLP_HEADERS="x-theirs=2",
                         OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-signal=3")
        code = textwrap.dedent("""
            import obskit
            obskit.init(service_name="h", integrations="none", metrics=False)
            with obskit.span("s"):
                pass
            obskit.shutdown(5)
        """)
        proc = _run([sys.executable, "-c", code], env)
        assert proc.returncode == 0, proc.stderr
        assert rx.wait_for(lambda r: bool(r.spans()))
        sent: dict[str, Any] = rx.headers[0]
    assert sent.get("x-mine") == "1"
    assert "x-theirs" not in sent and "x-signal" not in sent


def test_resource_attributes_variable_rejected_whole(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_RESOURCE_ATTRIBUTES with one malformed entry adds none of its entries to the resource (the SDK's
    own reading of the variable, which would add the well-formed ones, is not used)."""
    import io

    import obskit

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=payments,broken")
    tel = obskit.init(service_name="r", log_stream=io.StringIO(), integrations="none", metrics=False)
    assert "team" not in tel.resource.attributes
    assert any("OTEL_RESOURCE_ATTRIBUTES" in w for w in tel.config.warnings)


def test_resource_is_redacted_and_exported(receiver: OTLPReceiver, fresh: None) -> None:
    """Resource attributes named like secrets are redacted in what the collector receives."""
    import io

    import obskit

    obskit.init(service_name="r", otlp_endpoint=receiver.endpoint, log_stream=io.StringIO(),
                otlp_protocol="grpc" if receiver.protocol == "grpc" else "http/protobuf", integrations="none",
                env={"OTEL_RESOURCE_ATTRIBUTES": "auth_token=t0k,team=payments"})
    with obskit.span("s"):
        pass
    obskit.force_flush(5)
    assert receiver.wait_for(lambda rx: bool(rx.spans()))
    resource = receiver.resources("traces")[0]
    assert resource["auth_token"] == "[REDACTED]" and resource["team"] == "payments"
    first = receiver.requests("traces")[0].resource_spans[0]
    assert attributes(first.resource.attributes)["service.name"] == "r"
