"""The SDK batch processors obskit queues spans and log records in, with every item they drop counted.

The SDK counts what its batch processors drop only when ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true``
(otherwise it hands them a no-op), so ``obskit_telemetry_dropped_total`` stayed 0 through every loss. And its
count is approximate: it checks "full" before appending, while the export thread pops, so a burst counted up
to a batch more than it lost. obskit gives each processor a queue that bounds itself and counts exactly what
it evicts, and counts what is handed to a processor already shut down; both land in
:func:`obskit._runtime._health.record_dropped`. Items in an export that fails are counted by the exporter
guard (``_exporters``), which sees the batch.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from . import _health
from ._safe import report_internal_error

__all__ = ["batch_log_processor", "batch_span_processor"]


class _CountingQueue(collections.deque[Any]):
    """The processor's queue: newest on the left, the export thread pops the oldest on the right.

    Bounded by hand instead of by ``maxlen``: evict the oldest while full, counting each item evicted, then
    append. Every append and pop is atomic, so an item is counted exactly when it is thrown away; if the
    export thread empties the queue in between, nothing is evicted and nothing counted.
    """

    def __init__(self, limit: int, signal: str) -> None:
        super().__init__()
        self._limit = limit
        self._signal = signal
        self._generation = _health.generation()

    def appendleft(self, item: Any) -> None:
        # Evict first, then append: the queue is never seen over its limit, not even for a moment.
        while len(self) >= self._limit:
            try:
                self.pop()
            except IndexError:
                break
            _health.record_dropped(self._signal, 1, self._generation)
        super().appendleft(item)


class _DropCounts:
    """The SDK's processor-metrics interface (``drop_items``, ``finish_items``, ``register_queue_size``),
    reduced to what the queue cannot see: items handed over after shutdown."""

    def __init__(self, signal: str) -> None:
        self._signal = signal
        self._generation = _health.generation()

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        pass

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        if error_type != "queue_full":  # a full queue counts its own evictions, exactly
            _health.record_dropped(self._signal, count, self._generation)

    def finish_items(self, count: int) -> None:
        pass


def _count_drops(processor: Any, signal: str) -> None:
    inner = getattr(processor, "_batch_processor", None)
    if inner is None or not all(hasattr(inner, a) for a in ("_metrics", "_queue", "_max_queue_size")):
        report_internal_error(f"{signal} drop counting", RuntimeError(
            "this OpenTelemetry SDK's batch processor is not the one obskit knows; drops are not counted"))
        return
    inner._metrics = _DropCounts(signal)
    inner._queue = _CountingQueue(inner._max_queue_size, signal)  # still empty: built a moment ago


def batch_span_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    """A ``BatchSpanProcessor`` (sizes from ``OTEL_BSP_*`` as usual) whose drops are counted."""
    processor = BatchSpanProcessor(exporter, meter_provider=NoOpMeterProvider())
    _count_drops(processor, "traces")
    return processor


def batch_log_processor(exporter: LogRecordExporter) -> BatchLogRecordProcessor:
    """A ``BatchLogRecordProcessor`` (sizes from ``OTEL_BLRP_*`` as usual) whose drops are counted."""
    processor = BatchLogRecordProcessor(exporter, meter_provider=NoOpMeterProvider())
    _count_drops(processor, "logs")
    return processor
