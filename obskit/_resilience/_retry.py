"""``retry``: try a call again on chosen errors, with capped exponential backoff, jitter and a deadline.

All retry state (attempt number, start time) lives in the wrapper's frame, so concurrent calls through one
decorated function never share counters. ``CircuitOpenError`` is not retried unless asked for: the breaker
already said when to come back, and hammering it is what it exists to prevent.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from .._errors import CircuitOpenError
from . import _events
from . import _observe as _telemetry
from ._events import RetryAttempted, RetryFinished

__all__ = ["retry"]

P = ParamSpec("P")
R = TypeVar("R")

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]

# Module-level so tests can replace the waiting without touching the public signature.
_sleep: Callable[[float], None] = time.sleep
_async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
_clock: Callable[[], float] = time.monotonic


def retry_after_hint(exc: BaseException) -> float | None:
    """Seconds the failing side asked us to wait: ``exc.retry_after`` or an HTTP ``Retry-After`` header."""
    value: Any = getattr(exc, "retry_after", None)
    if value is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        if headers is not None:
            try:
                value = headers.get("Retry-After")
            except Exception:
                value = None
    if value is None:
        return None
    try:
        return _plausible(float(value))
    except (TypeError, ValueError, OverflowError):
        pass
    try:  # an HTTP-date
        when = email.utils.parsedate_to_datetime(str(value))
        return _plausible(when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


_MAX_HINT = 86_400.0


def _plausible(seconds: float) -> float | None:
    """A hint of more than a day (or inf, NaN) is garbage, not an instruction to sleep past any sane limit."""
    if not seconds <= _MAX_HINT:  # also catches NaN
        return None
    return max(0.0, seconds)


class _Policy:
    """The immutable retry settings shared by every call of one decorated function."""

    __slots__ = ("attempts", "backoff", "deadline", "jitter", "max_backoff", "name", "on", "retry_open")

    def __init__(
        self,
        name: str,
        attempts: int,
        on: ExceptionTypes | Callable[[Exception], bool],
        backoff: float,
        max_backoff: float,
        jitter: bool,
        deadline: float | None,
        retry_open: bool,
    ) -> None:
        self.name, self.attempts, self.on, self.backoff = name, attempts, on, backoff
        self.max_backoff, self.jitter, self.deadline, self.retry_open = (
            max_backoff,
            jitter,
            deadline,
            retry_open,
        )

    def retryable(self, exc: Exception) -> bool:
        if isinstance(exc, CircuitOpenError) and not self.retry_open:
            return False
        on = self.on
        if isinstance(on, type | tuple):
            return isinstance(exc, on)
        return bool(on(exc))

    def next_wait(self, attempt: int, exc: Exception, started: float) -> tuple[float | None, str]:
        """Wait before attempt ``attempt + 1``, or (None, reason) when retrying must stop."""
        if not self.retryable(exc):
            return None, "not_retryable"
        if attempt >= self.attempts:
            return None, "attempts"
        wait = min(self.max_backoff, self.backoff * 2 ** min(attempt - 1, 62))  # capped exponent: no overflow
        if self.jitter:
            wait = random.uniform(wait / 2, wait)
        hint = retry_after_hint(exc)
        if hint is not None:
            wait = max(wait, hint)  # the server's hint beats our own backoff, even past max_backoff
        if self.deadline is not None and _clock() - started + wait >= self.deadline:
            return None, "deadline"
        return wait, ""

    def finish(self, attempt: int, exc: Exception | None, reason: str | None = None) -> None:
        if exc is None:
            outcome = "success_with_retry" if attempt > 1 else "success_without_retry"
            _events.emit(RetryFinished(self.name, outcome, attempt))
        else:
            outcome = "failed_with_retry" if attempt > 1 else "failed_without_retry"
            _events.emit(RetryFinished(self.name, outcome, attempt, type(exc).__name__, reason))


def retry(
    *,
    attempts: int = 3,
    on: ExceptionTypes | Callable[[Exception], bool] = Exception,
    backoff: float = 0.1,
    max_backoff: float = 5.0,
    jitter: bool = True,
    deadline: float | None = None,
    retry_circuit_open: bool = False,
    name: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry ``def``/``async def`` calls that raise ``on`` (types or a predicate), up to ``attempts`` tries.

    Waits ``backoff * 2**(n-1)`` capped at ``max_backoff`` (with jitter, a uniform draw from its upper
    half), at least any ``Retry-After`` hint the exception carries, and never sleeps past ``deadline``
    seconds since the first attempt began (it gives up instead). ``BaseException``s are never retried.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    if backoff < 0 or max_backoff < 0:
        raise ValueError("backoff and max_backoff must be >= 0")
    if deadline is not None and deadline <= 0:
        raise ValueError("deadline must be > 0")
    _telemetry.install()

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        policy = _Policy(
            name or f"{fn.__module__}.{fn.__qualname__}",
            attempts,
            on,
            backoff,
            max_backoff,
            jitter,
            deadline,
            retry_circuit_open,
        )
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], _wrap_async(cast(Callable[P, Awaitable[Any]], fn), policy))

        @functools.wraps(fn)
        def retried(*args: P.args, **kwargs: P.kwargs) -> R:
            started = _clock()
            attempt = 1
            while True:
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    wait, reason = policy.next_wait(attempt, exc, started)
                    if wait is None:
                        policy.finish(attempt, exc, reason)
                        raise
                    attempt += 1
                    _events.emit(RetryAttempted(policy.name, attempt, wait, type(exc).__name__))
                    _sleep(wait)
                    continue
                policy.finish(attempt, None)
                return result

        return retried

    return decorate


def _wrap_async(fn: Callable[P, Awaitable[Any]], policy: _Policy) -> Callable[P, Awaitable[Any]]:
    @functools.wraps(fn)
    async def retried(*args: P.args, **kwargs: P.kwargs) -> Any:
        started = _clock()
        attempt = 1
        while True:
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                wait, reason = policy.next_wait(attempt, exc, started)
                if wait is None:
                    policy.finish(attempt, exc, reason)
                    raise
                attempt += 1
                _events.emit(RetryAttempted(policy.name, attempt, wait, type(exc).__name__))
                await _async_sleep(wait)
                continue
            policy.finish(attempt, None)
            return result

    return retried
