"""The circuit breaker's state machine: admission, bookkeeping and transitions, nothing else.

It never runs the protected call and never holds its lock while user code or telemetry runs: callers ask
for a permit, run the call themselves, then report how it ended. Each permit carries the *epoch* (the
number of transitions so far) it was issued in, so a call admitted before a transition is still counted by
telemetry but cannot move the state machine after it (a stale completion is not obeyed).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import threading
from collections.abc import Callable
from typing import Any, Literal

from .._errors import CircuitOpenError
from . import _events
from ._events import CallRejected, StateChanged
from ._window import CountWindow, TimeWindow, Window

__all__ = ["BreakerConfig", "BreakerCore", "CircuitState", "Outcome", "WindowType"]

WindowType = Literal["count", "time"]


class CircuitState(enum.Enum):
    """Where a breaker is. ``DISABLED`` and ``FORCED_OPEN`` are only entered and left by hand."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"
    FORCED_OPEN = "forced_open"


class Outcome(enum.IntEnum):
    """How an admitted call ended, as seen by the breaker (``REJECTED`` never reaches ``complete``)."""

    SUCCESS = 0
    FAILURE = 1
    IGNORED = 2
    CANCELLED = 3
    REJECTED = 4


CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
DISABLED, FORCED_OPEN = CircuitState.DISABLED, CircuitState.FORCED_OPEN
# Module constants: ``x is SUCCESS`` is a global lookup, ``x is Outcome.SUCCESS`` an enum attribute lookup.
SUCCESS, FAILURE, IGNORED = Outcome.SUCCESS, Outcome.FAILURE, Outcome.IGNORED
CANCELLED, REJECTED = Outcome.CANCELLED, Outcome.REJECTED


_MAX_OPEN_WAIT = 86_400.0  # growth without max_wait_in_open stops at a day


@dataclasses.dataclass(frozen=True)
class BreakerConfig:
    """Validated breaker options; meanings follow resilience4j's CircuitBreakerConfig."""

    failure_rate_threshold: float = 0.5
    minimum_calls: int = 10
    window: int = 100
    window_type: WindowType = "count"
    slow_call_duration: float = 60.0
    slow_call_rate_threshold: float = 1.0
    wait_in_open: float = 60.0
    wait_multiplier: float = 1.0
    max_wait_in_open: float | None = None
    half_open_calls: int = 10
    half_open_max_duration: float = 60.0

    def __post_init__(self) -> None:
        checks = [
            (0.0 < self.failure_rate_threshold <= 1.0, "failure_rate_threshold must be in (0, 1]"),
            (0.0 < self.slow_call_rate_threshold <= 1.0, "slow_call_rate_threshold must be in (0, 1]"),
            (self.minimum_calls >= 1, "minimum_calls must be >= 1"),
            (self.window >= 1, "window must be >= 1"),
            (self.window_type in ("count", "time"), "window_type must be 'count' or 'time'"),
            (self.slow_call_duration >= 0, "slow_call_duration must be >= 0"),
            (self.wait_in_open >= 0, "wait_in_open must be >= 0"),
            (self.wait_multiplier >= 1.0, "wait_multiplier must be >= 1"),
            (self.half_open_calls >= 1, "half_open_calls must be >= 1"),
            (self.half_open_max_duration > 0, "half_open_max_duration must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def effective_minimum(self) -> int:
        """A count window can never hold more than ``window`` calls, so the minimum is capped by it."""
        return min(self.minimum_calls, self.window) if self.window_type == "count" else self.minimum_calls

    def new_window(self) -> Window:
        """A fresh window of the configured kind."""
        return CountWindow(self.window) if self.window_type == "count" else TimeWindow(self.window)

    def open_wait(self, trips: int) -> float:
        """How long to stay open after the ``trips``-th consecutive trip (exponential when multiplier > 1).

        The growth is computed so that it cannot overflow however long an outage lasts, and without
        ``max_wait_in_open`` it stops at one day.
        """
        try:
            wait = self.wait_in_open * self.wait_multiplier ** min(trips - 1, 1024)
        except OverflowError:
            wait = math.inf
        cap = _MAX_OPEN_WAIT if self.max_wait_in_open is None else self.max_wait_in_open
        return min(wait, cap)


CallRecorder = Callable[[Outcome, float], None]


def _no_recorder(outcome: Outcome, duration: float) -> None:
    """Placeholder until telemetry binds a recorder."""


def _record_every_exception(exc: Exception) -> Outcome:
    """The default classification: every ``Exception`` is a failure."""
    return Outcome.FAILURE


class BreakerCore:
    """One named breaker's shared state; every handle with the same name points at the same core."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        clock: Callable[[], float],
        recorder: CallRecorder = _no_recorder,
        *,
        classify: Callable[[Exception], Outcome] | None = None,
        record_result: Callable[[Any], bool] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.record_call = recorder
        self.classify: Callable[[Exception], Outcome] = classify or _record_every_exception
        self.record_result = record_result
        self._lock = threading.Lock()
        self._window = config.new_window()
        self._minimum = config.effective_minimum
        self._slow_after = config.slow_call_duration
        self._failure_threshold = config.failure_rate_threshold
        self._slow_threshold = config.slow_call_rate_threshold
        self._epoch = 0
        self._state = CLOSED
        # (epoch, state) in one attribute, so the lock-free fast path reads a consistent pair.
        self._snap: tuple[int, CircuitState] = (0, CLOSED)
        self._trips = 0
        self._open_until = 0.0
        self._half_open_since = 0.0
        self._probes_left = 0

    # -- reading ---------------------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state, with a due OPEN -> HALF_OPEN move applied (so reads never look stale)."""
        state = self._snap[1]
        if state is OPEN or state is HALF_OPEN:
            with self._lock:
                events = self._advance(self.clock())
                state = self._state
            self._emit(events)
        return state

    def snapshot(self) -> tuple[CircuitState, float | None, float | None, int]:
        """(state, failure rate, slow-call rate, calls in window); rates are None below the minimum."""
        now = self.clock()
        with self._lock:
            events = self._advance(now)
            self._window.expire(now)
            window, state = self._window, self._state
            calls, failures, slow = window.calls, window.failures, window.slow
        self._emit(events)
        minimum = self.config.half_open_calls if state is HALF_OPEN else self._minimum
        if calls < minimum or calls == 0:
            return state, None, None, calls
        return state, failures / calls, slow / calls, calls

    # -- admission -------------------------------------------------------------------------------------

    def acquire(self) -> int:
        """Admit a call and return its epoch, or raise :class:`CircuitOpenError`."""
        epoch, state = self._snap
        if state is CLOSED or state is DISABLED:
            return epoch
        now = self.clock()
        with self._lock:
            events = self._advance(now)
            state = self._state
            if state is HALF_OPEN and self._probes_left > 0:
                if self._outstanding() == 0:
                    self._half_open_since = now  # the hang clock starts with the first outstanding probe
                self._probes_left -= 1
                admitted: int | None = self._epoch
            elif state is CLOSED or state is DISABLED:
                admitted = self._epoch
            else:
                admitted = None
                retry_at = self._open_until if state is OPEN else None
        self._emit(events)
        if admitted is not None:
            return admitted
        retry_after = max(0.0, retry_at - now) if retry_at is not None else None
        self.record_call(REJECTED, 0.0)
        _events.emit(CallRejected(self.name, state.value, retry_after))
        raise CircuitOpenError(self.name, retry_after=retry_after, retry_at=retry_at)

    def complete(self, epoch: int, outcome: Outcome, duration: float, now: float) -> None:
        """Book how an admitted call ended (``now``: the clock when it ended).

        Stale epochs are counted by telemetry but change nothing. This is the hot path of every call, so
        it compares against module constants and keeps the critical section to a few integer updates.
        """
        events: list[StateChanged] | None = None
        if outcome is SUCCESS or outcome is FAILURE or self._state is HALF_OPEN:
            with self._lock:
                if epoch == self._epoch:
                    if self._state is CLOSED:  # inlined: the common case
                        window = self._window
                        window.record(now, outcome is FAILURE, duration >= self._slow_after)
                        if window.calls >= self._minimum:
                            events = self._judge_closed(window, now)
                    else:
                        events = self._book(outcome, duration, now)
        self.record_call(outcome, duration)
        if events:
            self._emit(events)

    # -- manual control --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to CLOSED with an empty window and no trip history."""
        self._manual(CLOSED, "reset")

    def force_open(self) -> None:
        """Reject every call until :meth:`reset`."""
        self._manual(FORCED_OPEN, "forced_open")

    def disable(self) -> None:
        """Admit every call and stop judging outcomes (they are still counted) until :meth:`reset`."""
        self._manual(DISABLED, "disabled")

    # -- internals (called with the lock held) ---------------------------------------------------------

    def _manual(self, to: CircuitState, reason: str) -> None:
        """Move by hand. Staying in the same state is not a transition (no event), but it still starts a
        new epoch, so calls admitted before a ``reset()`` cannot undo it, and a reset empties the window."""
        with self._lock:
            self._trips = 0
            if self._state is not to:
                events = [self._transition(to, reason, self.clock())]
            else:
                events = []
                if to is CLOSED:
                    self._window = self.config.new_window()
                self._epoch += 1
                self._snap = (self._epoch, to)
        self._emit(events)

    def _judge_closed(self, window: Window, now: float) -> list[StateChanged] | None:
        """Trip when the full-enough window's failure or slow-call rate reaches its threshold."""
        calls = window.calls
        if window.failures / calls >= self._failure_threshold:
            return [self._trip("failure_rate", now)]
        if window.slow / calls >= self._slow_threshold:
            return [self._trip("slow_call_rate", now)]
        return None

    def _book(self, outcome: Outcome, duration: float, now: float) -> list[StateChanged] | None:
        """Book a completion outside the closed state (half-open probes; other states ignore it)."""
        if self._state is not HALF_OPEN:
            return None
        self._half_open_since = now  # a probe ended: progress, so the hang clock restarts
        if outcome is not SUCCESS and outcome is not FAILURE:
            self._probes_left += 1  # an ignored or cancelled probe gives its permit back
            return None
        window = self._window
        window.record(now, outcome is FAILURE, duration >= self._slow_after)
        calls = window.calls
        if calls < self.config.half_open_calls:
            return None
        if window.failures / calls >= self._failure_threshold:
            return [self._trip("probes_failed", now)]
        if window.slow / calls >= self._slow_threshold:
            return [self._trip("probes_slow", now)]
        self._trips = 0
        return [self._transition(CLOSED, "probes_succeeded", now)]

    def _advance(self, now: float) -> list[StateChanged]:
        """Apply the moves that time alone causes: OPEN -> HALF_OPEN, hung HALF_OPEN -> OPEN."""
        events: list[StateChanged] = []
        if self._state is OPEN and now >= self._open_until:
            events.append(self._transition(HALF_OPEN, "wait_elapsed", now))
        # Only a probe that is out and silent for half_open_max_duration reopens: a quiet service that sends
        # few calls keeps waiting in half-open for them instead of flapping back to open.
        if (self._state is HALF_OPEN and self._outstanding() > 0
                and now - self._half_open_since >= self.config.half_open_max_duration):
            events.append(self._trip("probe_timeout", now))
        return events

    def _outstanding(self) -> int:
        """Probes admitted in this half-open period that have not ended yet."""
        return self.config.half_open_calls - self._probes_left - self._window.calls

    def _trip(self, reason: str, now: float) -> StateChanged:
        self._trips += 1
        return self._transition(OPEN, reason, now)

    def _transition(self, to: CircuitState, reason: str, now: float) -> StateChanged:
        window = self._window
        window.expire(now)
        calls = window.calls
        event = StateChanged(
            name=self.name,
            from_state=self._state.value,
            to_state=to.value,
            failure_rate=window.failures / calls if calls else None,
            slow_call_rate=window.slow / calls if calls else None,
            window_size=calls,
            reason=reason,
        )
        if to is OPEN:
            wait = self.config.open_wait(self._trips)
            self._open_until = now + wait
            event = dataclasses.replace(event, wait=wait)
        elif to is HALF_OPEN:
            self._half_open_since = now
            self._probes_left = self.config.half_open_calls
            self._window = CountWindow(self.config.half_open_calls)
        elif to is CLOSED:
            self._window = self.config.new_window()
        self._state = to
        self._epoch += 1
        self._snap = (self._epoch, to)
        return event

    def _emit(self, events: list[StateChanged]) -> None:
        for event in events:
            _events.emit(event)
