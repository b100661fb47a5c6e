"""Bridge from obskit's log pipeline to an OpenTelemetry ``LoggerProvider`` (OTLP log export).

The bridge sits inside :func:`obskit._logs._pipeline.process`, after redaction, so an exported record
carries exactly the redacted fields of the printed line and is emitted once per event, whichever front end
(structlog or stdlib) produced it. Records produced while exporting, or by the exporter's own libraries, are
printed but never exported: that feedback loop would otherwise grow with every failed export. Text that is
not valid UTF-8 (lone surrogates) is repaired here: protobuf would refuse it, and with it the whole batch.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AttributeValue

from .._config import Config
from .._runtime._redact import Redactor
from .._runtime._safe import in_telemetry, telemetry_section, utf8_safe
from ._pipeline import ExcInfo, safe_str

__all__ = ["OtlpBridge", "build_logger_provider", "coerce_attribute", "severity"]


def build_logger_provider(config: Config, resource: Resource) -> LoggerProvider:
    """The LoggerProvider OTLP (or console) log export writes to, made the global one (see ``_global``)."""
    from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

    from .._runtime._batching import batch_log_processor
    from .._runtime._exporters import make_exporter
    from . import _global

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    exporter = make_exporter("logs", config) if config.exports("logs") else ConsoleLogRecordExporter()
    provider.add_log_record_processor(batch_log_processor(exporter))
    _global.point_to(provider)
    return provider

# Loggers of the export machinery itself: exporting their records would feed on itself.
_NOT_EXPORTED = ("opentelemetry", "grpc")
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

_SEVERITY: dict[int, tuple[SeverityNumber, str]] = {
    logging.DEBUG: (SeverityNumber.DEBUG, "DEBUG"),
    logging.INFO: (SeverityNumber.INFO, "INFO"),
    logging.WARNING: (SeverityNumber.WARN, "WARN"),
    logging.ERROR: (SeverityNumber.ERROR, "ERROR"),
    logging.CRITICAL: (SeverityNumber.FATAL, "FATAL"),
}


def severity(level: int) -> tuple[SeverityNumber, str]:
    """OTel severity for a stdlib level; in-between levels map to the 2-4 sub-steps, as the spec suggests."""
    hit = _SEVERITY.get(level)
    if hit is not None:
        return hit
    if level < logging.DEBUG:
        return SeverityNumber.TRACE, "TRACE"
    base = min(level // 10 * 10, logging.CRITICAL)
    number, text = _SEVERITY[base]
    step = min(level - base, 3)
    return SeverityNumber(number.value + step), text


def _scalar(v: object) -> bool:
    return isinstance(v, str | bool | float) or (isinstance(v, int) and _INT_MIN <= v <= _INT_MAX)


def coerce_attribute(value: Any) -> AttributeValue:
    """OTLP attributes take scalars or homogeneous scalar sequences; anything else becomes text."""
    if type(value) is str:
        return utf8_safe(value)
    if _scalar(value):
        return value  # type: ignore[no-any-return]
    if (
        isinstance(value, list | tuple)
        and all(_scalar(x) for x in value)
        and (not value or all(type(x) is type(value[0]) for x in value))
    ):
        return [utf8_safe(x) if type(x) is str else x for x in value]
    if isinstance(value, Mapping):
        try:
            return orjson.dumps(value, default=safe_str, option=orjson.OPT_NON_STR_KEYS).decode()
        except Exception:
            return utf8_safe(safe_str(value))
    return utf8_safe(safe_str(value))


def exception_attributes(exc_info: ExcInfo) -> dict[str, AttributeValue]:
    """The semconv ``exception.*`` trio; ``format_exception`` never includes local variables."""
    etype, value, tb = exc_info
    module = getattr(etype, "__module__", "")
    qualname = getattr(etype, "__qualname__", safe_str(etype))
    return {
        "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
        "exception.message": safe_str(value),
        "exception.stacktrace": "".join(traceback.format_exception(etype, value, tb)),
    }


class OtlpBridge:
    """Turns one processed event into one OTel ``LogRecord`` on the ``obskit`` logger."""

    __slots__ = ("_logger", "_redactor")

    def __init__(self, logger_provider: LoggerProvider, redactor: Redactor | None = None) -> None:
        self._logger = logger_provider.get_logger("obskit")
        self._redactor = redactor or Redactor()

    def emit(
        self,
        level: int,
        logger_name: str,
        event: Any,
        fields: Mapping[str, Any],
        exc_info: ExcInfo | None,
        created: float,
        record: logging.LogRecord | None,
    ) -> None:
        if in_telemetry() or logger_name.startswith(_NOT_EXPORTED):
            return
        attributes: dict[str, AttributeValue] = {"logger.name": logger_name}
        for key, value in fields.items():
            attributes[utf8_safe(safe_str(key))] = coerce_attribute(value)
        if record is not None:
            attributes["code.file.path"] = record.pathname
            attributes["code.function.name"] = record.funcName
            attributes["code.line.number"] = record.lineno
        if exc_info is not None:
            red = self._redactor
            scrub = red.scrub_text if logger_name.startswith("obskit") else red.exception_text
            for key, text in exception_attributes(exc_info).items():
                attributes[key] = utf8_safe(scrub(text)) if isinstance(text, str) else text
        number, text = severity(level)
        log_record = LogRecord(
            timestamp=int(created * 1e9),
            observed_timestamp=time.time_ns(),
            context=otel_context.get_current(),
            severity_number=number,
            severity_text=text,
            body=utf8_safe(event if isinstance(event, str) else safe_str(event)),
            attributes=attributes,
        )
        with telemetry_section():
            self._logger.emit(log_record)
