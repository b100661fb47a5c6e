"""Concurrency: half-open admits exactly its probes under a real race; the lock never wraps the call."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

import obskit
from obskit._resilience import CircuitBreaker, CircuitState


class Clock:
    """Manual clock, safe to read from any thread."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def half_open(clock: Clock, probes: int, read_state: bool = True) -> CircuitBreaker:
    """A breaker tripped and then waited out, so the next calls are probes (``read_state=False``: the move
    to half-open is left to the first caller, so callers race it too)."""
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
    if read_state:
        assert b.state is CircuitState.HALF_OPEN
    return b


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """A thread switch every microsecond (the default is 5 ms), so an unguarded check-then-update in the
    breaker is really interleaved: with the default interval, threads would mostly run one at a time."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _stampede(b: CircuitBreaker, threads: int, tries: int) -> int:
    """Release ``threads`` threads together at ``b``, each trying up to ``tries`` times until admitted;
    admitted probes hold on until everyone has settled. Returns how many were admitted."""
    gate, release = threading.Barrier(threads), threading.Event()
    admitted: list[int] = []

    @b
    def probe() -> None:
        admitted.append(1)
        release.wait(30)

    def worker() -> None:
        gate.wait()
        for _ in range(tries):
            with contextlib.suppress(obskit.CircuitOpenError):
                probe()
                return

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    deadline = time.monotonic() + 60
    while sum(t.is_alive() for t in pool) > len(admitted) and time.monotonic() < deadline:
        time.sleep(0.001)  # settled: every thread still alive is an admitted probe waiting for release
    count = len(admitted)
    release.set()
    for t in pool:
        t.join()
    return count


def test_racing_threads_get_exactly_the_probe_permits(fast_switching: None) -> None:
    """40 rounds of 32 threads racing the open -> half-open move and the permits: exactly K each round."""
    rounds, probes = 40, 3
    seen = []
    for _ in range(rounds):
        clock = Clock()
        b = half_open(clock, probes, read_state=False)  # the wait is over but nobody has looked yet
        admitted = _stampede(b, threads=32, tries=10)
        seen.append((admitted, b.state.value))  # the probes all succeeded, so the breaker closed
    assert seen == [(probes, "closed")] * rounds


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


def test_a_probe_ending_restarts_the_hang_clock() -> None:
    """A hung probe reopens the breaker only after half_open_max_duration with no probe ending meanwhile."""
    clock = Clock()
    b = CircuitBreaker(
        f"c-{uuid.uuid4().hex[:10]}",
        clock=clock,
        minimum_calls=1,
        wait_in_open=5.0,
        half_open_calls=3,
        half_open_max_duration=10.0,
    )
    with pytest.raises(ConnectionError), b:
        raise ConnectionError
    clock.now += 5.0
    b._core.acquire()  # a probe goes out and never ends
    clock.now += 8.0
    with b:  # a second probe ends: progress, 8 s after the first went out
        pass
    clock.now += 8.0  # 16 s since the hung probe went out, 8 s since a probe last ended
    assert b.state is CircuitState.HALF_OPEN
    clock.now += 2.0  # 10 s of silence
    assert b.state is CircuitState.OPEN


def test_a_quiet_half_open_breaker_waits_for_its_probes() -> None:
    """With no probe out, half-open waits for calls however long it takes, instead of reopening."""
    clock = Clock()
    b = half_open(clock, probes=2)  # half_open_max_duration is 1000 s there
    clock.now += 10 * 1000.0
    assert b.state is CircuitState.HALF_OPEN


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
