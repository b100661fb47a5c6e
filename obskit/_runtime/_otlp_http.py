"""obskit's OTLP/HTTP exporters for spans, log records and metrics: no protobuf, no SDK exporter module.

The SDK's OTLP/HTTP exporters import its protobuf encoders (and protobuf with them) at import, about 25 ms
of every ``init()`` and part of the interpreter's teardown, though obskit sends its own encoding
(``_wire``). These exporters send that encoding through the SDK's protobuf-free HTTP client
(``opentelemetry.exporter.otlp.common.http._OTLPHTTPClient``: compression, retries with backoff and
``Retry-After``, a shutdown that interrupts the retry wait) over obskit's ``http.client`` transport. The
rest is the SDK 1.45 exporters' ``export``, unchanged: the shutdown check, the SDK's exporter metrics (when
``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`` is ``true``), the size limit (``max_request_size``, 64 MiB, 0 or
less for none; a larger request is dropped with a warning before sending), the result mapping, and the log
lines, on the SDK exporters' loggers (``opentelemetry.exporter.otlp.proto.http.trace_exporter``,
``..._log_exporter`` and ``...metric_exporter``) so that filters and levels set for those still apply. The
metric exporter sends a batch as one request, as the SDK's does without ``max_export_batch_size``, and
reads no temporality or aggregation preference from the environment (obskit's pusher sends cumulative
prometheus-client values; its guard states its own preferences).

Nothing is read from the environment besides that switch: every setting is an argument (``_otlp_build``).
The SDK's protobuf encoder is imported only for a batch the fast encoder declines (``_wire._sdk_spans``,
``_wire._sdk_metrics``: an exponential histogram, say).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from opentelemetry.exporter.http.transport._base import BaseHTTPTransport
from opentelemetry.exporter.otlp.common.http import Compression, _OTLPHTTPClient
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, MetricExportResult
from opentelemetry.sdk.metrics.view import Aggregation
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.version import __version__ as _sdk_version

from ._http_transport import StdlibHTTPTransport
from ._wire import count_points, http_post, http_send, logs_request, metrics_request, spans_request

__all__ = ["OTLP_HTTP_HEADERS", "Compression", "OTLPHTTPLogExporter", "OTLPHTTPMetricExporter",
           "OTLPHTTPSpanExporter", "RequestPayloadTooLargeError"]

#: The headers the SDK's OTLP/HTTP exporters send on every request (``_OTLP_HTTP_HEADERS``); the version is
#: the SDK's, released together with the exporter package whose version the SDK's header carries.
OTLP_HTTP_HEADERS = {"Content-Type": "application/x-protobuf",
                     "User-Agent": f"OTel-OTLP-Exporter-Python/{_sdk_version}"}
#: The SDK's default ``max_request_size`` (64 MiB, measured before compression).
DEFAULT_MAX_REQUEST_SIZE = 64 * 1024 * 1024


class RequestPayloadTooLargeError(Exception):
    """A request over ``max_request_size``: named as the SDK's, whose exporter metrics report the name."""


class _Outcome:
    __slots__ = ("error", "error_attrs")

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.error_attrs: dict[str, Any] | None = None


class _NoMetrics:
    """The SDK's exporter metrics when they are off (its default): nothing recorded."""

    @contextlib.contextmanager
    def export_operation(self, num_items: int) -> Iterator[_Outcome]:
        yield _Outcome()


def _exporter_metrics(component: str, signal: Literal["traces", "logs", "metrics"], endpoint: str) -> Any:
    if os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() != "true":
        return _NoMetrics()
    from opentelemetry.exporter.otlp.common._exporter_metrics import create_exporter_metrics
    from opentelemetry.semconv._incubating.attributes.otel_attributes import OtelComponentTypeValues

    return create_exporter_metrics(OtelComponentTypeValues(component), signal, endpoint, None, True)


class _OTLPHTTPExporter:
    """What the span, log and metric exporters share; ``export`` and ``export_encoded`` are theirs."""

    _kind: Literal["spans", "logs", "metrics"]
    _signal: Literal["traces", "logs", "metrics"]
    _what: str  # as the SDK's log lines name a batch
    _component: str  # the SDK's otel.component.type
    _logger: logging.Logger

    def __init__(self, endpoint: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0,
                 compression: Compression = Compression.NONE, *, transport: BaseHTTPTransport | None = None,
                 max_request_size: int | None = None) -> None:
        self._endpoint = endpoint
        self._compression = compression
        self._max_request_size = DEFAULT_MAX_REQUEST_SIZE if max_request_size is None else max_request_size
        self._client = _OTLPHTTPClient(
            transport=transport if transport is not None else StdlibHTTPTransport(), endpoint=endpoint,
            kind=self._kind, timeout=timeout, compression=compression,
            headers={k.lower(): v for k, v in OTLP_HTTP_HEADERS.items()} | dict(headers or {}),
            logger=self._logger)
        self._shutdown = False
        self._metrics = _exporter_metrics(self._component, self._signal, endpoint)

    def _send(self, batch: Sequence[Any], encode: Callable[[Sequence[Any]], bytes], result_type: Any) -> Any:
        return http_send(self, batch, encode, self._what, result_type, self._logger,
                         RequestPayloadTooLargeError)

    def _post(self, data: bytes, result: _Outcome, result_type: Any) -> Any:
        """The size limit, then the request; inside the exporter metrics' operation (``result``)."""
        return http_post(self, data, self._what, result, result_type, self._logger,
                         RequestPayloadTooLargeError)

    def _close(self) -> None:
        if self._shutdown:
            self._logger.warning("Exporter already shutdown, ignoring call")
            return
        self._shutdown = True
        self._client.shutdown()  # interrupts an export waiting to retry, closes the connection


class OTLPHTTPSpanExporter(_OTLPHTTPExporter, SpanExporter):
    """Spans over OTLP/HTTP, encoded by ``_wire``."""

    _kind = "spans"
    _signal = "traces"
    _what = "span"
    _component = "otlp_http_span_exporter"
    _logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return self._send(spans, spans_request, SpanExportResult)  # type: ignore[no-any-return]

    def export_encoded(self, spans: Sequence[Any], data: bytes) -> SpanExportResult:
        """Export ``spans`` whose request is already encoded (``_wire.clean_spans``, ``_wire.request_of``)."""
        return self._send(spans, lambda _: data, SpanExportResult)  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self._close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here


class OTLPHTTPLogExporter(_OTLPHTTPExporter, LogRecordExporter):
    """Log records over OTLP/HTTP, encoded by ``_wire``."""

    _kind = "logs"
    _signal = "logs"
    _what = "logs"
    _component = "otlp_http_log_exporter"
    _logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http._log_exporter")

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        return self._send(batch, logs_request, LogRecordExportResult)  # type: ignore[no-any-return]

    def export_encoded(self, batch: Sequence[Any], data: bytes) -> LogRecordExportResult:
        """Export ``batch`` whose request is already encoded."""
        return self._send(batch, lambda _: data, LogRecordExportResult)  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self._close()

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        return True


class OTLPHTTPMetricExporter(_OTLPHTTPExporter, MetricExporter):
    """Metrics (the SDK's ``MetricsData``) over OTLP/HTTP, encoded by ``_wire``: the SDK's
    ``OTLPMetricExporter.export`` (the batch encoded before the exporter metrics' operation, counted in data
    points), without its protobuf."""

    _kind = "metrics"
    _signal = "metrics"
    _what = "metrics"
    _component = "otlp_http_metric_exporter"
    _logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http.metric_exporter")

    def __init__(self, endpoint: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0,
                 compression: Compression = Compression.NONE, *, transport: BaseHTTPTransport | None = None,
                 max_request_size: int | None = None,
                 preferred_temporality: dict[type, AggregationTemporality] | None = None,
                 preferred_aggregation: dict[type, Aggregation] | None = None) -> None:
        _OTLPHTTPExporter.__init__(self, endpoint, headers, timeout, compression, transport=transport,
                                   max_request_size=max_request_size)
        MetricExporter.__init__(self, preferred_temporality=preferred_temporality,
                                preferred_aggregation=preferred_aggregation)

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        logger = self._logger
        if self._shutdown:
            logger.warning("Exporter already shutdown, ignoring batch")
            return MetricExportResult.FAILURE
        try:
            data = metrics_request(metrics_data)
            points = count_points(metrics_data)
        except Exception as error:
            logger.error("Failed to encode metrics batch: %s", error)
            return MetricExportResult.FAILURE
        with self._metrics.export_operation(points) as result:
            return self._post(data, result, MetricExportResult)  # type: ignore[no-any-return]

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._close()

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True  # nothing is buffered here


def _dedupe_log_lines() -> None:
    """The SDK's log exporter module puts its duplicate filter on its logger at import; so does this one."""
    try:
        from opentelemetry.sdk._shared_internal import DuplicateFilter
    except ImportError:
        return
    logger = OTLPHTTPLogExporter._logger
    if not any(isinstance(f, DuplicateFilter) for f in logger.filters):
        logger.addFilter(DuplicateFilter())


_dedupe_log_lines()
