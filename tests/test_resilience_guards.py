"""timeout and bulkhead: limits hold, refusals are typed, outcomes are reported."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import uuid

import pytest
from prometheus_client import REGISTRY

import obskit
from obskit._resilience._events import BulkheadRejected, Event, TimeoutFinished


def outcomes(events: list[Event]) -> list[str]:
    return [e.outcome for e in events if isinstance(e, TimeoutFinished)]


async def test_async_timeout_cancels_the_call(events: list[Event]) -> None:
    """Past the limit the coroutine is cancelled and CallTimeoutError (a TimeoutError) is raised."""
    cancelled = asyncio.Event()

    @obskit.timeout(0.05, name="t-async")
    async def hang() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    t0 = time.perf_counter()
    with pytest.raises(TimeoutError) as info:
        await hang()
    assert (time.perf_counter() - t0) / 5 < 0.5
    assert isinstance(info.value, obskit.CallTimeoutError)
    assert info.value.name == "t-async" and info.value.timeout == 0.05
    assert cancelled.is_set()
    assert outcomes(events) == ["timeout"]


async def test_async_timeout_passes_results_and_own_errors(events: list[Event]) -> None:
    """A fast call returns its value; a TimeoutError the call raises itself is not relabelled."""

    @obskit.timeout(5.0)
    async def fine() -> str:
        return "ok"

    @obskit.timeout(5.0)
    async def own() -> None:
        raise TimeoutError("upstream said so")

    assert await fine() == "ok"
    with pytest.raises(TimeoutError) as info:
        await own()
    assert not isinstance(info.value, obskit.CallTimeoutError)
    assert outcomes(events) == ["success", "failure"]


def test_sync_timeout_returns_control_on_time(events: list[Event]) -> None:
    """A blocking call past its limit: the caller gets CallTimeoutError early (the work runs on)."""

    @obskit.timeout(0.05)
    def block() -> None:
        time.sleep(1.0)

    t0 = time.perf_counter()
    with pytest.raises(obskit.CallTimeoutError):
        block()
    assert (time.perf_counter() - t0) / 1.0 < 0.5
    assert outcomes(events) == ["timeout"]


def test_sync_timeout_keeps_context_results_and_errors(events: list[Event]) -> None:
    """The worker sees the caller's contextvars; results and exceptions come back unchanged."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")

    @obskit.timeout(5.0)
    def read() -> str:
        return var.get()

    @obskit.timeout(5.0)
    def fail() -> None:
        raise KeyError("k")

    assert read() == "caller"
    with pytest.raises(KeyError):
        fail()
    assert outcomes(events) == ["success", "failure"]


def test_timeout_validates() -> None:
    """A non-positive limit is refused."""
    with pytest.raises(ValueError):
        obskit.timeout(0)


def active(name: str) -> float | None:
    return REGISTRY.get_sample_value("obskit_bulkhead_active", {"name": name})


def test_bulkhead_rejects_when_full(events: list[Event]) -> None:
    """With every slot busy and max_wait=0, the next call is refused with BulkheadFullError."""
    name = f"b-{uuid.uuid4().hex[:8]}"
    release, started = threading.Event(), threading.Semaphore(0)

    @obskit.bulkhead(max_concurrent=2, max_wait=0, name=name)
    def work() -> None:
        started.release()
        release.wait(10)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    started.acquire()
    started.acquire()
    assert active(name) == 2
    with pytest.raises(obskit.BulkheadFullError) as info:
        work()
    assert info.value.max_concurrent == 2
    release.set()
    for t in threads:
        t.join()
    assert active(name) == 0
    assert [e.name for e in events if isinstance(e, BulkheadRejected)] == [name]
    assert REGISTRY.get_sample_value("obskit_bulkhead_rejected_total", {"name": name}) == 1


def test_bulkhead_waits_up_to_max_wait() -> None:
    """A slot freed within max_wait admits the waiting call."""
    release = threading.Event()
    started = threading.Event()

    @obskit.bulkhead(max_concurrent=1, max_wait=10.0)
    def work() -> str:
        started.set()
        release.wait(10)
        return "done"

    holder = threading.Thread(target=work)
    holder.start()
    started.wait(10)
    threading.Timer(0.05, release.set).start()
    assert work() == "done"
    holder.join()


async def test_async_bulkhead_limits_concurrency() -> None:
    """Tasks beyond max_concurrent are refused at once with max_wait=0, or queued with max_wait=None."""
    running = peak = 0

    async def body() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    refuse = obskit.bulkhead(max_concurrent=2, max_wait=0)(body)
    results = await asyncio.gather(*(refuse() for _ in range(6)), return_exceptions=True)
    assert sum(isinstance(r, obskit.BulkheadFullError) for r in results) == 4
    queue = obskit.bulkhead(max_concurrent=2, max_wait=None)(body)
    peak = 0
    assert await asyncio.gather(*(queue() for _ in range(10))) == [None] * 10
    assert peak == 2


async def test_async_bulkhead_max_wait_times_out() -> None:
    """A task that waits longer than max_wait is refused, and the slot it never got is not leaked."""
    hold = asyncio.Event()

    @obskit.bulkhead(max_concurrent=1, max_wait=0.02)
    async def work() -> str:
        await hold.wait()
        return "ok"

    first = asyncio.create_task(work())
    await asyncio.sleep(0)
    with pytest.raises(obskit.BulkheadFullError):
        await work()
    hold.set()
    assert await first == "ok"
    assert await work() == "ok"


def test_async_bulkhead_survives_a_new_event_loop() -> None:
    """One decorated coroutine function used from two asyncio.run() loops keeps working in both."""

    @obskit.bulkhead(max_concurrent=1, max_wait=None)
    async def work() -> str:
        await asyncio.sleep(0.001)
        return "ok"

    async def crowd() -> list[str]:
        return await asyncio.gather(*(work() for _ in range(5)))

    assert asyncio.run(crowd()) == ["ok"] * 5
    assert asyncio.run(crowd()) == ["ok"] * 5
