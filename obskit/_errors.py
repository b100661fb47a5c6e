"""obskit's exceptions: one small tree, so callers can catch as broadly or narrowly as they need.

    ObskitError
    ├── ConfigError (ValueError)          a setting has a value obskit cannot use (raised in strict mode)
    ├── MetricError (ValueError)          a metric definition or a metric call does not fit its declaration
    └── ResilienceError                   a resilience guard refused or cut short a call
        ├── CircuitOpenError              the breaker is open: the call was not made
        ├── BulkheadFullError             no concurrency slot came free within ``max_wait``
        └── CallTimeoutError (TimeoutError)  the call ran past its time limit

Telemetry paths never raise these into the host application; only definitions (a bad metric name),
strict configuration and the resilience guards do, because there the caller asked for it.
"""

from __future__ import annotations

__all__ = [
    "BulkheadFullError",
    "CallTimeoutError",
    "CircuitOpenError",
    "ConfigError",
    "MetricError",
    "ObskitError",
    "ResilienceError",
]


class ObskitError(Exception):
    """Base of every exception obskit raises on purpose."""


class ConfigError(ObskitError, ValueError):
    """A setting (argument or environment variable) has a value obskit cannot use.

    Raised only under ``strict=True`` / ``OBSKIT_STRICT=1``; otherwise obskit warns once and falls back.
    """

    def __init__(self, message: str, *, option: str | None = None, variable: str | None = None) -> None:
        super().__init__(message)
        self.option = option
        self.variable = variable


class MetricError(ObskitError, ValueError):
    """A metric was declared inconsistently, or called with labels that do not match its declaration."""


class ResilienceError(ObskitError):
    """Base for the refusals of the resilience guards (breaker, bulkhead, timeout)."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker rejected the call without making it.

    ``retry_at`` is the monotonic-clock time (``time.monotonic()``) after which the breaker will admit a
    probe, and ``retry_after`` the seconds left until then when the error was raised.
    """

    def __init__(self, name: str, *, retry_after: float | None = None, retry_at: float | None = None) -> None:
        hint = f"; retry in {retry_after:.3g}s" if retry_after is not None else ""
        super().__init__(f"circuit breaker {name!r} is open{hint}")
        self.name = name
        self.retry_after = retry_after
        self.retry_at = retry_at


class BulkheadFullError(ResilienceError):
    """Every slot of the bulkhead stayed busy for longer than ``max_wait``."""

    def __init__(self, name: str, *, max_concurrent: int, max_wait: float | None) -> None:
        super().__init__(
            f"bulkhead {name!r} is full ({max_concurrent} calls in flight, waited {max_wait or 0:.3g}s)"
        )
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_wait = max_wait


class CallTimeoutError(ResilienceError, TimeoutError):
    """The call did not finish within its time limit. A ``TimeoutError``, so existing handlers catch it."""

    def __init__(self, name: str, *, timeout: float) -> None:
        super().__init__(f"call {name!r} timed out after {timeout:.3g}s")
        self.name = name
        self.timeout = timeout
