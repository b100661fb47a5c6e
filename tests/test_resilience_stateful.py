"""Hypothesis drives random calls, held calls and clock moves against a reference model of the breaker.

The model is written from docs/resilience.md, not from ``obskit._resilience``: it shares no constant, cap or
formula with the implementation, so a wrong cap or formula there disagrees with it instead of being copied.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import uuid
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import obskit
from obskit._resilience import CircuitBreaker, add_sink, remove_sink
from obskit._resilience._events import Event, StateChanged

AUTOMATIC = {("closed", "open"), ("open", "half_open"), ("half_open", "open"), ("half_open", "closed")}
MANUAL_TARGETS = {"closed", "forced_open", "disabled"}
SLOW = 1.0  # slow_call_duration in every example
ONE_DAY = 24 * 60 * 60.0  # docs: "without [max_wait_in_open], growth stops at one day"
MAX_HELD = 3  # calls left running at once, so the breaker is not starved of probes
# Hypothesis favours the first choice of a list, so "failure" (what moves a breaker) comes first.
KINDS = ["failure", "success", "slow", "slow_failure", "ignored", "cancelled"]


class Clock:
    """Manual clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Model:
    """The breaker as docs/resilience.md specifies it, written the obvious (slow) way.

    Derived independently of the implementation: the open wait grows by one multiplication per consecutive
    trip and is clipped to the documented cap each time (no exponent, so nothing can overflow); the
    minimum is the documented rule (the window holds ``minimum_calls`` calls, or a count window is full);
    probes out are counted one by one as they leave and come back; every admitted call remembers the
    period (state or manual move) it was admitted in and is ignored by the state machine after it.
    Time alone moves the state only when someone looks (an admission or a read), as the docs say.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.state = "closed"
        self.period = 0
        self.calls: list[tuple[float, bool, bool]] = []  # closed: (end time, failed, slow)
        self.probes: list[tuple[bool, bool]] = []  # half-open: finished probes (failed, slow)
        self.permits = 0  # probes half-open may still let out
        self.out = 0  # probes let out in this half-open period and not finished
        self.quiet_since = 0.0  # last probe end, or the moment a probe left with none out
        self.wait: float | None = None  # the open wait of the last consecutive trip; None: no trip
        self.open_until = 0.0

    # -- the documented rules ------------------------------------------------------------------------

    def enough(self, n: int) -> bool:
        """"No decision until the window holds minimum_calls calls (capped at window for a count window)"."""
        full = self.cfg["window_type"] == "count" and n >= self.cfg["window"]
        return n >= self.cfg["minimum_calls"] or full

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        """The last ``window`` calls, or the calls that ended in one of the last ``window`` whole seconds."""
        if self.cfg["window_type"] == "count":
            return self.calls[max(0, len(self.calls) - self.cfg["window"]):]
        return [c for c in self.calls if int(now // 1) - int(c[0] // 1) < self.cfg["window"]]

    def over(self, failed: int, slow: int, n: int) -> bool:
        """A rate "reaches" its threshold: ``>=``."""
        return (failed >= self.cfg["failure_rate_threshold"] * n
                or slow >= self.cfg["slow_call_rate_threshold"] * n)

    def move(self, to: str, now: float) -> None:
        self.state = to
        self.period += 1
        self.out = 0
        if to == "half_open":
            self.permits, self.probes = self.cfg["half_open_calls"], []
        elif to == "closed":
            self.calls = []

    def trip(self, now: float) -> None:
        cap = ONE_DAY if self.cfg["max_wait_in_open"] is None else self.cfg["max_wait_in_open"]
        grown = self.cfg["wait_in_open"] if self.wait is None else self.wait * self.cfg["wait_multiplier"]
        self.wait = min(grown, cap)
        self.open_until = now + self.wait
        self.move("open", now)

    def tick(self, now: float) -> None:
        if self.state == "open" and now >= self.open_until:
            self.move("half_open", now)
        if (self.state == "half_open" and self.out > 0
                and now - self.quiet_since >= self.cfg["half_open_max_duration"]):
            self.trip(now)

    # -- what the test does --------------------------------------------------------------------------

    def manual(self, to: str, now: float) -> None:
        """By hand: a new period even when staying put; the trip history is forgotten."""
        self.wait = None
        self.move(to, now)

    def admit(self, now: float) -> int | None:
        """The period the call is admitted in, or None when it is rejected."""
        self.tick(now)
        if self.state in ("closed", "disabled"):
            return self.period
        if self.state == "half_open" and self.permits > 0:
            if self.out == 0:
                self.quiet_since = now
            self.permits -= 1
            self.out += 1
            return self.period
        return None

    def complete(self, period: int, kind: str, duration: float, now: float) -> None:
        if period != self.period:
            return  # admitted before a move: counted, not obeyed
        failed, slow = kind == "failure", duration >= SLOW
        if self.state == "half_open":
            self.out -= 1
            self.quiet_since = now
            if kind in ("ignored", "cancelled"):
                self.permits += 1  # the permit comes back
                return
            self.probes.append((failed, slow))
            n = len(self.probes)
            if n == self.cfg["half_open_calls"]:
                if self.over(sum(p[0] for p in self.probes), sum(p[1] for p in self.probes), n):
                    self.trip(now)
                else:
                    self.wait = None  # "closing resets it"
                    self.move("closed", now)
        elif self.state == "closed" and kind in ("success", "failure"):
            self.calls.append((now, failed, slow))
            win = self.window(now)
            if self.enough(len(win)) and self.over(sum(c[1] for c in win), sum(c[2] for c in win), len(win)):
                self.trip(now)


def _exit_with(kind: str) -> BaseException | None:
    return {"success": None, "failure": ConnectionError(), "ignored": KeyError("k"),
            "cancelled": asyncio.CancelledError()}[kind]


class BreakerMachine(RuleBasedStateMachine):
    """Random walks over calls, held calls and time; after every step the breaker agrees with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []
        self.sink = self.events.append
        add_sink(self.sink)
        self.held: list[tuple[contextvars.Context, int, float]] = []

    def teardown(self) -> None:
        remove_sink(self.sink)

    @initialize(
        window_type=st.sampled_from(["count", "time"]),
        window=st.integers(1, 8),
        minimum_calls=st.integers(1, 8),
        failure_rate_threshold=st.sampled_from([0.2, 0.3, 0.5, 0.75, 1.0]),
        slow_call_rate_threshold=st.sampled_from([0.3, 0.5, 1.0]),
        half_open_calls=st.integers(1, 4),
        wait_in_open=st.sampled_from([1.0, 5.0, 20.0]),
        wait_multiplier=st.sampled_from([1e6, 2.0, 1.0]),  # 1e6: the second trip reaches the one-day cap
        max_wait_in_open=st.sampled_from([None, 3.0, 30.0]),
        half_open_max_duration=st.sampled_from([3.0, 30.0]),
    )
    def setup(self, **cfg: Any) -> None:
        self.clock = Clock()
        self.name = f"sm-{uuid.uuid4().hex[:10]}"
        self.cfg = cfg
        self.model = Model(cfg)
        self.breaker = CircuitBreaker(
            self.name, clock=self.clock, slow_call_duration=SLOW, ignore=KeyError, **cfg
        )

    # A burst of calls per step, so more walks reach a trip, the open wait and half-open than one call would.
    @rule(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))
    def calls(self, kinds: list[str]) -> None:
        for kind in kinds:
            self.call(kind)

    def call(self, kind: str) -> None:
        duration = 2.0 if kind.startswith("slow") else 0.0
        outcome = {"slow": "success", "slow_failure": "failure"}.get(kind, kind)
        admitted = self.model.admit(self.clock.now)

        @self.breaker
        def work() -> None:
            self.clock.now += duration
            error = _exit_with(outcome)
            if error is not None:
                raise error

        try:
            work()
            ran = True
        except obskit.CircuitOpenError:
            ran = False
        except (ConnectionError, KeyError, asyncio.CancelledError):
            ran = True
        assert ran == (admitted is not None)
        if admitted is not None:
            self.model.complete(admitted, outcome, duration, self.clock.now)

    @precondition(lambda self: len(self.held) < MAX_HELD)
    @rule()
    def hold(self) -> None:
        """Enter a ``with breaker:`` block and leave it running (a slow or hung call)."""
        admitted = self.model.admit(self.clock.now)
        context = contextvars.copy_context()  # one permit stack per running block
        try:
            context.run(self.breaker.__enter__)
        except obskit.CircuitOpenError:
            assert admitted is None
            return
        assert admitted is not None
        self.held.append((context, admitted, self.clock.now))

    @precondition(lambda self: len(self.held) > 0)
    @rule(which=st.integers(0, MAX_HELD - 1),
          kind=st.sampled_from(["failure", "success", "ignored", "cancelled"]))
    def release(self, which: int, kind: str) -> None:
        """End one of the running blocks now, in any order."""
        context, period, start = self.held.pop(which % len(self.held))
        error = _exit_with(kind)
        context.run(self.breaker.__exit__, type(error) if error else None, error, None)
        self.model.complete(period, kind, self.clock.now - start, self.clock.now)

    # Mostly reset: forced-open and disabled only leave by hand, so they would idle most walks.
    @rule(action=st.sampled_from(["reset", "reset", "reset", "force_open", "disable"]))
    def by_hand(self, action: str) -> None:
        getattr(self.breaker, action)()
        to = {"reset": "closed", "force_open": "forced_open", "disable": "disabled"}[action]
        self.model.manual(to, self.clock.now)

    @rule(seconds=st.sampled_from(["open wait", "probe limit", 0.5, 1.0, 2.0, 5.0, 20.0, 50_000.0]))
    def advance(self, seconds: float | str) -> None:
        """Fixed steps, or exactly to the edge the model expects next (where ``>=`` and caps show)."""
        if seconds == "open wait":
            seconds = max(0.0, self.model.open_until - self.clock.now)
        elif seconds == "probe limit":
            seconds = self.cfg["half_open_max_duration"]
        assert isinstance(seconds, float)
        self.clock.now += seconds

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "model"):
            return
        self.model.tick(self.clock.now)
        assert self.breaker.state.value == self.model.state

    @invariant()
    def open_wait_agrees_with_model(self) -> None:
        if not hasattr(self, "model") or self.model.state != "open":
            return
        last = [e for e in self.events if isinstance(e, StateChanged) and e.to_state == "open"][-1]
        assert last.wait is not None and self.model.wait is not None
        assert math.isclose(last.wait, self.model.wait), (last.wait, self.model.wait)

    @invariant()
    def only_legal_transitions_and_never_below_minimum(self) -> None:
        for e in self.events:
            if isinstance(e, StateChanged):
                assert e.from_state != e.to_state
                if e.reason in ("reset", "forced_open", "disabled"):
                    assert e.to_state in MANUAL_TARGETS
                    continue
                assert (e.from_state, e.to_state) in AUTOMATIC
                if e.from_state == "closed":
                    assert self.model.enough(e.window_size)


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBreakerStateMachine = BreakerMachine.TestCase
TestBreakerStateMachine.__doc__ = "The breaker matches the reference model over random call sequences."
