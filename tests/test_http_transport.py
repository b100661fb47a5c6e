"""The OTLP/HTTP transport on ``http.client`` (obskit/_runtime/_http_transport.py), against real loopback
servers: what reaches the collector, one kept-alive connection, reconnection, timeouts, the exporter's
retries, TLS, proxies, and failures reported, never raised."""

from __future__ import annotations

import gzip
import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import require
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from obskit._config import resolve
from obskit._runtime._http_transport import StdlibHTTPTransport
from obskit._runtime._otlp_build import build_otlp_exporter

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback servers are reached directly unless a test sets a proxy itself."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.server.delay)
        with self.server.lock:
            self.server.received.append((self.path, dict(self.headers.items()), body, time.monotonic()))
            status, extra = self.server.answers.pop(0) if self.server.answers else (200, {})
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
        # Closing without a "Connection: close": the client only finds out when it next sends.
        self.close_connection = self.server.drop_after_each

    def do_CONNECT(self) -> None:
        """As a proxy: tunnel to the host and port asked for, relaying bytes both ways."""
        with self.server.lock:
            self.server.received.append((self.path, dict(self.headers.items()), b"", time.monotonic()))
        host, port = self.path.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            _relay(self.connection, upstream)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _relay(a: socket.socket, b: socket.socket) -> None:
    while True:
        ready, _, _ = select.select([a, b], [], [], 5)
        if not ready:
            return
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


class Collector(ThreadingHTTPServer):
    """A loopback OTLP/HTTP endpoint (or proxy) recording (path, headers, body, time) of each request and
    counting the connections it accepted; ``answers`` are the first responses' (status, headers), then 200."""

    daemon_threads = True

    def __init__(self, answers: list[tuple[int, dict[str, str]]] | None = None, drop_after_each: bool = False,
                 tls: ssl.SSLContext | None = None, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.answers = list(answers or [])
        self.drop_after_each = drop_after_each
        self.delay = delay
        self.received: list[tuple[str, dict[str, str], bytes, float]] = []
        self.connections = 0
        self.lock = threading.Lock()

    def get_request(self) -> tuple[Any, Any]:
        accepted = super().get_request()
        self.connections += 1
        return accepted

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> Collector:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def _spans(n: int = 3) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for i in range(n):
        with provider.get_tracer("t").start_as_current_span(f"work {i}", attributes={"i": i}):
            pass
    return list(memory.get_finished_spans())


def _exporter(endpoint: str, **env: str) -> Any:
    """The span exporter obskit builds for ``endpoint`` over OTLP/HTTP; ``env``: its variables."""
    config = resolve({"service_name": "transport", "otlp_endpoint": endpoint,
                      "otlp_protocol": "http/protobuf", "otlp_headers": {"x-api-key": "k-1"}}, env)
    return build_otlp_exporter("traces", config)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_post_arrives_with_obskit_headers_and_body(compression: str) -> None:
    """The collector receives obskit's headers and the encoded spans, gzipped when compression is on."""
    spans = _spans()
    with Collector() as rx:
        exporter = _exporter(f"http://127.0.0.1:{rx.port}", OBSKIT_OTLP_COMPRESSION=compression)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
    [(path, headers, body, _)] = rx.received
    headers = {k.lower(): v for k, v in headers.items()}
    assert path == "/v1/traces"
    assert headers["x-api-key"] == "k-1" and headers["content-type"] == "application/x-protobuf"
    assert headers["user-agent"].startswith("OTel-OTLP-Exporter-Python")
    assert headers["content-length"] == str(len(body))
    if compression == "gzip":
        assert headers["content-encoding"] == "gzip"
        body = gzip.decompress(body)
    else:
        assert "content-encoding" not in headers
    assert ExportTraceServiceRequest.FromString(body) == encode_spans(spans)


def test_two_exports_share_one_connection() -> None:
    """Two exports in a row go over one kept-alive connection."""
    with Collector() as rx:
        exporter = _exporter(f"http://127.0.0.1:{rx.port}")
        assert exporter.export(_spans(1)) is SpanExportResult.SUCCESS
        assert exporter.export(_spans(1)) is SpanExportResult.SUCCESS
        exporter.shutdown()
    assert len(rx.received) == 2 and rx.connections == 1


def test_connection_closed_by_the_server_is_reopened() -> None:
    """A keep-alive connection the server has closed since is replaced within the same request."""
    with Collector(drop_after_each=True) as rx:
        transport = StdlibHTTPTransport()
        url = f"http://127.0.0.1:{rx.port}/v1/traces"
        first = transport.request("POST", url, data=b"1", timeout=5)
        time.sleep(0.2)  # the server has closed its end by now
        second = transport.request("POST", url, data=b"2", timeout=5)
        transport.close()
    assert (first.status_code, first.error) == (200, None)
    assert (second.status_code, second.error) == (200, None)
    assert [body for _, _, body, _ in rx.received] == [b"1", b"2"] and rx.connections == 2


def test_unanswered_request_ends_at_the_timeout() -> None:
    """A server that accepts and never answers: the export fails once its timeout has passed, not later."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # never accepts: the kernel completes the connect
        exporter = _exporter(f"http://127.0.0.1:{silent.getsockname()[1]}", OBSKIT_EXPORT_TIMEOUT="1")
        start = time.monotonic()
        assert exporter.export(_spans(1)) is SpanExportResult.FAILURE
        elapsed = time.monotonic() - start
        result = StdlibHTTPTransport().request("POST", f"http://127.0.0.1:{silent.getsockname()[1]}/",
                                               data=b"x", timeout=0.3)
        exporter.shutdown()
    assert 0.9 < elapsed < 2.5, elapsed
    assert isinstance(result.error, TimeoutError) and result.status_code is None
    assert StdlibHTTPTransport().is_connection_error(result.error)  # so the exporter may retry it


def test_close_during_a_request_does_not_wait_for_it() -> None:
    """close() (the exporter's shutdown) returns at once during a slow request, which still completes and
    then leaves no connection open."""
    with Collector(delay=1.0) as rx:
        transport = StdlibHTTPTransport()
        results: list[Any] = []
        url = f"http://127.0.0.1:{rx.port}/v1/traces"
        sender = threading.Thread(target=lambda: results.append(transport.request("POST", url, data=b"x",
                                                                                  timeout=5)))
        sender.start()
        time.sleep(0.3)
        start = time.monotonic()
        transport.close()
        closing = time.monotonic() - start
        sender.join(5)
    assert closing < 0.2, closing
    assert [(r.status_code, r.error) for r in results] == [(200, None)]
    assert transport._conn is None  # closed as the request ended


def test_503_with_retry_after_is_retried_by_the_exporter() -> None:
    """A 503 with Retry-After: the exporter waits that long and its retry delivers on the next request."""
    with Collector(answers=[(503, {"Retry-After": "2"})]) as rx:
        exporter = _exporter(f"http://127.0.0.1:{rx.port}")
        assert exporter.export(_spans(1)) is SpanExportResult.SUCCESS
        exporter.shutdown()
    assert len(rx.received) == 2
    gap = rx.received[1][3] - rx.received[0][3]
    assert gap > 1.9, gap  # Retry-After's 2 s, not the exporter's own first backoff (about 1 s)


def test_unreachable_port_fails_without_raising() -> None:
    """Nothing listening: the request reports a connection error, and the export fails within its timeout."""
    url = f"http://127.0.0.1:{_closed_port()}"
    transport = StdlibHTTPTransport()
    result = transport.request("POST", f"{url}/v1/traces", data=b"x", timeout=2)
    assert isinstance(result.error, ConnectionRefusedError) and transport.is_connection_error(result.error)
    exporter = _exporter(url, OBSKIT_EXPORT_TIMEOUT="1")
    start = time.monotonic()
    assert exporter.export(_spans(1)) is SpanExportResult.FAILURE
    assert time.monotonic() - start < 2.5
    exporter.shutdown()


# --- TLS ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, made for this test run."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    try:
        _make_cert_cryptography(cert, key)
    except ImportError:
        require(shutil.which("openssl") is not None, "needs the cryptography package or openssl")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
                       check=True, capture_output=True, timeout=60)
    return cert, key


def _make_cert_cryptography(cert: Path, key: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def _server_tls(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


def test_https_verified_with_the_ca_file(self_signed: tuple[Path, Path]) -> None:
    """HTTPS to a self-signed collector: delivered when its CA file is configured, refused otherwise."""
    cert, key = self_signed
    with Collector(tls=_server_tls(cert, key)) as rx:
        exporter = _exporter(f"https://127.0.0.1:{rx.port}", OTEL_EXPORTER_OTLP_CERTIFICATE=str(cert))
        assert exporter.export(_spans(1)) is SpanExportResult.SUCCESS
        exporter.shutdown()
        unverified = StdlibHTTPTransport().request("POST", f"https://127.0.0.1:{rx.port}/v1/traces",
                                                   data=b"x", timeout=5)
    assert len(rx.received) == 1
    assert isinstance(unverified.error, ssl.SSLCertVerificationError)


def test_client_certificate_is_presented(self_signed: tuple[Path, Path]) -> None:
    """A collector requiring a client certificate accepts the configured (certificate, key), refuses none."""
    cert, key = self_signed
    url = "https://127.0.0.1:{}/v1/traces"
    with Collector(tls=_server_tls(cert, key, client_ca=cert)) as rx:
        with_cert = StdlibHTTPTransport(verify=str(cert), cert=(str(cert), str(key)))
        ok = with_cert.request("POST", url.format(rx.port), data=b"x", timeout=5)
        without = StdlibHTTPTransport(verify=str(cert)).request("POST", url.format(rx.port), data=b"x",
                                                                timeout=5)
        with_cert.close()
    assert (ok.status_code, ok.error) == (200, None)
    assert without.status_code is None and isinstance(without.error, OSError)


# --- proxies -----------------------------------------------------------------------------------------------

def test_http_proxy_gets_the_absolute_url_and_no_proxy_bypasses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY: the request goes to the proxy with the whole URL and its credentials; NO_PROXY: direct."""
    with Collector() as proxy, Collector() as rx:
        monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
        proxied = StdlibHTTPTransport().request("POST", "http://collector.example:4318/v1/traces?k=v",
                                                data=b"x", timeout=5)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = StdlibHTTPTransport().request("POST", f"http://127.0.0.1:{rx.port}/v1/traces", data=b"y",
                                               timeout=5)
    assert proxied.status_code == direct.status_code == 200
    [(path, headers, _, _)] = proxy.received
    assert path == "http://collector.example:4318/v1/traces?k=v"
    assert headers["Proxy-Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert headers["Host"] == "collector.example:4318"
    assert [body for _, _, body, _ in rx.received] == [b"y"]


def test_https_proxy_tunnels_with_connect(monkeypatch: pytest.MonkeyPatch,
                                          self_signed: tuple[Path, Path]) -> None:
    """HTTPS_PROXY: a CONNECT tunnel to the collector, TLS verified end to end through it, kept alive."""
    cert, key = self_signed
    with Collector() as proxy, Collector(tls=_server_tls(cert, key)) as rx:
        monkeypatch.setenv("HTTPS_PROXY", f"127.0.0.1:{proxy.port}")  # no scheme: http://, as for requests
        transport = StdlibHTTPTransport(verify=str(cert))
        results = [transport.request("POST", f"https://127.0.0.1:{rx.port}/v1/traces", data=b"z", timeout=5)
                   for _ in range(2)]
        transport.close()
    assert [(r.status_code, r.error) for r in results] == [(200, None)] * 2
    assert [path for path, _, _, _ in proxy.received] == [f"127.0.0.1:{rx.port}"]  # one CONNECT
    assert [body for _, _, body, _ in rx.received] == [b"z", b"z"]


# --- fork --------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_connection() -> None:
    """A transport used before a fork: the child sends on a new connection, the parent keeps its own."""
    with Collector() as rx:
        transport = StdlibHTTPTransport()
        url = f"http://127.0.0.1:{rx.port}/v1/traces"
        assert transport.request("POST", url, data=b"parent", timeout=5).status_code == 200
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0 if transport.request("POST", url, data=b"child", timeout=5).status_code == 200 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert transport.request("POST", url, data=b"parent again", timeout=5).status_code == 200
        transport.close()
    assert [body for _, _, body, _ in rx.received] == [b"parent", b"child", b"parent again"]
    assert rx.connections == 2
