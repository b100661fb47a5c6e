"""Bridge from obskit's log pipeline to an OpenTelemetry ``LoggerProvider`` (OTLP log export).

The bridge sits inside :func:`obskit._logs._pipeline.process`, after redaction, so an exported record
carries exactly the redacted fields of the printed line and is emitted once per event, whichever front end
(structlog or stdlib) produced it. Records produced while exporting, or by the exporter's own libraries, are
printed but never exported: that feedback loop would otherwise grow with every failed export. Text that is
not valid UTF-8 (lone surrogates) is repaired here: protobuf would refuse it, and with it the whole batch.

Building the SDK ``LogRecord`` and handing it to the processors costs several times the line itself, so it
happens on one worker thread, not on the thread that logged (see :class:`OtlpBridge`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AttributeValue

from .._config import Config
from .._runtime import _fork
from .._runtime._health import generation, record_dropped
from .._runtime._redact import Redactor
from .._runtime._safe import in_telemetry, report_internal_error, telemetry_section, utf8_safe
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


_STOP = object()  # tells the worker to end
_FROZEN = frozenset({str, int, float, bool, type(None)})  # values the caller cannot change after the call
_QUEUE_LIMIT = 2048  # the SDK batch processor's default queue size: same bound, same order of memory


class OtlpBridge:
    """Turns one processed event into one OTel ``LogRecord`` on the ``obskit`` logger, off the calling thread.

    ``emit`` (on the thread that logged) checks the recursion guard, snapshots the fields (values that could
    change later are coerced now), the span context and the code location, and puts one tuple on a bounded
    queue; a full queue drops the record and counts it (``obskit_telemetry_dropped_total{signal="logs"}``),
    so a stalled exporter never blocks or grows the caller. One daemon worker builds each ``LogRecord`` and
    hands it to the provider. ``flush`` drains the queue within a timeout; a processor registered on the
    provider runs it first in ``provider.force_flush()``, so a flush still covers every line logged before
    it. ``close`` drains and stops the worker (``LoggingHandle.stop_export`` calls it before the provider
    shuts down). After a fork the child gets an empty queue (the parent exports what it had queued) and a
    new worker, through the after-fork registry.
    """

    __slots__ = ("__weakref__", "_closed", "_generation", "_limit", "_logger", "_queue", "_redactor",
                 "_start_lock", "_thread")

    def __init__(self, logger_provider: LoggerProvider, redactor: Redactor | None = None,
                 max_queued: int | None = None) -> None:
        self._logger = logger_provider.get_logger("obskit")
        self._redactor = redactor or Redactor()
        self._limit = _QUEUE_LIMIT if max_queued is None else max_queued
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._generation = generation()
        _FlushFirst.attach(logger_provider, self)
        _fork.register("log export bridge", after_in_child=self._after_fork_in_child)

    # -- the calling thread ----------------------------------------------------------------------------

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
        if in_telemetry() or logger_name.startswith(_NOT_EXPORTED) or self._closed:
            return
        if self._queue.qsize() >= self._limit:
            record_dropped("logs", 1, self._generation)
            return
        if self._thread is None:
            self._start()
        frozen = _FROZEN
        snapshot = {k: v if type(v) in frozen else coerce_attribute(v) for k, v in fields.items()}
        where = (record.pathname, record.funcName, record.lineno) if record is not None else None
        self._queue.put((level, logger_name, event if type(event) is str else safe_str(event), snapshot,
                         exc_info, created, time.time_ns(), where, otel_context.get_current()))

    # -- the worker ------------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                thread = threading.Thread(target=self._run, name="obskit-log-export", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        get = self._queue.get  # bound once: after a fork the child's worker reads the child's new queue
        while True:
            item = get()
            if type(item) is tuple:
                try:
                    with telemetry_section():  # whatever building or emitting logs is printed, not exported
                        self._emit_now(*item)
                except Exception as exc:
                    report_internal_error("logging: OTLP log export", exc)
            elif item is _STOP:
                return
            else:
                item.set()  # a flush marker: everything queued before it has been handed on

    def _emit_now(self, level: int, logger_name: str, event: str, fields: dict[str, Any],
                  exc_info: ExcInfo | None, created: float, observed: int,
                  where: tuple[str, str, int] | None, context: Context) -> None:
        attributes: dict[str, AttributeValue] = {"logger.name": logger_name}
        for key, value in fields.items():
            attributes[utf8_safe(safe_str(key))] = coerce_attribute(value)
        if where is not None:
            path, function, line = where
            attributes["code.file.path"] = path
            attributes["code.function.name"] = function
            attributes["code.line.number"] = line
        if exc_info is not None:
            red = self._redactor
            scrub = red.scrub_text if logger_name.startswith("obskit") else red.exception_text
            for key, text in exception_attributes(exc_info).items():
                attributes[key] = utf8_safe(scrub(text)) if isinstance(text, str) else text
        number, text = severity(level)
        self._logger.emit(LogRecord(
            timestamp=int(created * 1e9),
            observed_timestamp=observed,
            context=context,
            severity_number=number,
            severity_text=text,
            body=utf8_safe(event),
            attributes=attributes,
        ))

    # -- flush, close, fork ----------------------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far has been handed to the provider; False on timeout."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self._queue.qsize() == 0
        done = threading.Event()
        self._queue.put(done)  # past the bound on purpose: a marker is not a record
        return done.wait(max(0.0, timeout))

    def close(self, timeout: float = 5.0) -> bool:
        """Take no more records, drain what is queued (within ``timeout``), then end the worker."""
        if self._closed:
            return True  # closed before (stop_export, then the provider's shutdown): nothing more to wait for
        self._closed = True
        deadline = time.monotonic() + timeout
        drained = self.flush(timeout)
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(max(0.0, deadline - time.monotonic()))
        return drained

    def _after_fork_in_child(self) -> None:
        """The worker did not survive the fork and the queue's records are the parent's to export."""
        running = self._thread is not None
        self._queue = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._thread = None
        if running:
            self._start()


class _FlushFirst(LogRecordProcessor):
    """Makes ``provider.force_flush()`` cover the bridge's queue.

    Processors are flushed in the order they were added and this one comes after the batch processor, so
    it drains the bridge (whose records land in the batch queue) and then flushes the provider once more.
    One per provider; it follows the provider's latest bridge.
    """

    _by_provider: weakref.WeakKeyDictionary[LoggerProvider, _FlushFirst] = weakref.WeakKeyDictionary()
    _nested = threading.local()

    def __init__(self, provider: LoggerProvider) -> None:
        self._provider = weakref.ref(provider)
        self._bridge: Callable[[], OtlpBridge | None] = lambda: None

    @classmethod
    def attach(cls, provider: LoggerProvider, bridge: OtlpBridge) -> None:
        drain = cls._by_provider.get(provider)
        if drain is None:
            drain = cls._by_provider[provider] = cls(provider)
            provider.add_log_record_processor(drain)
        drain._bridge = weakref.ref(bridge)

    def on_emit(self, log_record: Any) -> None:
        pass

    def enabled(self, **kwargs: Any) -> bool:
        return False  # never makes a logger look enabled by itself

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if getattr(self._nested, "active", False):
            return True
        deadline = time.monotonic() + timeout_millis / 1000
        bridge, provider = self._bridge(), self._provider()
        drained = bridge.flush(timeout_millis / 1000) if bridge is not None else True
        if provider is None:
            return drained
        self._nested.active = True
        try:
            left = int(max(0.0, deadline - time.monotonic()) * 1000)
            return drained and bool(provider.force_flush(left))
        finally:
            self._nested.active = False

    def shutdown(self) -> None:
        bridge = self._bridge()
        if bridge is not None:
            bridge.close(timeout=0.0)  # normally closed already (stop_export); here just end the worker
