"""`obskit doctor`, run as a user would (a subprocess) against real loopback ports: closed, hung, a live
receiver over gRPC and HTTP, the wrong protocol on a port, bad variables; and its pure checks in-process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import protocol_of
from obskit.integrations._contract import Integration
from otlp_receiver import OTLPReceiver

from obskit._config import resolve
from obskit._doctor import export_checks, render
from obskit._doctor._environment import check_multiproc_dir, check_otel_versions, check_semconv
from obskit._doctor._integrations import _one
from obskit._doctor._port import check_metrics_port
from obskit._doctor._report import exit_code

HERE = Path(__file__).parent


def doctor(env: dict[str, str], timeout: float = 2.0) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "obskit._cli", "doctor", "--timeout", str(timeout)],
                          capture_output=True, text=True, timeout=120, env=full, cwd=HERE)


class Run:
    """What one doctor run printed (``stdout``, ``stderr``) and its exit code."""

    def __init__(self, stdout: str, stderr: str, returncode: int) -> None:
        self.stdout, self.stderr, self.returncode = stdout, stderr, returncode


def export_doctor(env: dict[str, str], timeout: float = 2.0) -> Run:
    """The settings and per-signal export checks, in this process (real sockets, real receivers), printed
    through the doctor's one scrubbing exit; the subprocess runs below cover the whole command."""
    found = export_checks(resolve({}, env), env, timeout)
    return Run(render(found, env), "", exit_code(found))


def lines(proc: Run | subprocess.CompletedProcess[str], start: str) -> list[str]:
    """The output lines whose check name starts with ``start`` (e.g. "traces")."""
    return [line for line in proc.stdout.splitlines() if line[5:].startswith(start)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that completes the TCP handshake (the kernel's backlog) but whose owner never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_closed_port_fails_with_refused(protocol: str) -> None:
    """Nothing listening: each exported signal FAILs with "connection refused", and the exit code is 1."""
    port = free_port()
    proc = export_doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                   "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for signal in ("traces", "logs", "metrics"):
        (line,) = lines(proc, signal)
        assert line.startswith("FAIL") and "connection refused" in line, line


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_hung_port_times_out_in_bounded_time(protocol: str, hung_port: int) -> None:
    """A port that accepts but never answers: FAIL "timed out after 1s" per signal, the whole run bounded."""
    started = time.monotonic()
    proc = export_doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{hung_port}",
                   "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}, timeout=1.0)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for signal in ("traces", "logs", "metrics"):
        (line,) = lines(proc, signal)
        assert line.startswith("FAIL") and "timed out after 1s" in line, line


def test_hung_receiver_over_http_times_out() -> None:
    """A receiver that reads the request and never answers (a wedged collector) times out too."""
    with OTLPReceiver("http", mode="hang") as rx:
        proc = export_doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
                       "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, timeout=1.0)
    assert proc.returncode == 1
    assert all("timed out" in line for s in ("traces", "logs", "metrics") for line in lines(proc, s))


def test_live_receiver_accepts_an_empty_export_per_signal(receiver: OTLPReceiver) -> None:
    """Against a live receiver (gRPC and HTTP) each signal is OK: one real, empty export request each, with
    the configured header sent but never printed."""
    proc = doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                   "OTEL_EXPORTER_OTLP_PROTOCOL": protocol_of(receiver),
                   "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20sk_doctor_0917"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for signal in ("traces", "logs", "metrics"):
        (line,) = lines(proc, signal)
        assert line.startswith("OK") and "connected and accepted" in line, line
        assert len(receiver.requests(signal)) == 1
    assert not receiver.spans() and not receiver.log_records() and not receiver.metrics()  # empty requests
    assert all(h.get("authorization") == "Bearer sk_doctor_0917" for h in receiver.headers)
    assert "sk_doctor_0917" not in proc.stdout + proc.stderr


def test_http_port_given_as_grpc_says_which_protocol_was_meant() -> None:
    """An OTLP/HTTP port with protocol grpc: "this port speaks HTTP/1.1 ... did you mean http/protobuf"."""
    with OTLPReceiver("http") as rx:
        proc = export_doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
                              "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert proc.returncode == 1
    (line,) = lines(proc, "traces")
    assert line.startswith("FAIL") and "speaks HTTP/1.1" in line and "http/protobuf" in line, line
    assert "4318" in line


def test_grpc_port_given_as_http_says_which_protocol_was_meant() -> None:
    """A gRPC port with protocol http/protobuf: "this port speaks HTTP/2 (gRPC) ... did you mean grpc"."""
    with OTLPReceiver("grpc") as rx:
        proc = export_doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
                       "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert proc.returncode == 1
    (line,) = lines(proc, "logs")
    assert line.startswith("FAIL") and "speaks HTTP/2" in line and "did you mean grpc" in line, line


def test_wrong_path_reports_the_http_status() -> None:
    """A per-signal URL without /v1/traces: the receiver's HTTP 404 is reported with what to change."""
    with OTLPReceiver("http") as rx:
        proc = export_doctor({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{rx.endpoint}/wrong",
                       "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    (line,) = lines(proc, "traces")
    assert line.startswith("FAIL") and "HTTP 404" in line and "/v1/traces" in line, line


def test_endpoint_without_scheme_fails_and_says_nothing_is_exported() -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4317 (no scheme) is a FAIL saying nothing will be exported."""
    proc = doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"})
    assert proc.returncode == 1
    (line,) = lines(proc, "OTEL_EXPORTER_OTLP_ENDPOINT")
    assert line.startswith("FAIL") and "no scheme" in line and "nothing will be exported" in line, line
    assert "http://localhost:4317" in line


def test_bad_variable_is_named_with_the_accepted_values() -> None:
    """A bad value is a WARN naming the variable and what it accepts; warnings alone exit 0; every
    integration the registry holds has its line."""
    from obskit.integrations import _registry

    proc = doctor({"OBSKIT_LOG_FORMAT": "xml", "OTEL_TRACES_SAMPLER": "sometimes"})
    assert proc.returncode == 0, proc.stdout
    names = [line.split(":")[0].split()[-1] for line in lines(proc, "integration ")]
    assert names == _registry.names()
    config_lines = lines(proc, "config")
    assert any(line.startswith("WARN") and "OBSKIT_LOG_FORMAT" in line
               and "'json', 'console' or 'auto'" in line for line in config_lines), config_lines
    assert any("OTEL_TRACES_SAMPLER" in line and "parentbased_always_on" in line for line in config_lines)


def test_no_credential_or_header_value_in_the_output() -> None:
    """URL userinfo, sensitive query values and header values never appear, whatever the checks find."""
    with OTLPReceiver("http") as rx:
        proc = export_doctor({
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://alice:pw_0473@127.0.0.1:{rx.port}?api_key=k_0474",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=h_0475",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://bob:pw_0476@127.0.0.1:{free_port()}/v1/logs"})
        grpc_creds = export_doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://carol:pw_0477@127.0.0.1:4317",
                             "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    text = proc.stdout + proc.stderr + grpc_creds.stdout + grpc_creds.stderr
    for secret in ("pw_0473", "k_0474", "h_0475", "pw_0476", "pw_0477", "alice", "bob", "carol"):
        assert secret not in text, secret
    assert lines(proc, "traces")[0].startswith("OK")  # the checks ran: it reached the receiver
    assert "connection refused" in lines(proc, "logs")[0]
    (line,) = lines(grpc_creds, "OTEL_EXPORTER_OTLP_ENDPOINT")
    assert line.startswith("FAIL") and "credentials" in line and "OBSKIT_OTLP_HEADERS" in line


def test_metrics_port_free_held_or_foreign_address() -> None:
    """/metrics: a free port is OK; a held one names the holder's pid; a foreign address FAILs."""
    port = free_port()
    free = check_metrics_port(resolve({}, {"OBSKIT_METRICS_PORT": str(port)}), 1.0)
    assert free.status == "OK" and "is free" in free.message
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        held_port = s.getsockname()[1]
        held = check_metrics_port(resolve({}, {"OBSKIT_METRICS_PORT": str(held_port)}), 1.0)
    assert held.status == "WARN" and f"pid {os.getpid()}" in held.message, held
    foreign = check_metrics_port(resolve({}, {"OBSKIT_METRICS_PORT": str(port),
                                              "OBSKIT_METRICS_ADDR": "192.0.2.1"}), 1.0)
    assert foreign.status == "FAIL" and "not an address of this machine" in foreign.message


def test_metrics_port_served_by_obskit_is_ok(fresh: None) -> None:
    """A port held by a process serving obskit's /metrics (the service itself) is OK, not a conflict."""
    import obskit

    with open(os.devnull, "w") as devnull:
        tel = obskit.init(service_name="doctor-port", metrics_port=0, log_stream=devnull, env={})
        port = tel._metrics.port
        check = check_metrics_port(resolve({}, {"OBSKIT_METRICS_PORT": str(port)}), 2.0)
        obskit.shutdown()
    assert check.status == "OK" and "serves obskit's /metrics" in check.message, check


def test_integration_missing_names_the_extra_and_selection_is_reported() -> None:
    """A missing library names its extra; an installed one left out by OBSKIT_INTEGRATIONS is a WARN."""
    missing = Integration(name="nosuchlib", extra="nosuchlib", requires={"nosuchlib-dist": "1.0"},
                          setup=lambda config: None)
    check = _one(missing, resolve({}, {}))
    assert check.status == "OK" and "pip install 'obskit[nosuchlib]'" in check.message
    named = _one(missing, resolve({}, {"OBSKIT_INTEGRATIONS": "nosuchlib"}, integration_names={"nosuchlib"}))
    assert named.status == "WARN"
    from obskit.integrations import _registry

    requests_integration = _registry.get("requests")
    assert requests_integration is not None
    off = _one(requests_integration, resolve({}, {"OBSKIT_INTEGRATIONS": "none"}))
    assert off.status == "WARN" and "leaves it out" in off.message
    on = _one(requests_integration, resolve({}, {}))
    assert on.status == "OK" and "instrumented by init()" in on.message


def test_multiprocess_directory_names_files_of_dead_processes(tmp_path: Path) -> None:
    """Files of a process that is gone are reported (with its pid); a live process's are not stale."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"counter_{dead.pid}.db").write_bytes(b"")
    (tmp_path / f"counter_{os.getpid()}.db").write_bytes(b"")
    check = check_multiproc_dir(resolve({}, {"OBSKIT_MULTIPROC_DIR": str(tmp_path)}))
    assert check.status == "WARN" and f"pid {dead.pid}" in check.message and "1 stale file" in check.message
    (tmp_path / f"counter_{dead.pid}.db").unlink()
    clean = check_multiproc_dir(resolve({}, {"OBSKIT_MULTIPROC_DIR": str(tmp_path)}))
    assert clean.status == "OK" and "1 live process" in clean.message


def test_semconv_opt_in_without_http_warns() -> None:
    """OTEL_SEMCONV_STABILITY_OPT_IN without http: WARN (old metric names); unset or http: OK."""
    assert check_semconv({}).status == "OK"
    assert check_semconv({"OTEL_SEMCONV_STABILITY_OPT_IN": "database,http"}).status == "OK"
    warn = check_semconv({"OTEL_SEMCONV_STABILITY_OPT_IN": "database"})
    assert warn.status == "WARN" and "http_server_request_duration_seconds" not in warn.message
    assert "add http" in warn.message


def test_otel_versions_must_belong_together() -> None:
    """Core packages of two releases FAIL; contrib of another release WARNs; the installed set is OK."""
    from obskit._doctor._environment import otel_versions

    assert check_otel_versions(otel_versions()).status == "OK"
    split = check_otel_versions({"opentelemetry-api": "1.45.2", "opentelemetry-sdk": "1.44.0"})
    assert split.status == "FAIL" and "one release" in split.message
    old_contrib = check_otel_versions({"opentelemetry-api": "1.45.2", "opentelemetry-sdk": "1.45.2",
                                       "opentelemetry-instrumentation-requests": "0.60b0"})
    assert old_contrib.status == "WARN" and "0.66b" in old_contrib.message
    too_old = check_otel_versions({"opentelemetry-api": "1.30.0", "opentelemetry-sdk": "1.30.0"})
    assert too_old.status == "FAIL"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_https_to_a_plain_port_is_a_tls_error(protocol: str) -> None:
    """An https:// endpoint on a port without TLS: a FAIL that says TLS, over gRPC and HTTP."""
    with OTLPReceiver("grpc" if protocol == "grpc" else "http") as rx:
        proc = export_doctor({"OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{rx.port}",
                              "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    (line,) = lines(proc, "traces")
    assert line.startswith("FAIL") and "TLS error" in line and "use http://" in line, line
