"""``bulkhead``: cap how many calls run at once, so one slow dependency cannot take every worker.

A call waits at most ``max_wait`` seconds for a slot, then raises :class:`~obskit.BulkheadFullError`.
``def`` calls share a thread semaphore; ``async def`` calls an asyncio one per event loop (asyncio
primitives cannot cross loops), so the limit applies per loop. Both feed ``obskit_bulkhead_active``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from .._errors import BulkheadFullError
from . import _events
from . import _observe as _telemetry
from ._events import BulkheadRejected

__all__ = ["bulkhead"]

P = ParamSpec("P")
R = TypeVar("R")


def bulkhead(
    *, max_concurrent: int = 10, max_wait: float | None = 0.0, name: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Let at most ``max_concurrent`` calls run at once, waiting up to ``max_wait`` s (None: forever)."""
    if max_concurrent < 1:
        raise ValueError("max_concurrent must be >= 1")
    if max_wait is not None and max_wait < 0:
        raise ValueError("max_wait must be >= 0 or None")
    _telemetry.install()

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        label = name or f"{fn.__module__}.{fn.__qualname__}"
        active = _telemetry.GaugeChild(
            "obskit_bulkhead_active", "Calls running inside a bulkhead.", name=label
        )
        # Saturation is active / limit; the limit is a series of its own so a dashboard can divide.
        _telemetry.GaugeChild(
            "obskit_bulkhead_limit", "Calls a bulkhead lets run at once (max_concurrent).", name=label
        ).set(max_concurrent)

        def reject() -> BulkheadFullError:
            _events.emit(BulkheadRejected(label, max_concurrent, max_wait))
            return BulkheadFullError(label, max_concurrent=max_concurrent, max_wait=max_wait)

        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)
            # asyncio primitives belong to one loop; a decorated function may outlive its loop (tests,
            # asyncio.run per job), so each loop gets its own slots, forgotten when the loop goes away.
            per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
                weakref.WeakKeyDictionary()
            )

            @functools.wraps(fn)
            async def limited_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                loop = asyncio.get_running_loop()
                slots = per_loop.get(loop)
                if slots is None:
                    slots = per_loop.setdefault(loop, asyncio.Semaphore(max_concurrent))
                if not await _acquire_async(slots, max_wait):
                    raise reject()
                active.inc()
                try:
                    return await afn(*args, **kwargs)
                finally:
                    active.dec()
                    slots.release()

            return cast(Callable[P, R], limited_async)

        sync_slots = threading.BoundedSemaphore(max_concurrent)

        @functools.wraps(fn)
        def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            if max_wait is None:
                admitted = sync_slots.acquire()
            elif max_wait == 0:
                admitted = sync_slots.acquire(blocking=False)
            else:
                admitted = sync_slots.acquire(timeout=max_wait)
            if not admitted:
                raise reject()
            active.inc()
            try:
                return fn(*args, **kwargs)
            finally:
                active.dec()
                sync_slots.release()

        return limited

    return decorate


async def _acquire_async(slots: asyncio.Semaphore, max_wait: float | None) -> bool:
    """Take a slot within ``max_wait`` seconds; False if none came free."""
    if not slots.locked():
        await slots.acquire()  # free slot: returns without suspending
        return True
    if max_wait == 0:
        return False
    if max_wait is None:
        await slots.acquire()
        return True
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(max_wait):  # no lost-wakeup race, unlike wait_for before 3.12
                await slots.acquire()
        else:  # pragma: no cover - 3.10 only
            await asyncio.wait_for(slots.acquire(), max_wait)
    except (asyncio.TimeoutError, TimeoutError):
        return False
    return True
