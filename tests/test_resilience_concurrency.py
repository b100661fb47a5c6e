"""Concurrency: half-open admits exactly its probes under a stampede; the lock never wraps the call."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

import obskit
from obskit._resilience import CircuitBreaker, CircuitState


class Clock:
    """Manual clock, safe to read from any thread."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def half_open(clock: Clock, probes: int) -> CircuitBreaker:
    """A breaker tripped and then waited out, so the next calls are probes."""
    b = CircuitBreaker(
        f"c-{uuid.uuid4().hex[:10]}",
        clock=clock,
        minimum_calls=1,
        wait_in_open=5.0,
        half_open_calls=probes,
        half_open_max_duration=1000.0,
    )
    with pytest.raises(ConnectionError), b:
        raise ConnectionError
    clock.now += 5.0
    assert b.state is CircuitState.HALF_OPEN
    return b


def test_500_threads_get_exactly_the_probe_permits() -> None:
    """500 threads released together at a half-open breaker: exactly half_open_calls run."""
    clock, n, probes = Clock(), 500, 7
    b = half_open(clock, probes)
    gate, release = threading.Barrier(n), threading.Event()
    lock = threading.Lock()
    counts = {"admitted": 0, "rejected": 0}

    @b
    def probe() -> None:
        with lock:
            counts["admitted"] += 1
        release.wait(30)

    def worker() -> None:
        gate.wait()
        try:
            probe()
        except obskit.CircuitOpenError:
            with lock:
                counts["rejected"] += 1

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while counts["admitted"] + counts["rejected"] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join()
    assert counts == {"admitted": probes, "rejected": n - probes}
    assert b.state is CircuitState.CLOSED


async def test_5000_tasks_get_exactly_the_probe_permits() -> None:
    """5,000 tasks released together at a half-open breaker: exactly half_open_calls run."""
    clock, n, probes = Clock(), 5000, 5
    b = half_open(clock, probes)
    start, release = asyncio.Event(), asyncio.Event()
    admitted = 0

    @b
    async def probe() -> None:
        nonlocal admitted
        admitted += 1
        await release.wait()

    async def worker() -> bool:
        await start.wait()
        try:
            await probe()
        except obskit.CircuitOpenError:
            return False
        return True

    tasks = [asyncio.create_task(worker()) for _ in range(n)]
    await asyncio.sleep(0)
    start.set()
    while sum(t.done() for t in tasks) < n - probes:
        await asyncio.sleep(0.01)
    assert admitted == probes
    release.set()
    results = await asyncio.gather(*tasks)
    assert sum(results) == probes
    assert b.state is CircuitState.CLOSED


async def test_cancelled_probes_hand_their_permits_back() -> None:
    """Cancelling every probe under a stampede frees exactly that many permits for the next wave."""
    clock, probes = Clock(), 3
    b = half_open(clock, probes)
    hold = asyncio.Event()

    @b
    async def probe() -> str:
        await hold.wait()
        return "ok"

    async def wave() -> list[asyncio.Task[str]]:
        tasks = [asyncio.create_task(probe()) for _ in range(200)]
        await asyncio.sleep(0.01)
        running = [t for t in tasks if not t.done()]
        await asyncio.gather(*(t for t in tasks if t.done()), return_exceptions=True)
        assert len(running) == probes
        return running

    for t in await wave():
        t.cancel()
    await asyncio.sleep(0)
    assert b.state is CircuitState.HALF_OPEN
    running = await wave()
    hold.set()
    assert await asyncio.gather(*running) == ["ok"] * probes
    assert b.state is CircuitState.CLOSED


def test_hung_probes_do_not_stick_the_breaker_half_open() -> None:
    """Probes that never return: after half_open_max_duration the breaker reopens, then probes again."""
    clock = Clock()
    b = CircuitBreaker(
        f"c-{uuid.uuid4().hex[:10]}",
        clock=clock,
        minimum_calls=1,
        wait_in_open=5.0,
        half_open_calls=2,
        half_open_max_duration=10.0,
    )
    with pytest.raises(ConnectionError), b:
        raise ConnectionError
    clock.now += 5.0
    hung = [b._core.acquire() for _ in range(2)]
    with pytest.raises(obskit.CircuitOpenError):
        b._core.acquire()
    clock.now += 10.0
    assert b.state is CircuitState.OPEN
    clock.now += 5.0
    assert b.state is CircuitState.HALF_OPEN
    assert len(hung) == 2


def test_lock_never_wraps_the_call() -> None:
    """50 threads sleeping 0.2 s each through one breaker take about as long as one call, not 50."""
    b = CircuitBreaker(f"c-{uuid.uuid4().hex[:10]}")
    pause = 0.2

    @b
    def slow() -> None:
        time.sleep(pause)

    t0 = time.perf_counter()
    slow()
    single = time.perf_counter() - t0
    threads = [threading.Thread(target=slow) for _ in range(50)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together = time.perf_counter() - t0
    assert together / single < 5  # serialised it would be ~50


async def test_async_calls_run_concurrently() -> None:
    """50 tasks sleeping through one breaker overlap, as with no breaker at all."""
    b = CircuitBreaker(f"c-{uuid.uuid4().hex[:10]}")

    @b
    async def slow() -> None:
        await asyncio.sleep(0.2)

    t0 = time.perf_counter()
    await slow()
    single = time.perf_counter() - t0
    t0 = time.perf_counter()
    await asyncio.gather(*(slow() for _ in range(50)))
    assert (time.perf_counter() - t0) / single < 5
