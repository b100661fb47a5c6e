"""The default sink: resilience decisions become metrics (WHAT), logs (WHY) and span events (WHERE).

Each channel is guarded on its own: a broken exporter, logger or metrics backend is reported once on stderr,
hides nothing from the other channels and never changes the outcome of the call that triggered it.
Per-call metrics live in ``_call_metrics`` and the scrape-time gauges in ``_collector``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from .._runtime._safe import report_internal_error
from . import _events
from ._call_metrics import BreakerCallMetrics, GaugeChild
from ._collector import BreakerCollector
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
from ._instruments import inc as _inc

__all__ = ["BreakerCallMetrics", "GaugeChild", "TelemetrySink", "install"]

LOGGER_NAME = "obskit.resilience"


_logger: Any = None


def get_logger() -> Any:
    """obskit's logger for this layer; plain structlog until obskit's logging is importable."""
    global _logger
    if _logger is None:
        from .._logs import _api as _logging

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
        _inc("obskit_fallback_calls", "Calls a circuit breaker answered with its fallback, by reason.",
             name=e.name, reason=e.reason)
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
