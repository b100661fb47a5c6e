"""The one place resilience decisions become metrics (WHAT), logs (WHY) and span events (WHERE).

Everything here is guarded: a broken exporter, logger or metrics backend is reported once on stderr and
never changes the outcome of the call that triggered it. The per-call paths use metric children bound once
per breaker, so a closed breaker's success path costs two metric updates and no allocation.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opentelemetry import trace

from .. import _metrics
from .._safe import report_internal_error
from . import _events, _registry
from ._events import (
    BulkheadRejected,
    CallRejected,
    Event,
    FallbackInvoked,
    RetryAttempted,
    RetryFinished,
    StateChanged,
    TimeoutFinished,
)
from ._state import REJECTED, CircuitState, Outcome

__all__ = ["BreakerCallMetrics", "GaugeChild", "TelemetrySink", "gauge_child", "install"]

LOGGER_NAME = "obskit.resilience"
_OUTCOMES = ("success", "failure", "ignored", "cancelled", "rejected")  # indexed by Outcome


def _instrument(kind: str, name: str, doc: str, labels: Sequence[str]) -> Any:
    """The obskit metric ``name`` (obskit returns the existing one when it is defined again)."""
    if kind == "counter":
        return _metrics.counter(name, doc, labels=labels)
    if kind == "histogram":
        return _metrics.histogram(name, doc, unit="seconds", labels=labels)
    return _metrics.gauge(name, doc, labels=labels)


def _live(inst: Any) -> bool:
    """Is ``inst`` still obskit's instrument for its name? (Test resets replace every instrument.)"""
    registry = getattr(_metrics, "_instruments", None)
    return registry is None or registry.get(inst.name) is inst


class _Bound:
    """A label-bound view through the instrument's public methods (used if children are not reachable)."""

    __slots__ = ("_inst", "_labels")

    def __init__(self, inst: Any, labels: dict[str, str]) -> None:
        self._inst, self._labels = inst, labels

    def inc(self, amount: float = 1) -> None:
        self._inst.inc(amount, **self._labels)

    def dec(self, amount: float = 1) -> None:
        self._inst.dec(amount, **self._labels)

    def observe(self, value: float) -> None:
        self._inst.observe(value, **self._labels)


def _child(inst: Any, **labels: str) -> Any:
    """The prometheus child behind ``inst`` for ``labels``, looked up once so hot paths skip label work.

    Goes through obskit's own lookup, so label checks and the cardinality guard still apply.
    """
    lookup = getattr(inst, "_lookup", None)
    if callable(lookup):
        child = lookup(dict(labels))
        if child is not None and hasattr(child, "inc" if inst.kind != "histogram" else "observe"):
            return child
    return _Bound(inst, labels)


def _counter(name: str, doc: str, labels: Sequence[str]) -> Any:
    return _instrument("counter", name, doc, labels)


def _inc(metric: str, doc: str, /, amount: float = 1, **labels: str) -> None:
    """Increment a counter on a decision path (rare enough to go through the public API each time).

    Each channel (metric, log, span event) is guarded on its own, so one broken backend hides nothing else.
    """
    try:
        _counter(metric, doc, tuple(labels)).inc(amount, **labels)
    except Exception as exc:
        report_internal_error("resilience metrics", exc)


# -- per-call metrics ----------------------------------------------------------------------------------


class _FastSeries:
    """One outcome's counter and histogram children, reduced to the value cells they update.

    Same shortcut obskit's own histogram takes (bisect instead of prometheus-client's linear scan, no
    per-call checks); if prometheus-client's internals ever differ, :func:`_fast` falls back to ``_Slow``.
    """

    __slots__ = ("_bounds", "_buckets", "_count", "_sum")

    def __init__(self, count: Any, hist: Any) -> None:
        self._count = count._value
        self._sum = hist._sum
        self._buckets = hist._buckets
        self._bounds = hist._upper_bounds

    def record(self, duration: float) -> None:
        self._count.inc(1)
        self._buckets[bisect_left(self._bounds, duration)].inc(1)
        self._sum.inc(duration)

    def count_only(self) -> None:
        self._count.inc(1)


class _SlowSeries:
    """The same through the children's public methods."""

    __slots__ = ("_count", "_hist")

    def __init__(self, count: Any, hist: Any) -> None:
        self._count, self._hist = count, hist

    def record(self, duration: float) -> None:
        self._count.inc()
        self._hist.observe(duration)

    def count_only(self) -> None:
        self._count.inc()


def _fast(count: Any, hist: Any) -> _FastSeries | _SlowSeries:
    try:
        series = _FastSeries(count, hist)
        if len(series._buckets) == len(series._bounds):
            return series
    except AttributeError:
        pass
    return _SlowSeries(count, hist)


class BreakerCallMetrics:
    """``calls_total`` and ``call_duration_seconds`` for one breaker, children bound on first use.

    Re-binds when obskit's instruments were replaced (a test reset), checked with one dict lookup.
    """

    __slots__ = ("_calls", "_name", "_registry", "_series")

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: Any = None
        self._registry: dict[str, Any] = getattr(_metrics, "_instruments", None) or {}
        self._series: list[_FastSeries | _SlowSeries] | None = None

    def _bind(self) -> list[_FastSeries | _SlowSeries]:
        calls = _counter(
            "obskit_circuit_breaker_calls",
            "Calls through a circuit breaker, by outcome.",
            ("name", "outcome"),
        )
        duration = _instrument(
            "histogram",
            "obskit_circuit_breaker_call_duration",
            "Duration of the calls a circuit breaker let through, by outcome.",
            ("name", "outcome"),
        )
        series = []
        for o in _OUTCOMES:
            count, hist = (
                _child(calls, name=self._name, outcome=o),
                _child(duration, name=self._name, outcome=o),
            )
            series.append(_fast(count, hist) if not isinstance(count, _Bound) else _SlowSeries(count, hist))
        self._calls, self._series = calls, series
        self._registry = getattr(_metrics, "_instruments", None) or {calls.name: calls}
        return series

    def __call__(self, outcome: Outcome, duration: float) -> None:
        try:
            series = self._series
            if series is None or self._registry.get("obskit_circuit_breaker_calls") is not self._calls:
                series = self._bind()
            if outcome is REJECTED:
                series[outcome].count_only()
            else:
                series[outcome].record(duration)
        except Exception as exc:
            report_internal_error("resilience call metrics", exc)


class GaugeChild:
    """A guarded gauge child for hot paths (bulkhead occupancy)."""

    __slots__ = ("_child", "_doc", "_inst", "_labels", "_name")

    def __init__(self, metric: str, doc: str, /, **labels: str) -> None:
        self._name, self._doc, self._labels = metric, doc, labels
        self._inst: Any = None
        self._child: Any = None

    def _get(self) -> Any:
        if self._child is None or not _live(self._inst):
            self._inst = _instrument("gauge", self._name, self._doc, tuple(self._labels))
            self._child = _child(self._inst, **self._labels)
        return self._child

    def inc(self) -> None:
        try:
            self._get().inc()
        except Exception as exc:
            report_internal_error("resilience gauge", exc)

    def dec(self) -> None:
        try:
            self._get().dec()
        except Exception as exc:
            report_internal_error("resilience gauge", exc)


def gauge_child(metric: str, doc: str, /, **labels: str) -> GaugeChild:
    """A guarded, lazily bound gauge child."""
    return GaugeChild(metric, doc, **labels)


# -- decisions: metrics + logs + span events ------------------------------------------------------------

_logger: Any = None


def get_logger() -> Any:
    """obskit's logger for this layer; plain structlog until obskit's logging is importable."""
    global _logger
    if _logger is None:
        from .. import _logging

        _logger = _logging.get_logger(LOGGER_NAME)
    return _logger


def _log(level: str, event: str, **fields: Any) -> None:
    """One structured log line on ``obskit.resilience``; fields only, never call arguments."""
    try:
        getattr(get_logger(), level)(event, **fields)
    except Exception as exc:
        report_internal_error("resilience logs", exc)


def _span_event(name: str, fields: dict[str, Any]) -> None:
    """Add an event to the current span, if one is recording (None values are dropped: OTel rejects them)."""
    try:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(name, {k: v for k, v in fields.items() if v is not None})
    except Exception as exc:
        report_internal_error("resilience span events", exc)


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class TelemetrySink:
    """The default sink: maps each decision to its counters, its log line and its span event."""

    def __init__(self) -> None:
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            StateChanged: self._state_changed,
            CallRejected: self._rejected,
            FallbackInvoked: self._fallback,
            RetryAttempted: self._retry_attempt,
            RetryFinished: self._retry_finished,
            TimeoutFinished: self._timeout,
            BulkheadRejected: self._bulkhead,
        }

    def __call__(self, event: Event) -> None:
        self._handlers[type(event)](event)

    def _state_changed(self, e: StateChanged) -> None:
        _inc(
            "obskit_circuit_breaker_transitions",
            "Circuit breaker state transitions.",
            name=e.name,
            from_state=e.from_state,
            to_state=e.to_state,
        )
        fields = {
            "name": e.name,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "reason": e.reason,
            "failure_rate": _rate(e.failure_rate),
            "slow_call_rate": _rate(e.slow_call_rate),
            "window_size": e.window_size,
            "wait": e.wait,
        }
        _log("warning" if e.to_state == "open" else "info", "circuit_breaker.state_changed", **fields)
        _span_event("circuit_breaker.state_changed", fields)

    def _rejected(self, e: CallRejected) -> None:
        _span_event(
            "circuit_breaker.rejected", {"name": e.name, "state": e.state, "retry_after": e.retry_after}
        )

    def _fallback(self, e: FallbackInvoked) -> None:
        fields = {"name": e.name, "reason": e.reason, "error_type": e.error_type}
        _log("warning", "fallback.invoked", **fields)
        _span_event("fallback.invoked", fields)

    def _retry_attempt(self, e: RetryAttempted) -> None:
        fields = {"name": e.name, "attempt": e.attempt, "wait": round(e.wait, 4), "error_type": e.error_type}
        _log("info", "retry.attempt", **fields)
        _span_event("retry.attempt", fields)

    def _retry_finished(self, e: RetryFinished) -> None:
        _inc(
            "obskit_retry_calls",
            "Calls through a retry decorator, by outcome.",
            name=e.name,
            outcome=e.outcome,
        )
        _inc(
            "obskit_retry_attempts",
            "Attempts made by retry decorators, first ones included.",
            amount=e.attempts,
            name=e.name,
        )
        if e.outcome == "failed_with_retry":
            fields = {"name": e.name, "attempts": e.attempts, "error_type": e.error_type, "reason": e.reason}
            _log("warning", "retry.exhausted", **fields)

    def _timeout(self, e: TimeoutFinished) -> None:
        _inc("obskit_timeout_calls", "Calls under a time limit, by outcome.", name=e.name, outcome=e.outcome)

    def _bulkhead(self, e: BulkheadRejected) -> None:
        _inc("obskit_bulkhead_rejected", "Calls a bulkhead refused.", name=e.name)
        _log(
            "warning", "bulkhead.rejected", name=e.name, max_concurrent=e.max_concurrent, max_wait=e.max_wait
        )


# -- scrape-time gauges ---------------------------------------------------------------------------------


class BreakerCollector:
    """State (one-hot) and rate gauges, computed at scrape time from one consistent snapshot per breaker.

    Setting gauge children on each transition could be scraped half-way (zero or two states hot); reading
    the state once per scrape cannot. Rates are absent while the window holds fewer than the minimum calls.
    """

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        state = GaugeMetricFamily(
            "obskit_circuit_breaker_state", "Circuit breaker state (one-hot).", labels=["name", "state"]
        )
        failure = GaugeMetricFamily(
            "obskit_circuit_breaker_failure_rate",
            "Failure rate in the breaker's current window (absent below the minimum calls).",
            labels=["name"],
        )
        slow = GaugeMetricFamily(
            "obskit_circuit_breaker_slow_call_rate",
            "Slow-call rate in the breaker's current window (absent below the minimum calls).",
            labels=["name"],
        )
        for core in _registry.all_cores():
            try:
                current, failure_rate, slow_rate, _ = core.snapshot()
            except Exception as exc:
                report_internal_error("resilience collector", exc)
                continue
            for s in CircuitState:
                state.add_metric([core.name, s.value], 1.0 if s is current else 0.0)
            if failure_rate is not None and slow_rate is not None:
                failure.add_metric([core.name], failure_rate)
                slow.add_metric([core.name], slow_rate)
        yield state
        yield failure
        yield slow


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Register the default sink and the scrape-time collector, once per process."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        _events.add_sink(TelemetrySink())
        try:
            import prometheus_client

            prometheus_client.REGISTRY.register(BreakerCollector())  # type: ignore[arg-type]
        except Exception as exc:
            report_internal_error("resilience collector registration", exc)
        _installed = True
