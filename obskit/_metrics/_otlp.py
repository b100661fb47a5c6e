"""OTLP push: read obskit's prometheus-client metrics periodically and send them as OTel ``MetricsData``.

Converting from the very objects ``/metrics`` renders makes the two outputs agree by construction, and
keeps the per-call cost at prometheus-client's. Temporality is cumulative (prometheus-client's own); each
series' start time is its ``_created`` sample. Under multiple workers each process pushes its own values
with its own ``service.instance.id`` (renewed after a fork), so a backend's sum over instances equals the
aggregate a scrape shows.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .._config import Config
from .._runtime import _fork
from .._runtime._safe import report_internal_error, run_bounded, telemetry_section
from . import _multiprocess
from ._since_fork import SinceFork

__all__ = ["Pusher", "snapshot"]

_UNITS = {"seconds": "s", "milliseconds": "ms", "ms": "ms", "bytes": "By", "ratio": "1", "percent": "%"}
_SCOPE = InstrumentationScope("obskit", "0.1.0")
_PROCESS_START_NS = time.time_ns()
_UNSET: Any = None  # HistogramDataPoint.min/max: prometheus-client does not track them; None leaves them out


def _ns(seconds: float | None) -> int:
    return _PROCESS_START_NS if seconds is None else int(seconds * 1e9)


def _exemplars(ex: Any) -> list[Exemplar]:
    if ex is None:
        return []
    try:
        return [Exemplar({}, float(ex.value), int((ex.timestamp or time.time()) * 1e9),
                         span_id=int(ex.labels["span_id"], 16), trace_id=int(ex.labels["trace_id"], 16))]
    except (KeyError, ValueError, TypeError):
        return []


def _series(samples: Iterable[Any], base: str) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    """Group a family's samples by their labels (``le`` aside) into one dict per series."""
    out: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in samples:
        suffix = s.name[len(base):]
        # ``le`` is the bucket bound on histogram buckets only; on a counter or gauge it is a user label.
        labels = {k: v for k, v in s.labels.items() if not (k == "le" and suffix == "_bucket")}
        entry = out.setdefault(tuple(sorted(labels.items())), {"attrs": labels, "buckets": []})
        if suffix == "_bucket":
            entry["buckets"].append((float(s.labels["le"]), s.value, s.exemplar))
        else:
            entry[suffix or "value"] = s
    return out


def _convert(inst: Any, now: int) -> Metric | None:
    kind, unit = inst.kind, _UNITS.get(inst.unit, inst.unit)
    # Instruments made through the OpenTelemetry API keep their own names, units and attribute keys.
    name, unit = getattr(inst, "otlp_name", inst.name), getattr(inst, "otlp_unit", unit)
    keys: dict[str, str] = getattr(inst, "otlp_keys", {})
    points: list[Any] = []
    for fam in inst._prom.collect():
        for entry in _series(fam.samples, fam.name).values():
            if keys:
                entry["attrs"] = {keys.get(k, k): v for k, v in entry["attrs"].items()}
            created = entry.get("_created")
            start = _ns(created.value if created is not None else None)
            if kind == "counter" and "_total" in entry:
                s = entry["_total"]
                points.append(NumberDataPoint(entry["attrs"], start, now, s.value, _exemplars(s.exemplar)))
            elif kind == "gauge" and "value" in entry:
                s = entry["value"]
                points.append(NumberDataPoint(entry["attrs"], start, now, s.value))
            elif kind == "histogram" and entry["buckets"]:
                buckets = sorted(entry["buckets"], key=lambda b: b[0])
                counts, prev, exemplars = [], 0.0, []
                for _bound, cumulative, ex in buckets:
                    counts.append(int(cumulative - prev))
                    prev = cumulative
                    exemplars.extend(_exemplars(ex))
                total = entry.get("_sum")
                points.append(HistogramDataPoint(
                    entry["attrs"], start, now, int(prev), total.value if total is not None else 0.0, counts,
                    [b[0] for b in buckets if b[0] != float("inf")], _UNSET, _UNSET, exemplars))
    if not points:
        return None
    cumulative = AggregationTemporality.CUMULATIVE
    data: Any
    if kind == "counter":
        data = Sum(points, cumulative, is_monotonic=True)
    elif kind == "gauge":
        data = Gauge(points)
    else:
        data = Histogram(points, cumulative)
    return Metric(name, inst.documentation, unit, data)


def snapshot(instruments: Iterable[Any], resource: Resource) -> MetricsData:
    """Every instrument's current values as OTel ``MetricsData`` (cumulative)."""
    now = time.time_ns()
    metrics = []
    for inst in instruments:
        try:
            m = _convert(inst, now)
        except Exception as exc:
            report_internal_error(f"metrics snapshot of {inst.name}", exc)
            continue
        if m is not None:
            metrics.append(m)
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(_SCOPE, metrics, "")], "")])


def _last_push() -> Any:
    """The push-age gauge: ``time() - obskit_metrics_last_push_timestamp_seconds`` is how stale the backend's
    copy of this process's metrics is. Defined on the first successful push, never at import; one series per
    pid, so workers summed by multiprocess mode never add their timestamps together."""
    from ._instruments import gauge

    return gauge("obskit_metrics_last_push_timestamp_seconds",
                 "Unix time of this process's last successful OTLP metrics push", labels=["pid"])


def _process_resource(resource: Resource, renew: bool) -> Resource:
    """The resource with this process's pid, and a fresh ``service.instance.id`` for a (new) worker."""
    attrs: dict[str, Any] = {"process.pid": os.getpid()}
    if renew or "service.instance.id" not in resource.attributes:
        attrs["service.instance.id"] = str(uuid.uuid4())
    return resource.merge(Resource(attrs))


class Pusher:
    """A daemon thread exporting a snapshot every ``metric_export_interval`` seconds."""

    def __init__(self, config: Config, resource: Resource, exporter: Any = None) -> None:
        if exporter is None:
            from .._runtime._exporters import make_exporter

            exporter = make_exporter("metrics", config)
        self._exporter = exporter
        self._interval = config.metric_export_interval
        self._timeout = config.export_timeout
        self._base = resource
        self._resource = _process_resource(resource, renew=_multiprocess.enabled())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._at_fork: MetricsData | None = None
        self._since_fork: SinceFork | None = None
        self._fork_name = f"metrics push {id(self)}"
        _fork.register(self._fork_name, before=self._before_fork, after_in_parent=self._after_fork_in_parent,
                       after_in_child=self._forked)

    @property
    def resource(self) -> Resource:
        """The resource sent with every export (this process's instance id)."""
        return self._resource

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._running = True
        self._thread = threading.Thread(target=self._run, name="obskit-metrics-push", daemon=True)
        self._thread.start()

    def _before_fork(self) -> None:
        """The values the child will inherit, read here in the parent where every lock still works; the
        child pushes only what it adds to them (``_since_fork``). Multiprocess mode starts children at 0."""
        from ._instruments import instruments

        self._at_fork = None if _multiprocess.enabled() else snapshot(instruments(), self._resource)

    def _after_fork_in_parent(self) -> None:
        self._at_fork = None

    def _forked(self) -> None:
        # Threads do not survive fork(): a worker forked from a pushing master needs its own, and its own id.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._resource = _process_resource(self._base, renew=True)
        if self._at_fork is not None:
            self._since_fork = SinceFork(self._at_fork, time.time_ns())
            self._at_fork = None
        if self._running:
            self.start()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self._interval):
            self.export_once(self._timeout)

    def export_once(self, timeout: float) -> bool:
        """Export the current values now (serialised with the background pushes)."""
        from ._instruments import instruments

        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            return False
        try:
            with telemetry_section():
                data = snapshot(instruments(), self._resource)
                if self._since_fork is not None:
                    data = self._since_fork.subtract(data)
            result = self._exporter.export(data, timeout_millis=max(timeout, 0.001) * 1000)
            if result == MetricExportResult.SUCCESS:
                _last_push().set(time.time(), pid=str(os.getpid()))
            return bool(result == MetricExportResult.SUCCESS)
        except Exception as exc:
            report_internal_error("metrics push", exc)
            return False
        finally:
            self._lock.release()

    def _bounded(self, timeout: float) -> bool:
        """``export_once`` in a helper thread, so the caller waits at most ``timeout``."""
        return run_bounded(lambda: self.export_once(timeout), timeout, "metrics-flush")

    def force_flush(self, timeout: float) -> bool:
        """Push now; False on failure or when ``timeout`` seconds pass first."""
        return self._bounded(min(timeout, self._timeout))

    def shutdown(self, timeout: float) -> bool:
        """Stop the thread, push the final values and close the exporter, within ``timeout`` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        self._running = False
        self._stop.set()
        ok = self._bounded(min(self._timeout, max(deadline - time.monotonic(), 0.0)))
        try:
            self._exporter.shutdown(timeout_millis=max(deadline - time.monotonic(), 0.0) * 1000)
        except Exception as exc:
            report_internal_error("metrics exporter shutdown", exc)
            ok = False
        _fork.unregister(self._fork_name)
        return ok
