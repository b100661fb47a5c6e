"""Scrape-time breaker gauges: state (one-hot) and window rates, read from one snapshot per breaker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._runtime._safe import report_internal_error
from . import _registry
from ._state import CircuitState

__all__ = ["BreakerCollector"]


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
