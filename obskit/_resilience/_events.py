"""The decisions the resilience layer takes, as frozen values, and the sinks that receive them.

The guards never log or count anything themselves: they describe what they decided and hand the
description to every registered sink. That keeps the state machines pure (tests assert on events) and
makes telemetry a replaceable consumer whose failures are contained in :func:`emit`.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Protocol

from .._runtime._safe import report_internal_error

__all__ = [
    "BulkheadRejected",
    "CallRejected",
    "Event",
    "FallbackInvoked",
    "RetryAttempted",
    "RetryFinished",
    "Sink",
    "StateChanged",
    "TimeoutFinished",
    "add_sink",
    "emit",
    "remove_sink",
]


@dataclasses.dataclass(frozen=True, slots=True)
class StateChanged:
    """A breaker moved from one state to another; rates describe the window that caused it."""

    name: str
    from_state: str
    to_state: str
    failure_rate: float | None
    slow_call_rate: float | None
    window_size: int
    reason: str  # wait_elapsed, failure_rate, slow_call_rate, probes_*, probe_timeout, reset, forced_open...
    wait: float | None = None  # seconds the breaker will stay open, when ``to_state`` is open


@dataclasses.dataclass(frozen=True, slots=True)
class CallRejected:
    """A breaker refused a call without making it."""

    name: str
    state: str
    retry_after: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class FallbackInvoked:
    """A breaker answered with its fallback instead of the protected call's result."""

    name: str
    reason: str  # "rejected" or "failure"
    error_type: str


@dataclasses.dataclass(frozen=True, slots=True)
class RetryAttempted:
    """A retrying call failed and will be tried again after ``wait`` seconds."""

    name: str
    attempt: int  # number of the attempt about to be made (2 for the first retry)
    wait: float
    error_type: str


@dataclasses.dataclass(frozen=True, slots=True)
class RetryFinished:
    """A retrying call is over: ``outcome`` is one of the four ``obskit_retry_calls_total`` outcomes."""

    name: str
    outcome: str
    attempts: int
    error_type: str | None = None
    reason: str | None = None  # why retrying stopped on failure: "attempts", "deadline" or "not_retryable"


@dataclasses.dataclass(frozen=True, slots=True)
class TimeoutFinished:
    """A call under a time limit ended: ``outcome`` is success, failure, timeout or cancelled."""

    name: str
    outcome: str
    timeout: float


@dataclasses.dataclass(frozen=True, slots=True)
class BulkheadRejected:
    """No bulkhead slot came free within ``max_wait``."""

    name: str
    max_concurrent: int
    max_wait: float | None


Event = (
    StateChanged
    | CallRejected
    | FallbackInvoked
    | RetryAttempted
    | RetryFinished
    | TimeoutFinished
    | BulkheadRejected
)


class Sink(Protocol):
    """Receives every decision; must be thread-safe. Exceptions it raises are reported and dropped."""

    def __call__(self, event: Event) -> None: ...


_sinks: tuple[Sink, ...] = ()
_writers = threading.Lock()


def add_sink(sink: Sink) -> None:
    """Register ``sink`` for every future event (copy-on-write, so emitting never takes a lock)."""
    global _sinks
    with _writers:
        _sinks = (*_sinks, sink)


def remove_sink(sink: Sink) -> None:
    """Unregister ``sink``; unknown sinks are ignored."""
    global _sinks
    with _writers:
        _sinks = tuple(s for s in _sinks if s is not sink)


def emit(event: Event) -> None:
    """Hand ``event`` to every sink; a failing sink never changes the outcome of the guarded call."""
    for sink in _sinks:
        try:
            sink(event)
        except Exception as exc:
            report_internal_error(f"resilience sink {type(sink).__name__}", exc)
