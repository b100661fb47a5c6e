"""``timeout``: bound how long a call may take.

``async def`` calls are cancelled at the limit (the task sees ``CancelledError`` at its current await), then
``CallTimeoutError`` is raised. A ``def`` call cannot be interrupted safely in Python, so it runs in a
daemon thread and the caller stops waiting at the limit: best effort, the work itself carries on in the
background and its result is discarded. Either way the caller gets control back on time.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from .._errors import CallTimeoutError
from . import _events
from . import _observe as _telemetry
from ._events import TimeoutFinished

__all__ = ["timeout"]

P = ParamSpec("P")
R = TypeVar("R")


def timeout(seconds: float, *, name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Raise :class:`~obskit.CallTimeoutError` (a ``TimeoutError``) when a call runs past ``seconds``."""
    if seconds <= 0:
        raise ValueError("timeout must be > 0 seconds")
    _telemetry.install()

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        label = name or f"{fn.__module__}.{fn.__qualname__}"

        def finished(outcome: str) -> None:
            _events.emit(TimeoutFinished(label, outcome, seconds))

        if inspect.iscoroutinefunction(fn):
            return cast(
                Callable[P, R], _wrap_async(cast(Callable[P, Awaitable[Any]], fn), seconds, label, finished)
            )

        @functools.wraps(fn)
        def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            box: list[Any] = []
            context = contextvars.copy_context()  # the worker sees the caller's span and context

            def run() -> None:
                try:
                    box.append((True, context.run(fn, *args, **kwargs)))
                except BaseException as exc:
                    box.append((False, exc))

            worker = threading.Thread(target=run, name=f"obskit-timeout-{label}", daemon=True)
            worker.start()
            worker.join(seconds)
            if not box:
                finished("timeout")
                raise CallTimeoutError(label, timeout=seconds)
            ok, value = box[0]
            if ok:
                finished("success")
                return cast(R, value)
            finished("failure" if isinstance(value, Exception) else "cancelled")
            raise value

        return limited

    return decorate


def _wrap_async(
    fn: Callable[P, Awaitable[Any]], seconds: float, label: str, finished: Callable[[str], None]
) -> Callable[P, Awaitable[Any]]:
    @functools.wraps(fn)
    async def limited(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            result = await _within(fn(*args, **kwargs), seconds)
        except _Expired:
            finished("timeout")
            raise CallTimeoutError(label, timeout=seconds) from None
        except Exception:
            finished("failure")
            raise
        except BaseException:
            finished("cancelled")
            raise
        finished("success")
        return result

    return limited


class _Expired(Exception):
    """Our own limit fired (as opposed to a TimeoutError raised by the call itself)."""


if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[Any], seconds: float) -> Any:
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise _Expired from None
            raise

else:  # pragma: no cover - exercised on 3.10 only

    async def _within(awaitable: Awaitable[Any], seconds: float) -> Any:
        try:
            return await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise _Expired from None
