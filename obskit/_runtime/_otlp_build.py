"""Building the OpenTelemetry OTLP exporters from obskit's settings alone.

The OTel exporters read ``OTEL_EXPORTER_OTLP_*`` themselves wherever an argument is missing, and some
variables always: the HTTP exporters merge ``OTEL_EXPORTER_OTLP_HEADERS`` (and the per-signal
``..._HEADERS``) into whatever headers they are given. That would undo obskit's precedence
(``OBSKIT_OTLP_HEADERS`` replaces the OTel variable, over HTTP as over gRPC) and half-apply a variable obskit
rejected: its well-formed entries would still be sent. So every setting is passed explicitly (endpoint,
timeout, compression, TLS material, the HTTP transport: ``_http_transport``'s, on ``http.client``, so that
exporting never imports requests), and the header set the exporter ended up with is then replaced by exactly
obskit's. The OTel header parser's warning, which quotes a malformed entry (a secret) verbatim, is masked.

Over HTTP, spans, log records and metrics go through obskit's exporters (``_otlp_http``), which import no
protobuf; they read no environment variable either, and get the same explicit settings and pinned headers.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from .._config import Config
from ._redact import REDACTED
from ._wire import grpc_exporter_class, http_exporter_class

__all__ = ["build_otlp_exporter"]

Signal = Literal["traces", "logs", "metrics"]


class _MaskEcho(logging.Filter):
    """The OTel header parser logs a malformed entry as its argument; keep the warning, drop the entry."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = (REDACTED,) * len(record.args) if isinstance(record.args, tuple) else ()
        return True


_echo_masked = False


def _mask_header_echo() -> None:
    global _echo_masked
    if not _echo_masked:
        _echo_masked = True
        logging.getLogger("opentelemetry.util.re").addFilter(_MaskEcho())


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def _grpc(signal: Signal, config: Config, endpoint: str, headers: dict[str, str]) -> Any:
    import grpc  # type: ignore[import-untyped]

    G: Any
    if signal in ("traces", "logs"):
        G = grpc_exporter_class(signal)  # the SDK's, its request parsed from obskit's fast encoding (_wire)
    else:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as G
    secure = endpoint.startswith("https://")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(config.otlp_certificate), private_key=_read(config.otlp_client_key),
        certificate_chain=_read(config.otlp_client_certificate)) if secure else None
    compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(
        config.otlp_compression, grpc.Compression.NoCompression)
    exporter = G(endpoint=endpoint, insecure=not secure, credentials=credentials, headers=headers or None,
                 timeout=config.export_timeout, compression=compression)
    if not hasattr(exporter, "_headers"):
        raise RuntimeError("cannot set the OTLP gRPC exporter's headers on this opentelemetry version")
    exporter._headers = tuple(headers.items())  # only obskit's: never the ones it read from the environment
    return exporter


def _http_class(signal: Signal) -> tuple[Any, str, dict[str, str], Any]:
    """(exporter class, its transport argument's name, the OTLP default headers it sends, its compression
    enum) for ``signal``: obskit's (``_otlp_http``: no protobuf is imported), or where this opentelemetry
    version lacks the HTTP client it is built on, the SDK's: for spans and log records sending obskit's
    encoding (``_wire``), for metrics its own."""
    try:
        from . import _otlp_http
    except ImportError:
        pass
    else:
        H = {"traces": _otlp_http.OTLPHTTPSpanExporter, "logs": _otlp_http.OTLPHTTPLogExporter,
             "metrics": _otlp_http.OTLPHTTPMetricExporter}[signal]
        return H, "transport", _otlp_http.OTLP_HTTP_HEADERS, _otlp_http.Compression
    from opentelemetry.exporter.otlp.proto.http import _OTLP_HTTP_HEADERS, Compression

    if signal in ("traces", "logs"):
        return http_exporter_class(signal), "_transport", _OTLP_HTTP_HEADERS, Compression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter, "_transport", _OTLP_HTTP_HEADERS, Compression


def _http(signal: Signal, config: Config, endpoint: str, headers: dict[str, str]) -> Any:
    from ._http_transport import StdlibHTTPTransport

    H, transport_arg, defaults, compression_of = _http_class(signal)
    client_cert: str | tuple[str, str] | None = config.otlp_client_certificate
    if config.otlp_client_certificate is not None and config.otlp_client_key is not None:
        client_cert = (config.otlp_client_certificate, config.otlp_client_key)
    transport = StdlibHTTPTransport(verify=config.otlp_certificate or True, cert=client_cert)
    compression = compression_of(config.otlp_compression)  # both enums' values: "none", "gzip", "deflate"
    exporter = H(endpoint=endpoint, headers=headers, timeout=config.export_timeout, compression=compression,
                 **{transport_arg: transport})
    client = getattr(exporter, "_client", None)
    if client is None or not isinstance(getattr(client, "_headers", None), dict):
        raise RuntimeError("cannot set the OTLP HTTP exporter's headers on this opentelemetry version")
    pinned = {k.lower(): v for k, v in defaults.items()} | headers
    if compression.value != "none":
        pinned["Content-Encoding"] = compression.value
    client._headers = pinned  # only obskit's: never the ones it read from the environment
    return exporter


def build_otlp_exporter(signal: Signal, config: Config) -> Any:
    """The OTel OTLP exporter for ``signal``, configured by ``config`` and nothing else."""
    endpoint = config.endpoint_for(signal)
    if endpoint is None:
        raise RuntimeError(f"no OTLP endpoint for {signal}")
    _mask_header_echo()
    headers = dict(config.otlp_headers)
    if config.otlp_protocol == "grpc":
        return _grpc(signal, config, endpoint, headers)
    return _http(signal, config, endpoint, headers)
