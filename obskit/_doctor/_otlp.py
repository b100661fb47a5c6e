"""A real, empty OTLP export per signal, in the configured protocol, with the configured headers and TLS.

An empty ``Export*ServiceRequest`` is a valid request every OTLP receiver answers like a real one (path,
service, credentials, TLS all checked), and it adds no data to the backend. What came back is reported in
words: accepted, refused, timed out, TLS error, an HTTP status or a gRPC status, and, when the port speaks
the other protocol, which setting was meant. Header values are sent, never printed.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from typing import Any

from .._config import Config
from ._net import connect_problem, speaks_http1, speaks_http2
from ._report import FAIL, OK, Check

__all__ = ["probe"]

_GRPC_HINT = ("this port speaks HTTP/1.1, not gRPC: did you mean http/protobuf "
              "(OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf; a collector takes it on 4318)?")
_HTTP_HINT = ("this port speaks HTTP/2 (gRPC), not OTLP/HTTP: did you mean grpc "
              "(OTEL_EXPORTER_OTLP_PROTOCOL=grpc; a collector takes it on 4317)?")
_HTTP_STATUS_HINTS = {
    400: "the receiver could not read the request",
    401: "the receiver wants credentials: check the authorization header in OTEL_EXPORTER_OTLP_HEADERS "
         "(or OBSKIT_OTLP_HEADERS)",
    403: "the receiver refused these credentials: check OTEL_EXPORTER_OTLP_HEADERS (or OBSKIT_OTLP_HEADERS)",
    404: "no OTLP receiver at this path: a per-signal URL (OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT) is used "
         "as is and needs the full path, e.g. /v1/traces; the base URL gets it appended",
    405: "this path does not take POST: not an OTLP/HTTP receiver",
    413: "the receiver's request size limit is too small",
    415: "the receiver does not take protobuf here",
    429: "the receiver is throttling: it is overloaded",
    502: "a proxy in front of the receiver could not reach it",
    503: "the receiver is unavailable or overloaded",
}


def _request(signal: str) -> Any:
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        return trace_service_pb2.ExportTraceServiceRequest()
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

        return logs_service_pb2.ExportLogsServiceRequest()
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    return metrics_service_pb2.ExportMetricsServiceRequest()


def _stub(signal: str, channel: Any) -> Any:
    stub: Any  # the generated gRPC stubs are untyped
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        stub = trace_service_pb2_grpc.TraceServiceStub
    elif signal == "logs":
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc

        stub = logs_service_pb2_grpc.LogsServiceStub
    else:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc

        stub = metrics_service_pb2_grpc.MetricsServiceStub
    return stub(channel)


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def _grpc(signal: str, config: Config, host: str, port: int, tls: bool, timeout: float) -> tuple[bool, str]:
    import grpc  # type: ignore[import-untyped]

    target = f"{host}:{port}"
    if tls:
        creds = grpc.ssl_channel_credentials(_read(config.otlp_certificate), _read(config.otlp_client_key),
                                             _read(config.otlp_client_certificate))
        channel = grpc.secure_channel(target, creds)
    else:
        channel = grpc.insecure_channel(target)
    try:
        _stub(signal, channel).Export(_request(signal), timeout=timeout,
                                      metadata=tuple(config.otlp_headers.items()) or None)
        return True, "connected and accepted (gRPC OK)"
    except grpc.RpcError as exc:
        code: Any = exc.code()  # type: ignore[attr-defined]  # grpc's call errors carry code() and details()
        details = str(exc.details() or "")  # type: ignore[attr-defined]
    finally:
        channel.close()
    name = getattr(code, "name", str(code))
    if name == "DEADLINE_EXCEEDED":
        return False, (f"timed out after {timeout:g}s: the port accepted the connection but never answered "
                       "(a hung receiver, or not an OTLP port)")
    if name == "UNAVAILABLE" and not tls and speaks_http1(host, port, timeout):
        return False, _GRPC_HINT
    lowered = details.lower()
    if tls and "wrong_version_number" in lowered:
        return False, "TLS error: the server does not speak TLS on this port; use http:// instead of https://"
    if tls and any(word in lowered for word in ("ssl", "tls", "handshake", "certificate")):
        return False, (f"TLS error: {details}; with a private CA set OTEL_EXPORTER_OTLP_CERTIFICATE, with no "
                       "TLS on that port use http://")
    if name == "UNIMPLEMENTED":
        return False, f"gRPC UNIMPLEMENTED: this server has no OTLP {signal} service"
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return False, (f"gRPC {name}: the receiver refused the credentials; check the authorization header "
                       "in OTEL_EXPORTER_OTLP_HEADERS (or OBSKIT_OTLP_HEADERS)")
    return False, f"gRPC {name}: {details}"


def _tls_context(config: Config) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=config.otlp_certificate)
    if config.otlp_client_certificate:
        context.load_cert_chain(config.otlp_client_certificate, config.otlp_client_key)
    return context


def _http(config: Config, url: urllib.parse.SplitResult, host: str, port: int,
          timeout: float) -> tuple[bool, str]:
    tls = url.scheme == "https"
    conn: http.client.HTTPConnection
    if tls:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls_context(config))
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = {"Content-Type": "application/x-protobuf", "User-Agent": "obskit-doctor",
               **dict(config.otlp_headers)}
    try:
        conn.request("POST", target, body=b"", headers=headers)
        response = conn.getresponse()
        response.read(4096)
        status, reason = response.status, response.reason
    except ssl.SSLCertVerificationError as exc:
        return False, (f"TLS error: the server's certificate is not trusted ({exc.verify_message}); set "
                       "OTEL_EXPORTER_OTLP_CERTIFICATE to the CA that signed it")
    except ssl.SSLError as exc:
        if "WRONG_VERSION_NUMBER" in str(exc) or "RECORD_LAYER" in str(exc).upper():
            return False, "TLS error: the server does not speak TLS on this port; use http:// instead of https://"
        return False, f"TLS error: {exc.reason or exc}"
    except TimeoutError:
        return False, (f"timed out after {timeout:g}s: the port accepted the connection but never answered "
                       "(a hung receiver, or not an OTLP port)")
    except (http.client.BadStatusLine, ConnectionResetError, http.client.RemoteDisconnected):
        if not tls and speaks_http2(host, port, timeout):
            return False, _HTTP_HINT
        return False, "the server closed the connection without an HTTP answer: not an OTLP/HTTP receiver"
    except OSError as exc:
        return False, f"request failed: {exc.strerror or exc}"
    finally:
        conn.close()
    if 200 <= status < 300:
        return True, f"connected and accepted (HTTP {status})"
    hint = _HTTP_STATUS_HINTS.get(status, "")
    return False, f"HTTP {status} {reason}" + (f": {hint}" if hint else "")


def probe(signal: str, config: Config, timeout: float) -> Check:
    """Send one empty export for ``signal`` to where obskit would send it, and say what came back."""
    endpoint = config.endpoint_for(signal) or ""
    url = urllib.parse.urlsplit(endpoint)
    tls = url.scheme == "https"
    host = url.hostname or ""
    port = url.port or (443 if tls else 80)
    name = f"{signal} -> {endpoint} ({config.otlp_protocol})"
    problem = connect_problem(host, port, timeout)
    if problem is not None:
        return Check(FAIL, name, problem)
    try:
        if config.otlp_protocol == "grpc":
            ok, message = _grpc(signal, config, host, port, tls, timeout)
        else:
            ok, message = _http(config, url, host, port, timeout)
    except OSError as exc:  # a certificate file that cannot be read, say
        ok, message = False, f"cannot prepare the request: {exc.strerror or exc}"
    return Check(OK if ok else FAIL, name, message)
