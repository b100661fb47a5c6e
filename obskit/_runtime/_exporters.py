"""OTLP exporters for the three signals, built from one ``Config`` and guarded.

Every setting is passed explicitly so the exporters never read ``OTEL_EXPORTER_OTLP_*`` themselves: the
Python exporters read ``OTEL_EXPORTER_OTLP_TIMEOUT`` as seconds although the spec says milliseconds, and
obskit's precedence (argument > ``OBSKIT_*`` > ``OTEL_*``) must hold for every signal.

The guard turns a raising exporter into a failed export, counts failures for self-telemetry, and marks the
exporting thread so that log records the exporter writes are printed but never exported again (the
recursion the OTel logging handler is known for). Every call runs with instrumentation suppressed: an
export is obskit's traffic, not the application's, and with the ``requests`` integration each OTLP/HTTP
metric push became a ``POST .../v1/metrics`` span (the SDK suppresses around its batch exports, but not
around obskit's metrics pusher or a flush).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._config import Config
from . import _bounds, _fork, _wire
from . import _health as _self_telemetry
from ._otlp_build import build_otlp_exporter
from ._safe import report_internal_error, telemetry_section

__all__ = ["GuardedLogExporter", "GuardedMetricExporter", "GuardedSpanExporter", "make_exporter"]

Signal = Literal["traces", "logs", "metrics"]


@contextlib.contextmanager
def _unobserved() -> Iterator[None]:
    """Instrumentations (``requests``, ``urllib3``, gRPC) record nothing inside the block."""
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def _new_otlp(signal: Signal, config: Config) -> Any:
    return build_otlp_exporter(signal, config)  # every setting explicit; see _otlp_build


class _Guard:
    """Shared behaviour: never raise, count failures, mark the thread as inside telemetry.

    The real exporter is built here, in ``init()``: built lazily on the batch thread, its first export
    would import gRPC and open the channel while the application fills the queue, and a burst would drop.
    After a fork it is rebuilt lazily in the child: a gRPC channel or HTTP session made before a fork
    (gunicorn ``--preload``) is broken there, so a forked worker gets its own.

    Every call into the exporter holds ``_gate``, and a fork waits for it (at most ``fork_wait`` seconds):
    gRPC skips its own fork handlers while another thread is inside a call, and a child forked then can
    abort (SIGABRT) or find its channel wedged. Holding the gate from just before the fork until just after
    it means no export is in flight when the process is copied; exports queued meanwhile wait that long.

    A build that fails is reported, each call then counted as a failed export, and retried at the next call.
    """

    signal: Signal

    def __init__(self, factory: Callable[[], Any], fork_wait: float = 10.0) -> None:
        self._factory = factory
        self._generation = _self_telemetry.generation()
        self._lock = threading.Lock()
        self._gate = threading.Lock()
        self._fork_wait = fork_wait
        self._paused = False
        self._inner: Any = None
        try:
            with telemetry_section():
                self._inner = factory()
        except Exception as exc:  # retried on first use
            report_internal_error(f"{self.signal} exporter", exc)
        _fork.register(f"{self.signal} exporter {id(self)}", before=self._pause,
                       after_in_parent=self._resume, after_in_child=self._forget_in_child)

    def _pause(self) -> None:
        """Before a fork: let the call in flight finish and hold the next ones (bounded: a hung collector
        delays a fork by at most ``fork_wait``, never forever)."""
        self._paused = self._gate.acquire(timeout=self._fork_wait)

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self._gate.release()

    def _forget_in_child(self) -> None:
        self._lock = threading.Lock()
        self._gate = threading.Lock()
        self._paused = False
        self._inner = None

    @property
    def inner(self) -> Any:
        if self._inner is None:
            with self._lock:
                if self._inner is None:
                    self._inner = self._factory()
        return self._inner

    def _call(self, fn_name: str, failure: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with (self._gate, telemetry_section(), _unobserved(),
                  _self_telemetry.working_for(self._generation)):
                result = getattr(self.inner, fn_name)(*args, **kwargs)
        except Exception as exc:
            report_internal_error(f"{self.signal} exporter", exc)
            result = failure
        # Only exports count: a failed flush or shutdown is not another failed export.
        if fn_name in ("export", "export_encoded") and _failed(result, failure):
            try:
                _self_telemetry.record_export_failure(self.signal, generation=self._generation)
                if self.signal != "metrics":  # metric points are cumulative: the next push resends them
                    _self_telemetry.record_dropped(self.signal, len(args[0]), self._generation)
            except Exception as exc:
                report_internal_error("self-telemetry", exc)
        return result

    def _export_in_chunks(self, batch: Sequence[Any], size_of: Callable[[Any], int], failure: Any) -> Any:
        """Export ``batch`` within the size bounds (``_bounds``): strings cut, and split so that an oversized
        item is exported, and refused, alone. FAILURE if any part failed."""
        try:
            parts = list(_bounds.chunks(batch, size_of)) or [list(batch)]
        except Exception as exc:
            report_internal_error(f"{self.signal} size bounds", exc)
            parts = [list(batch)]
        return _overall([self._call("export", failure, part) for part in parts], failure)

    def _shutdown(self, **kwargs: Any) -> None:
        if self._inner is None:
            return  # nothing was built in this process: no channel to close
        try:
            # Not behind the gate: shutting down is what interrupts an export stuck in its retries.
            with telemetry_section(), _unobserved():
                self.inner.shutdown(**kwargs)
        except Exception as exc:
            report_internal_error(f"{self.signal} exporter shutdown", exc)


class GuardedSpanExporter(_Guard, SpanExporter):
    signal: Signal = "traces"

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return self._export_in_chunks(  # type: ignore[no-any-return]
            spans, _bounds.span_size, SpanExportResult.FAILURE)

    def export_clean(self, spans: Sequence[Any], clean_in_place: Callable[[Any], None]) -> SpanExportResult:
        """Redact, bound and export ``spans`` in one pass (``_wire.clean_spans``), chunked by their encoded
        size. Where that cannot be done (an exporter that takes no encoded request, a value the fast
        encoder leaves to the SDK's), each span not cleaned yet is cleaned by ``clean_in_place`` and the
        batch goes through :meth:`export`."""
        failure = SpanExportResult.FAILURE
        try:
            ready = hasattr(self.inner, "export_encoded")
        except Exception:  # no exporter could be built: export() reports and counts the failure
            ready = False
        bodies = None
        if ready:
            try:
                with telemetry_section():
                    bodies = _wire.clean_spans(spans, clean_in_place)
            except Exception as exc:
                if not isinstance(exc, _wire.Unsupported | UnicodeEncodeError):
                    report_internal_error("traces encoder", exc)
        if bodies is None:
            for sp in spans:
                if not getattr(sp, "_obskit_cleaned", False):
                    clean_in_place(sp)
            return self.export(spans)
        results = []
        # Chunked by encoded size, with the size bounds' own splitter (the field's tag and length: 8 bytes).
        for pairs in _bounds.chunks(list(zip(spans, bodies, strict=True)), lambda pair: len(pair[1]) + 8):
            part = [sp for sp, _ in pairs]
            try:
                data = _wire.request_of(part, [body for _, body in pairs])
            except Exception as exc:
                report_internal_error("traces encoder", exc)
                results.append(failure)
                continue
            results.append(self._call("export_encoded", failure, part, data))
        return _overall(results, failure) if results else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self._call("force_flush", False, timeout_millis))


class GuardedLogExporter(_Guard, LogRecordExporter):
    signal: Signal = "logs"

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        return self._export_in_chunks(  # type: ignore[no-any-return]
            batch, _bounds.log_record_size, LogRecordExportResult.FAILURE)

    def shutdown(self) -> None:
        self._shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class GuardedMetricExporter(_Guard, MetricExporter):
    signal: Signal = "metrics"

    def __init__(self, factory: Callable[[], Any], fork_wait: float = 10.0) -> None:
        _Guard.__init__(self, factory, fork_wait)
        MetricExporter.__init__(self)  # cumulative temporality, default aggregation

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return self._call(  # type: ignore[no-any-return]
            "export", MetricExportResult.FAILURE, metrics_data, timeout_millis=timeout_millis, **kwargs
        )

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self._call("force_flush", False, timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._shutdown(timeout_millis=timeout_millis)


def _failed(result: Any, failure: Any) -> bool:
    """Whether an exporter's ``result`` is a failure (the guard's own ``failure``, or any ``FAILURE``)."""
    return result is failure or getattr(result, "name", "") == "FAILURE"


def _overall(results: list[Any], failure: Any) -> Any:
    """One result for a batch exported in parts: the first failure, else the first result."""
    return next((r for r in results if _failed(r, failure)), results[0])


def make_exporter(signal: Signal, config: Config) -> Any:
    """A guarded OTLP exporter for ``signal`` per ``config`` (caller checks ``config.exports(signal)``)."""
    def factory() -> Any:
        return _new_otlp(signal, config)

    # An export in flight ends within the export timeout, so a fork never waits longer than that for it.
    if signal == "traces":
        return GuardedSpanExporter(factory, config.export_timeout)
    if signal == "logs":
        return GuardedLogExporter(factory, config.export_timeout)
    # Built in init() as the others: over HTTP obskit's exporter imports no protobuf (cheap to build), over
    # gRPC grpc and protobuf are imported for the span and log exporters anyway.
    return GuardedMetricExporter(factory, config.export_timeout)
