"""Per-call metrics: the hot path of every guarded call, bound once and kept allocation-free."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from .._metrics import _instruments as _metrics
from .._runtime._safe import report_internal_error
from ._instruments import Bound, child, instrument
from ._state import REJECTED, Outcome

__all__ = ["BreakerCallMetrics", "GaugeChild"]

_OUTCOMES = ("success", "failure", "ignored", "cancelled", "rejected")  # indexed by Outcome


class _FastSeries:
    """One outcome's counter and histogram children, reduced to the value cells they update.

    Same shortcut obskit's own histogram takes (bisect instead of prometheus-client's linear scan, no
    per-call checks); if prometheus-client's internals ever differ, :func:`_fast` picks ``_SlowSeries``.
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

    Re-binds after obskit discarded its children (a test reset), checked with one integer comparison.
    """

    __slots__ = ("_generation", "_name", "_series")

    def __init__(self, name: str) -> None:
        self._name = name
        self._generation = -1
        self._series: list[_FastSeries | _SlowSeries] | None = None

    def _bind(self) -> list[_FastSeries | _SlowSeries]:
        self._generation = _metrics.generation
        calls = instrument(
            "counter",
            "obskit_circuit_breaker_calls",
            "Calls through a circuit breaker, by outcome.",
            ("name", "outcome"),
        )
        duration = instrument(
            "histogram",
            "obskit_circuit_breaker_call_duration",
            "Duration of the calls a circuit breaker let through, by outcome.",
            ("name", "outcome"),
        )
        series = []
        for o in _OUTCOMES:
            count, hist = (
                child(calls, name=self._name, outcome=o),
                child(duration, name=self._name, outcome=o),
            )
            series.append(_fast(count, hist) if not isinstance(count, Bound) else _SlowSeries(count, hist))
        self._series = series
        return series

    def __call__(self, outcome: Outcome, duration: float) -> None:
        try:
            series = self._series
            if series is None or self._generation != _metrics.generation:
                series = self._bind()
            if outcome is REJECTED:
                series[outcome].count_only()
            else:
                series[outcome].record(duration)
        except Exception as exc:
            report_internal_error("resilience call metrics", exc)


class GaugeChild:
    """A guarded gauge child for hot paths (bulkhead occupancy)."""

    __slots__ = ("_child", "_doc", "_generation", "_labels", "_name")

    def __init__(self, metric: str, doc: str, /, **labels: str) -> None:
        self._name, self._doc, self._labels = metric, doc, labels
        self._generation = -1
        self._child: Any = None

    def _get(self) -> Any:
        if self._child is None or self._generation != _metrics.generation:
            self._generation = _metrics.generation
            inst = instrument("gauge", self._name, self._doc, tuple(self._labels))
            self._child = child(inst, **self._labels)
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

    def set(self, value: float) -> None:
        try:
            self._get().set(value)
        except Exception as exc:
            report_internal_error("resilience gauge", exc)
