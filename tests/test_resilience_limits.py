"""Resilience limits found in review: long outages, quiet services and garbage hints."""

from __future__ import annotations

import contextlib
import uuid

import obskit
from obskit._resilience._retry import retry_after_hint
from obskit._resilience._state import BreakerConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_open_wait_growth_never_overflows() -> None:
    """Thousands of trips with exponential growth stay at the cap instead of raising OverflowError."""
    capped = BreakerConfig(wait_in_open=1.0, wait_multiplier=2.0, max_wait_in_open=60.0)
    assert capped.open_wait(5_000) == 60.0
    uncapped = BreakerConfig(wait_in_open=1.0, wait_multiplier=2.0)
    assert uncapped.open_wait(5_000) == 86_400.0
    assert uncapped.open_wait(3) == 4.0


def test_quiet_healthy_service_closes_the_breaker() -> None:
    """Few calls a minute: slow-arriving successful probes close the breaker; no probe_timeout flapping."""
    clock = Clock()
    br = obskit.CircuitBreaker(f"quiet-{uuid.uuid4().hex[:8]}", clock=clock, minimum_calls=5, window=10,
                               wait_in_open=60.0)  # half_open_calls=10, half_open_max_duration=60 by default
    healthy = False

    @br
    def call() -> str:
        if not healthy:
            raise ConnectionError("down")
        return "ok"

    for _ in range(5):
        with contextlib.suppress(ConnectionError):
            call()
    assert br.state is obskit.CircuitState.OPEN
    healthy = True
    clock.now += 61.0
    for _ in range(10):  # one call every 30 s: ten probes take five minutes
        assert call() == "ok"
        clock.now += 30.0
    assert br.state is obskit.CircuitState.CLOSED


def test_retry_backoff_after_many_attempts_never_overflows() -> None:
    """A very large attempt number gives max_backoff, not OverflowError."""
    from obskit._resilience._retry import _Policy

    policy = _Policy(attempts=1_000_000, on=(ConnectionError,), backoff=0.1, max_backoff=5.0, jitter=False,
                     deadline=None, name="r", retry_open=False)
    wait, _ = policy.next_wait(5_000, ConnectionError("down"), 0.0)
    assert wait == 5.0


class _Response:
    def __init__(self, value: str) -> None:
        self.headers = {"Retry-After": value}


class _HTTPError(Exception):
    def __init__(self, value: str) -> None:
        super().__init__("503")
        self.response = _Response(value)


def test_garbage_retry_after_hints_are_ignored() -> None:
    """inf, NaN and absurd Retry-After values are ignored; plausible ones are honoured."""
    assert retry_after_hint(_HTTPError("1e300")) is None
    assert retry_after_hint(_HTTPError("inf")) is None
    assert retry_after_hint(_HTTPError("nan")) is None
    assert retry_after_hint(_HTTPError("2.5")) == 2.5
    assert retry_after_hint(_HTTPError("-3")) == 0.0


def test_block_exited_in_another_context_keeps_its_outcome() -> None:
    """`with breaker` entered in one context and exited in another re-raises the block's own exception."""
    import contextvars

    import pytest

    br = obskit.CircuitBreaker(f"ctx-{uuid.uuid4().hex[:8]}")
    contextvars.copy_context().run(br.__enter__)
    with pytest.raises(ValueError):
        try:
            raise ValueError("the block's own error")
        except ValueError as exc:
            assert br.__exit__(ValueError, exc, exc.__traceback__) is None
            raise


def test_module_level_guards_keep_counting_across_capture_resets() -> None:
    """A breaker and bulkhead defined once (at import) still reach /metrics after obskit.testing resets."""
    from obskit.testing import capture

    name = f"reset-{uuid.uuid4().hex[:8]}"
    br = obskit.CircuitBreaker(name)

    @br
    @obskit.bulkhead(max_concurrent=2, name=name)
    def ok() -> int:
        return 1

    for _ in range(3):
        with capture() as cap:
            ok()
            ok()
            assert cap.metric("obskit_circuit_breaker_calls_total", name=name, outcome="success") == 2.0
            assert cap.metric("obskit_bulkhead_active", name=name) == 0.0
