"""retry: per-call state, backoff, deadline, Retry-After, what is never retried, composition."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

import obskit
from obskit._resilience import CircuitBreaker
from obskit._resilience import _retry as retry_module
from obskit._resilience._events import Event, RetryAttempted, RetryFinished


class FakeTime:
    """Replaces the retry module's clock and sleeps; sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """Retry waits become instant and recorded."""
    ft = FakeTime()
    monkeypatch.setattr(retry_module, "_clock", ft.clock)
    monkeypatch.setattr(retry_module, "_sleep", ft.sleep)
    monkeypatch.setattr(retry_module, "_async_sleep", ft.async_sleep)
    return ft


def flaky(failures: int, exc: type[Exception] = ConnectionError) -> Any:
    """A callable failing ``failures`` times, then returning the attempt count."""
    count = {"n": 0}

    def fn() -> int:
        count["n"] += 1
        if count["n"] <= failures:
            raise exc("flaky")
        return count["n"]

    return fn


def finished(events: list[Event]) -> list[RetryFinished]:
    return [e for e in events if isinstance(e, RetryFinished)]


def test_retries_then_succeeds(fake_time: FakeTime, events: list[Event]) -> None:
    """Two failures then success: three attempts, two retry events, success_with_retry."""
    fn = obskit.retry(attempts=4, on=ConnectionError, jitter=False, name="r1")(flaky(2))
    assert fn() == 3
    attempts = [e for e in events if isinstance(e, RetryAttempted)]
    assert [(e.attempt, e.wait, e.error_type) for e in attempts] == [
        (2, 0.1, "ConnectionError"),
        (3, 0.2, "ConnectionError"),
    ]
    assert [(e.outcome, e.attempts) for e in finished(events)] == [("success_with_retry", 3)]


def test_exhausts_and_raises_last_error(fake_time: FakeTime, events: list[Event]) -> None:
    """After ``attempts`` tries the last error propagates; backoff doubles up to max_backoff."""
    fn = obskit.retry(attempts=5, backoff=1.0, max_backoff=3.0, jitter=False)(flaky(10))
    with pytest.raises(ConnectionError):
        fn()
    assert fake_time.sleeps == [1.0, 2.0, 3.0, 3.0]
    (done,) = finished(events)
    assert (done.outcome, done.attempts, done.reason) == ("failed_with_retry", 5, "attempts")


def test_outcomes_without_retry(fake_time: FakeTime, events: list[Event]) -> None:
    """First-try success and non-retryable errors are the two *_without_retry outcomes."""
    obskit.retry(on=ConnectionError)(flaky(0))()
    with pytest.raises(ValueError):
        obskit.retry(on=ConnectionError)(flaky(1, ValueError))()
    assert [(e.outcome, e.reason) for e in finished(events)] == [
        ("success_without_retry", None),
        ("failed_without_retry", "not_retryable"),
    ]
    assert fake_time.sleeps == []


def test_predicate_and_jitter(fake_time: FakeTime) -> None:
    """``on`` may be a predicate; jittered waits stay within the upper half of the backoff."""
    fn = obskit.retry(attempts=6, on=lambda e: "flaky" in str(e), backoff=1.0, max_backoff=100.0)(flaky(5))
    assert fn() == 6
    for n, wait in enumerate(fake_time.sleeps):
        assert 2**n / 2 <= wait <= 2**n


def test_circuit_open_error_is_not_retried_by_default(fake_time: FakeTime) -> None:
    """Retrying into an open breaker only hammers it; opt in with retry_circuit_open=True."""
    calls = {"n": 0}

    def rejected() -> None:
        calls["n"] += 1
        raise obskit.CircuitOpenError("x", retry_after=1.0)

    with pytest.raises(obskit.CircuitOpenError):
        obskit.retry(attempts=3)(rejected)()
    assert calls["n"] == 1
    with pytest.raises(obskit.CircuitOpenError):
        obskit.retry(attempts=3, retry_circuit_open=True, jitter=False)(rejected)()
    assert calls["n"] == 4
    assert fake_time.sleeps == [1.0, 1.0]  # the error's retry_after beats the 0.1 s backoff


def test_deadline_bounds_total_time(fake_time: FakeTime, events: list[Event]) -> None:
    """No wait may end past the deadline: retrying stops early with reason ``deadline``."""

    def slow_failure() -> None:
        fake_time.now += 1.0
        raise ConnectionError

    fn = obskit.retry(attempts=100, backoff=1.0, max_backoff=1.0, jitter=False, deadline=6.5)(slow_failure)
    with pytest.raises(ConnectionError):
        fn()
    assert fake_time.now <= 6.5 + 1.0  # the last attempt may run, no sleep crosses the deadline
    assert sum(fake_time.sleeps) + len(fake_time.sleeps) + 1 == fake_time.now
    assert finished(events)[0].reason == "deadline"


def test_retry_after_hints(fake_time: FakeTime) -> None:
    """Retry-After from an attribute or an HTTP response header sets the wait."""

    class Throttled(Exception):
        def __init__(self, hint: Any, header: bool) -> None:
            super().__init__("throttled")
            if header:
                self.response = type("R", (), {"headers": {"Retry-After": hint}})()
            else:
                self.retry_after = hint

    for hint, header in ((2.5, False), ("4", True)):
        calls = {"n": 0}

        def fn(hint: Any = hint, header: bool = header, calls: dict[str, int] = calls) -> str:
            calls["n"] += 1
            if calls["n"] == 1:
                raise Throttled(hint, header)
            return "ok"

        assert obskit.retry(attempts=2, jitter=False)(fn)() == "ok"
    assert fake_time.sleeps == [2.5, 4.0]


def test_base_exceptions_are_not_retried(fake_time: FakeTime) -> None:
    """KeyboardInterrupt goes straight through, even with on=BaseException-like predicates."""
    calls = {"n": 0}

    def interrupted() -> None:
        calls["n"] += 1
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        obskit.retry(attempts=5, on=lambda e: True)(interrupted)()
    assert calls["n"] == 1


def test_concurrent_calls_keep_their_own_attempts(fake_time: FakeTime, events: list[Event]) -> None:
    """30 threads through one decorated function: each call fails twice and succeeds on its third try."""
    local = threading.local()
    name = f"r-{uuid.uuid4().hex[:8]}"

    @obskit.retry(attempts=3, on=ConnectionError, name=name)
    def per_call() -> str:
        local.n = getattr(local, "n", 0) + 1
        if local.n < 3:
            raise ConnectionError
        return "ok"

    gate = threading.Barrier(30)
    results: list[str] = []

    def worker() -> None:
        gate.wait()
        results.append(per_call())

    threads = [threading.Thread(target=worker) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["ok"] * 30
    mine = [e for e in finished(events) if e.name == name]
    assert [(e.outcome, e.attempts) for e in mine] == [("success_with_retry", 3)] * 30


async def test_async_retry(fake_time: FakeTime, events: list[Event]) -> None:
    """async def functions are retried with an async sleep."""
    count = {"n": 0}

    @obskit.retry(attempts=3, on=TimeoutError, jitter=False)
    async def fetch() -> int:
        count["n"] += 1
        if count["n"] < 3:
            raise TimeoutError
        return count["n"]

    assert await fetch() == 3
    assert fake_time.sleeps == [0.1, 0.2]


def test_retry_around_breaker_counts_each_attempt(fake_time: FakeTime, events: list[Event]) -> None:
    """Each attempt is one breaker call; once the breaker opens, retrying stops at once."""
    name = f"rb-{uuid.uuid4().hex[:8]}"
    breaker = CircuitBreaker(name, minimum_calls=3, wait_in_open=60.0)
    calls = {"n": 0}

    @obskit.retry(attempts=10, on=ConnectionError, name=name)
    @breaker
    def fetch() -> None:
        calls["n"] += 1
        raise ConnectionError

    with pytest.raises(obskit.CircuitOpenError):
        fetch()
    assert calls["n"] == 3
    (done,) = finished(events)
    assert (done.attempts, done.error_type, done.reason) == (4, "CircuitOpenError", "not_retryable")
    breaker_calls = sum(
        REGISTRY.get_sample_value("obskit_circuit_breaker_calls_total", {"name": name, "outcome": o}) or 0
        for o in ("success", "failure", "ignored", "rejected", "cancelled")
    )
    assert REGISTRY.get_sample_value("obskit_retry_attempts_total", {"name": name}) == breaker_calls == 4


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"backoff": -1}, {"deadline": 0}])
def test_invalid_arguments(kwargs: dict[str, Any]) -> None:
    """Settings that cannot work are refused when decorating."""
    with pytest.raises(ValueError):
        obskit.retry(**kwargs)


def test_retry_after_http_date() -> None:
    """An HTTP-date Retry-After becomes the seconds until that date; junk becomes no hint."""
    import email.utils
    import time

    from obskit._resilience._retry import retry_after_hint

    class WithHeader(Exception):
        def __init__(self, value: str) -> None:
            super().__init__("throttled")
            self.response = type("R", (), {"headers": {"Retry-After": value}})()

    soon = email.utils.formatdate(time.time() + 120, usegmt=True)
    hint = retry_after_hint(WithHeader(soon))
    assert hint is not None and 100 < hint <= 120
    assert retry_after_hint(WithHeader("soon-ish")) is None
    assert retry_after_hint(ConnectionError()) is None
