"""Observable resilience: circuit breaker with fallback, retry, timeout and bulkhead.

Every decision is emitted as a frozen event (``_events``) to sinks; the default sink (``_telemetry``)
turns them into metrics, logs and span events, so the guards themselves stay small and testable.
Composition order, outermost first: ``retry`` > ``circuit_breaker`` > ``timeout`` > ``bulkhead``.
"""

from __future__ import annotations

from ._breaker import CircuitBreaker, circuit_breaker
from ._bulkhead import bulkhead
from ._events import add_sink, remove_sink
from ._retry import retry
from ._state import BreakerConfig, CircuitState
from ._timeout import timeout

__all__ = [
    "BreakerConfig",
    "CircuitBreaker",
    "CircuitState",
    "add_sink",
    "bulkhead",
    "circuit_breaker",
    "remove_sink",
    "retry",
    "timeout",
]
