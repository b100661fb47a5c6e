"""``CircuitBreaker``: the user-facing handle (decorator, context manager, fallback) over a named core.

The handle runs the protected call itself, outside any lock, and reports how it ended to the shared
:class:`~._state.BreakerCore`. Fallbacks belong to the handle, state to the name: two handles built with the
same name share one breaker but may answer rejections differently.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
import warnings
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from .._errors import CircuitOpenError
from .._runtime._safe import report_internal_error
from . import _events, _registry
from . import _observe as _telemetry
from ._events import FallbackInvoked
from ._state import (
    CANCELLED,
    CLOSED,
    FAILURE,
    IGNORED,
    SUCCESS,
    BreakerConfig,
    BreakerCore,
    CircuitState,
    Outcome,
    WindowType,
)

__all__ = ["CircuitBreaker", "circuit_breaker"]

P = ParamSpec("P")
R = TypeVar("R")

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]
Fallback = Callable[..., Any]


def _classifier(
    record: ExceptionTypes | Callable[[Exception], bool] | None, ignore: ExceptionTypes | None
) -> Callable[[Exception], Outcome]:
    """Turn ``record``/``ignore`` into one function; ``ignore`` wins, unrecorded exceptions are successes.

    Same precedence as resilience4j: an exception that is neither recorded nor ignored counts as a success
    for the breaker (it still propagates to the caller).
    """
    if record is None or record is Exception:
        is_failure: Callable[[Exception], bool] = lambda exc: True  # noqa: E731
    elif isinstance(record, type | tuple):
        types = record
        is_failure = lambda exc: isinstance(exc, types)  # noqa: E731
    else:
        is_failure = record
    ignored = ignore

    def classify(exc: Exception) -> Outcome:
        if ignored is not None and isinstance(exc, ignored):
            return IGNORED
        return FAILURE if is_failure(exc) else SUCCESS

    return classify


class CircuitBreaker:
    """A named circuit breaker with resilience4j semantics; use it as a decorator or a ``with`` block.

    Options apply when the name is first seen; a later handle with different options gets the existing
    breaker and a ``RuntimeWarning``. See docs/resilience.md for each option.
    """

    def __init__(
        self,
        name: str,
        *,
        fallback: Fallback | None = None,
        failure_rate_threshold: float | None = None,
        minimum_calls: int | None = None,
        window: int | None = None,
        window_type: WindowType | None = None,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float | None = None,
        wait_in_open: float | None = None,
        wait_multiplier: float | None = None,
        max_wait_in_open: float | None = None,
        half_open_calls: int | None = None,
        half_open_max_duration: float | None = None,
        record: ExceptionTypes | Callable[[Exception], bool] | None = None,
        ignore: ExceptionTypes | None = None,
        record_result: Callable[[Any], bool] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        given: dict[str, Any] = {
            k: v
            for k, v in (
                ("failure_rate_threshold", failure_rate_threshold),
                ("minimum_calls", minimum_calls),
                ("window", window),
                ("window_type", window_type),
                ("slow_call_duration", slow_call_duration),
                ("slow_call_rate_threshold", slow_call_rate_threshold),
                ("wait_in_open", wait_in_open),
                ("wait_multiplier", wait_multiplier),
                ("max_wait_in_open", max_wait_in_open),
                ("half_open_calls", half_open_calls),
                ("half_open_max_duration", half_open_max_duration),
            )
            if v is not None
        }
        config = BreakerConfig(**given)  # validates even when the name already exists
        _telemetry.install()

        def make() -> BreakerCore:
            return BreakerCore(
                name,
                config,
                clock or time.monotonic,
                _telemetry.BreakerCallMetrics(name),
                classify=_classifier(record, ignore),
                record_result=record_result,
            )

        core, created = _registry.get_or_create(name, make)
        extra = (record, ignore, record_result, clock)
        if not created and ((core.config != config and given) or any(x is not None for x in extra)):
            warnings.warn(
                f"circuit breaker {name!r} already exists; options of the first definition apply",
                RuntimeWarning,
                stacklevel=2,
            )
        self._core = core
        self._fallback = fallback
        self._permits: contextvars.ContextVar[tuple[tuple[int, float], ...]] = contextvars.ContextVar(
            f"obskit_breaker_{name}", default=()
        )

    # -- introspection and control ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The breaker's name (its identity: handles with one name share one breaker)."""
        return self._core.name

    @property
    def state(self) -> CircuitState:
        """The current :class:`CircuitState`."""
        return self._core.state

    @property
    def config(self) -> BreakerConfig:
        """The options in force (those of the name's first definition)."""
        return self._core.config

    def reset(self) -> None:
        """Close the breaker, forgetting the window and the trip history."""
        self._core.reset()

    def force_open(self) -> None:
        """Reject every call (with the fallback, if any) until :meth:`reset`."""
        self._core.force_open()

    def disable(self) -> None:
        """Let every call through and never trip, until :meth:`reset`; calls are still counted."""
        self._core.disable()

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state.value}>"

    # -- decorator ---------------------------------------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Guard ``fn`` (``def`` or ``async def``), keeping its name, docstring and signature."""
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], self._wrap_async(cast(Callable[P, Awaitable[Any]], fn)))
        core = self._core
        acquire, complete, clock = core.acquire, core.complete, core.clock

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            epoch, state = core._snap  # closed: admitted without a call or a lock
            try:
                if state is not CLOSED:
                    epoch = acquire()
            except CircuitOpenError as exc:
                if self._fallback is None:
                    raise
                return cast(R, self._call_fallback(args, kwargs, exc, "rejected"))
            start = clock()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                if self._judge_exception(epoch, exc, start) is FAILURE and self._fallback is not None:
                    return cast(R, self._call_fallback(args, kwargs, exc, "failure"))
                raise
            except BaseException:
                end = clock()
                complete(epoch, CANCELLED, end - start, end)
                raise
            end = clock()
            if core.record_result is None:
                complete(epoch, SUCCESS, end - start, end)
            else:
                self._judge_result(epoch, result, start, end)
            return result

        return guarded

    def _wrap_async(self, fn: Callable[P, Awaitable[Any]]) -> Callable[P, Awaitable[Any]]:
        core = self._core
        acquire, complete, clock = core.acquire, core.complete, core.clock

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            epoch, state = core._snap
            try:
                if state is not CLOSED:
                    epoch = acquire()
            except CircuitOpenError as exc:
                if self._fallback is None:
                    raise
                return await _resolve(self._call_fallback(args, kwargs, exc, "rejected"))
            start = clock()
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                if self._judge_exception(epoch, exc, start) is FAILURE and self._fallback is not None:
                    return await _resolve(self._call_fallback(args, kwargs, exc, "failure"))
                raise
            except BaseException:
                end = clock()
                complete(epoch, CANCELLED, end - start, end)
                raise
            end = clock()
            if core.record_result is None:
                complete(epoch, SUCCESS, end - start, end)
            else:
                self._judge_result(epoch, result, start, end)
            return result

        return guarded

    def _judge_exception(self, epoch: int, exc: Exception, start: float) -> Outcome:
        """Classify ``exc`` (``record``/``ignore``) and book it; the permit is settled even on error."""
        core = self._core
        end = core.clock()
        try:
            outcome = core.classify(exc)
        except Exception:
            core.complete(epoch, FAILURE, end - start, end)
            raise
        core.complete(epoch, outcome, end - start, end)
        return outcome

    def _judge_result(self, epoch: int, result: Any, start: float, end: float) -> None:
        """Book a returned value, as a failure when ``record_result`` says so."""
        core = self._core
        assert core.record_result is not None
        try:
            failed = core.record_result(result)
        except Exception:
            core.complete(epoch, FAILURE, end - start, end)
            raise
        core.complete(epoch, FAILURE if failed else SUCCESS, end - start, end)

    def _call_fallback(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception, reason: str
    ) -> Any:
        """Run the fallback with the call's arguments, then the exception that made it necessary."""
        _events.emit(FallbackInvoked(self.name, reason, type(exc).__name__))
        assert self._fallback is not None
        return self._fallback(*args, exc, **kwargs)

    # -- context manager ---------------------------------------------------------------------------------

    def __enter__(self) -> CircuitBreaker:
        """Admit the block or raise :class:`CircuitOpenError` (a ``with`` block cannot fall back)."""
        epoch = self._core.acquire()
        self._permits.set((*self._permits.get(), (epoch, self._core.clock())))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack = self._permits.get()
        if not stack:
            # Exited in another context than it was entered (an async generator closed from another task):
            # the permit is not ours to find. Never mask the block's own outcome; a half-open permit lost
            # this way counts as a silent probe and reopens after half_open_max_duration.
            report_internal_error(f"circuit breaker {self.name!r}: block exited in another context",
                                  RuntimeError("no permit in this context"))
            return
        (epoch, start), rest = stack[-1], stack[:-1]
        self._permits.set(rest)
        if isinstance(exc, Exception):
            self._judge_exception(epoch, exc, start)
            return
        end = self._core.clock()
        self._core.complete(epoch, SUCCESS if exc is None else CANCELLED, end - start, end)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


async def _resolve(value: Any) -> Any:
    """Await ``value`` if the fallback was async (or returned an awaitable)."""
    if inspect.isawaitable(value):
        return await value
    return value


def circuit_breaker(name: str, *, fallback: Fallback | None = None, **options: Any) -> CircuitBreaker:
    """Decorator form of :class:`CircuitBreaker`: ``@obskit.circuit_breaker("payments", fallback=f)``."""
    return CircuitBreaker(name, fallback=fallback, **options)
