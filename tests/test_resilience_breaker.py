"""Circuit breaker semantics, driven by an injectable clock: transitions, options, fallback, guards."""

from __future__ import annotations

import asyncio
import inspect
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import obskit
from obskit._resilience import CircuitBreaker, CircuitState, circuit_breaker
from obskit._resilience._events import CallRejected, Event, FallbackInvoked, StateChanged
from obskit._resilience._state import FAILURE, SUCCESS


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


@pytest.fixture
def name() -> str:
    """A breaker name no other test uses (breakers are process-wide by name)."""
    return f"t-{uuid.uuid4().hex[:10]}"


def transitions(events: list[Event], name: str) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in events if isinstance(e, StateChanged) and e.name == name]


def make(name: str, clock: FakeClock, **options: Any) -> CircuitBreaker:
    defaults: dict[str, Any] = {"minimum_calls": 4, "window": 10, "wait_in_open": 10.0, "half_open_calls": 2}
    return CircuitBreaker(name, clock=clock, **{**defaults, **options})


def call(breaker: CircuitBreaker, fail: bool = False, exc: BaseException | None = None) -> Any:
    """One call through ``breaker``; failures swallowed, rejections returned as the error."""

    @breaker
    def work() -> str:
        if exc is not None:
            raise exc
        if fail:
            raise ConnectionError("down")
        return "ok"

    try:
        return work()
    except obskit.CircuitOpenError as err:
        return err
    except ConnectionError:
        return "failed"


def test_opens_when_failure_rate_reaches_threshold(name: str, clock: FakeClock, events: list[Event]) -> None:
    """Two failures in four calls is 50%: the breaker opens on the fourth call, not before."""
    b = make(name, clock)
    for fail in (False, True, False):
        call(b, fail)
    assert b.state is CircuitState.CLOSED
    call(b, True)
    assert b.state is CircuitState.OPEN
    assert transitions(events, name) == [("closed", "open")]
    opened = next(e for e in events if isinstance(e, StateChanged))
    assert opened.failure_rate == 0.5 and opened.window_size == 4 and opened.reason == "failure_rate"


def test_never_opens_below_minimum_calls(name: str, clock: FakeClock) -> None:
    """Three failures out of three stay below minimum_calls=4."""
    b = make(name, clock)
    for _ in range(3):
        call(b, True)
    assert b.state is CircuitState.CLOSED


def test_rejection_carries_name_and_retry_time(name: str, clock: FakeClock, events: list[Event]) -> None:
    """An open breaker raises CircuitOpenError saying which breaker and when to come back."""
    b = make(name, clock)
    for _ in range(4):
        call(b, True)
    clock.advance(4.0)
    err = call(b)
    assert isinstance(err, obskit.CircuitOpenError)
    assert (
        err.name == name and err.retry_after == pytest.approx(6.0) and err.retry_at == pytest.approx(1010.0)
    )
    assert any(isinstance(e, CallRejected) and e.name == name for e in events)


def test_half_open_probes_close_the_breaker(name: str, clock: FakeClock, events: list[Event]) -> None:
    """After wait_in_open the breaker admits half_open_calls probes; their success closes it."""
    b = make(name, clock)
    for _ in range(4):
        call(b, True)
    clock.advance(10.0)
    assert b.state is CircuitState.HALF_OPEN
    assert call(b) == "ok"
    assert b.state is CircuitState.HALF_OPEN
    assert call(b) == "ok"
    assert b.state is CircuitState.CLOSED
    assert transitions(events, name) == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_probes_reopen_with_growing_wait(name: str, clock: FakeClock, events: list[Event]) -> None:
    """Repeated trips multiply the open wait, capped by max_wait_in_open; closing resets the growth."""
    b = make(name, clock, wait_multiplier=2.0, max_wait_in_open=25.0)
    for _ in range(4):
        call(b, True)
    waits = []
    for _ in range(3):
        wait = [e for e in events if isinstance(e, StateChanged) and e.to_state == "open"][-1].wait
        waits.append(wait)
        assert wait is not None
        clock.advance(wait)
        call(b, True)
        call(b, True)
    assert waits == [10.0, 20.0, 25.0]


def test_fallback_on_rejection_and_recorded_failure(name: str, clock: FakeClock, events: list[Event]) -> None:
    """The fallback gets the call's arguments then the exception, for failures and for rejections."""
    seen: list[tuple[Any, ...]] = []

    def fallback(order: int, exc: Exception, *, note: str = "") -> str:
        seen.append((order, type(exc).__name__, note))
        return "queued"

    b = make(name, clock, fallback=fallback)

    @b
    def pay(order: int, *, note: str = "") -> str:
        raise ConnectionError("down")

    assert [pay(i, note="n") for i in range(5)] == ["queued"] * 5
    assert seen[:4] == [(i, "ConnectionError", "n") for i in range(4)]
    assert seen[4] == (4, "CircuitOpenError", "n")
    reasons = [e.reason for e in events if isinstance(e, FallbackInvoked)]
    assert reasons == ["failure"] * 4 + ["rejected"]


def test_ignored_exceptions_count_for_nothing_and_skip_fallback(name: str, clock: FakeClock) -> None:
    """An ignored exception propagates, runs no fallback and never moves the breaker."""
    b = make(name, clock, ignore=(KeyError,), fallback=lambda exc: "fallback")
    for _ in range(10):
        with pytest.raises(KeyError):
            call(b, exc=KeyError("k"))
    assert b.state is CircuitState.CLOSED
    assert b._core.snapshot()[3] == 0


def test_unrecorded_exceptions_count_as_success(name: str, clock: FakeClock) -> None:
    """With record=(ConnectionError,), a ValueError propagates but counts as a success (resilience4j)."""
    b = make(name, clock, record=(ConnectionError,))
    for _ in range(4):
        with pytest.raises(ValueError):
            call(b, exc=ValueError("bad input"))
    assert b.state is CircuitState.CLOSED
    assert b._core.snapshot()[1] == 0.0


def test_record_predicate(name: str, clock: FakeClock) -> None:
    """record may be a predicate on the exception."""
    b = make(name, clock, record=lambda exc: "fatal" in str(exc))
    for _ in range(4):
        with pytest.raises(RuntimeError):
            call(b, exc=RuntimeError("fatal"))
    assert b.state is CircuitState.OPEN


def test_record_result_marks_failures(name: str, clock: FakeClock) -> None:
    """A returned value can count as a failure (an HTTP 5xx); the value is still returned."""
    b = make(name, clock, record_result=lambda status: status >= 500)

    @b
    def fetch() -> int:
        return 503

    assert [fetch() for _ in range(4)] == [503] * 4
    assert b.state is CircuitState.OPEN


def test_slow_calls_open_the_breaker(name: str, clock: FakeClock) -> None:
    """Calls at or above slow_call_duration count as slow; the slow rate can trip the breaker alone."""
    b = make(name, clock, slow_call_duration=1.0, slow_call_rate_threshold=0.5)

    @b
    def slow() -> None:
        clock.advance(2.0)

    for _ in range(4):
        slow()
    assert b.state is CircuitState.OPEN
    assert b._core.snapshot()[2] == 1.0


def test_time_window_forgets_old_calls(name: str, clock: FakeClock) -> None:
    """A time-based window only counts the calls of the last ``window`` seconds."""
    b = make(name, clock, window=5, window_type="time")
    for _ in range(3):
        call(b, True)
    clock.advance(6.0)
    call(b, True)
    assert b.state is CircuitState.CLOSED
    assert b._core.snapshot()[3] == 1


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), asyncio.CancelledError(), SystemExit(1)])
def test_base_exceptions_are_never_failures(name: str, clock: FakeClock, exc: BaseException) -> None:
    """BaseExceptions propagate and are counted as cancelled, never as failures."""
    b = make(name, clock)
    for _ in range(6):
        with pytest.raises(type(exc)):
            call(b, exc=exc)
    assert b.state is CircuitState.CLOSED
    assert b._core.snapshot()[3] == 0


def test_cancelled_probe_gives_its_permit_back(name: str, clock: FakeClock) -> None:
    """A probe that is cancelled frees its slot, so the half-open breaker can still decide."""
    b = make(name, clock, half_open_calls=1)
    for _ in range(4):
        call(b, True)
    clock.advance(10.0)
    with pytest.raises(asyncio.CancelledError):
        call(b, exc=asyncio.CancelledError())
    assert b.state is CircuitState.HALF_OPEN
    assert call(b) == "ok"
    assert b.state is CircuitState.CLOSED


def test_hung_probe_reopens_and_its_late_result_is_stale(name: str, clock: FakeClock) -> None:
    """Past half_open_max_duration the breaker reopens; the hung probe's late success changes nothing."""
    b = make(name, clock, half_open_calls=1, half_open_max_duration=5.0)
    for _ in range(4):
        call(b, True)
    clock.advance(10.0)
    epoch = b._core.acquire()  # the probe that hangs
    assert isinstance(call(b), obskit.CircuitOpenError)  # no second probe while it is out
    clock.advance(5.0)
    assert b.state is CircuitState.OPEN
    b._core.complete(epoch, SUCCESS, 5.0, clock())
    assert b.state is CircuitState.OPEN


def test_stale_completions_are_not_obeyed(name: str, clock: FakeClock) -> None:
    """A call admitted while closed that fails after the breaker opened and reset does not trip it."""
    b = make(name, clock)
    epochs = [b._core.acquire() for _ in range(4)]
    b.force_open()
    b.reset()
    for epoch in epochs:
        b._core.complete(epoch, FAILURE, 0.0, clock())
    assert b.state is CircuitState.CLOSED
    assert b._core.snapshot()[3] == 0


def test_one_name_one_breaker(name: str, clock: FakeClock) -> None:
    """Handles built with the same name share state; conflicting options warn and are not applied."""
    a = make(name, clock)
    with pytest.warns(RuntimeWarning, match="already exists"):
        b = CircuitBreaker(name, minimum_calls=99)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = CircuitBreaker(name)
    a.force_open()
    assert b.state is CircuitState.FORCED_OPEN and c.state is CircuitState.FORCED_OPEN
    assert b.config.minimum_calls == 4


def test_manual_states(name: str, clock: FakeClock, events: list[Event]) -> None:
    """force_open rejects everything, disable admits everything and never trips, reset closes."""
    b = make(name, clock)
    b.force_open()
    err = call(b)
    assert isinstance(err, obskit.CircuitOpenError) and err.retry_after is None
    clock.advance(1000.0)
    assert b.state is CircuitState.FORCED_OPEN
    b.disable()
    assert [call(b, True) for _ in range(20)] == ["failed"] * 20
    assert b.state is CircuitState.DISABLED
    b.reset()
    assert b.state is CircuitState.CLOSED
    assert transitions(events, name) == [
        ("closed", "forced_open"),
        ("forced_open", "disabled"),
        ("disabled", "closed"),
    ]


def test_decorators_keep_signature_and_kind(name: str) -> None:
    """Wrapped functions keep name, docstring, signature, and async-ness."""

    def f(a: int, b: str = "x", *, c: float = 1.0) -> str:
        """Doc."""
        return b

    async def g(a: int) -> int:
        return a

    for wrap in (
        CircuitBreaker(name),
        circuit_breaker(name),
        obskit.retry(attempts=2),
        obskit.timeout(1.0),
        obskit.bulkhead(max_concurrent=2),
    ):
        wf: Callable[..., Any] = wrap(f)
        wg: Callable[..., Any] = wrap(g)
        assert wf.__name__ == "f" and wf.__doc__ == "Doc."
        assert inspect.signature(wf) == inspect.signature(f)
        assert inspect.signature(wg) == inspect.signature(g)
        assert inspect.iscoroutinefunction(wg) and not inspect.iscoroutinefunction(wf)


async def test_async_calls_and_async_fallback(name: str, clock: FakeClock) -> None:
    """async def calls are guarded the same way; an async fallback is awaited."""

    async def fallback(x: int, exc: Exception) -> str:
        await asyncio.sleep(0)
        return f"fallback {x} {type(exc).__name__}"

    @circuit_breaker(name, fallback=fallback, clock=clock, minimum_calls=2, wait_in_open=5.0)
    async def work(x: int) -> str:
        raise ConnectionError

    assert await work(1) == "fallback 1 ConnectionError"
    assert await work(2) == "fallback 2 ConnectionError"
    assert await work(3) == "fallback 3 CircuitOpenError"


async def test_async_cancellation_is_not_a_failure(name: str, clock: FakeClock) -> None:
    """Cancelling tasks inside the breaker never opens it."""
    b = make(name, clock, minimum_calls=2)

    @b
    async def hang() -> None:
        await asyncio.sleep(10)

    for _ in range(5):
        task = asyncio.create_task(hang())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert b.state is CircuitState.CLOSED


def test_with_block(name: str, clock: FakeClock) -> None:
    """``with breaker:`` counts the block's outcome and raises CircuitOpenError when open."""
    b = make(name, clock)
    for _ in range(4):
        with pytest.raises(ConnectionError), b:
            raise ConnectionError
    with pytest.raises(obskit.CircuitOpenError), b:
        pass
    clock.advance(10.0)
    for _ in range(2):
        with b:
            pass
    assert b.state is CircuitState.CLOSED


async def test_async_with_block(name: str, clock: FakeClock) -> None:
    """``async with breaker:`` keeps one permit per task, even when tasks interleave."""
    b = make(name, clock)

    async def guarded(fail: bool) -> None:
        async with b:
            await asyncio.sleep(0)
            if fail:
                raise ConnectionError

    results = await asyncio.gather(*(guarded(i % 2 == 0) for i in range(4)), return_exceptions=True)
    assert sum(isinstance(r, ConnectionError) for r in results) == 2
    assert b.state is CircuitState.OPEN


@pytest.mark.parametrize(
    "options",
    [
        {"failure_rate_threshold": 0},
        {"failure_rate_threshold": 1.5},
        {"minimum_calls": 0},
        {"window_type": "sliding"},
        {"half_open_calls": 0},
        {"wait_multiplier": 0.5},
    ],
)
def test_invalid_options_raise(name: str, options: dict[str, Any]) -> None:
    """Options that cannot work are refused at construction."""
    with pytest.raises(ValueError):
        CircuitBreaker(name, **options)


def test_closing_resets_the_wait_growth(name: str, clock: FakeClock, events: list[Event]) -> None:
    """After the breaker closes again, the next trip waits wait_in_open, not the grown wait."""
    b = make(name, clock, wait_multiplier=3.0, half_open_calls=1)
    for _ in range(4):
        call(b, True)
    clock.advance(10.0)
    call(b, True)  # failed probe: the next wait grows to 30
    clock.advance(30.0)
    call(b)  # successful probe: closed
    for _ in range(4):
        call(b, True)
    waits = [e.wait for e in events if isinstance(e, StateChanged) and e.to_state == "open"]
    assert waits == [10.0, 30.0, 10.0]


def test_broken_result_predicate_still_settles_the_probe(name: str, clock: FakeClock) -> None:
    """A record_result that raises propagates its error and counts a failure: no permit leaks."""

    def broken(result: object) -> bool:
        raise RuntimeError("predicate bug")

    b = make(name, clock, record_result=broken, half_open_calls=1)
    b.force_open()
    b.reset()
    for _ in range(4):
        with pytest.raises(RuntimeError):
            call(b)
    assert b.state is CircuitState.OPEN
    clock.advance(10.0)
    with pytest.raises(RuntimeError):
        call(b)
    assert b.state is CircuitState.OPEN  # the probe was judged (a failure), not lost


def test_reset_while_closed_is_not_a_transition(name: str, clock: FakeClock, events: list[Event]) -> None:
    """reset() on a closed breaker empties its window without a state_changed event."""
    b = make(name, clock)
    for _ in range(3):
        call(b, True)
    b.reset()
    call(b, True)
    assert b.state is CircuitState.CLOSED
    assert b._core.snapshot()[3] == 1
    assert transitions(events, name) == []
