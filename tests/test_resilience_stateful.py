"""Hypothesis drives random calls and clock moves against a small reference model of the breaker."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import obskit
from obskit._resilience import CircuitBreaker, add_sink, remove_sink
from obskit._resilience._events import Event, StateChanged

AUTOMATIC = {("closed", "open"), ("open", "half_open"), ("half_open", "open"), ("half_open", "closed")}
MANUAL_TARGETS = {"closed", "forced_open", "disabled"}
SLOW = 1.0  # slow_call_duration in every example


class Clock:
    """Manual clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Model:
    """The breaker's specification, written the obvious (slow) way."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.state = "closed"
        self.calls: list[tuple[float, bool, bool]] = []  # (end time, failed, slow)
        self.probes: list[tuple[bool, bool]] = []
        self.trips = 0
        self.open_until = 0.0
        self.half_open_since = 0.0
        self.probes_left = 0
        self.minimum = (
            min(cfg["minimum_calls"], cfg["window"])
            if cfg["window_type"] == "count"
            else (cfg["minimum_calls"])
        )

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        if self.cfg["window_type"] == "count":
            return self.calls[-self.cfg["window"] :]
        return [c for c in self.calls if math.floor(c[0]) > math.floor(now) - self.cfg["window"]]

    def trip(self, now: float) -> None:
        self.trips += 1
        wait = min(self.cfg["wait_in_open"] * self.cfg["wait_multiplier"] ** min(self.trips - 1, 1024),
                   86_400.0)
        self.state, self.open_until = "open", now + wait

    def tick(self, now: float) -> None:
        if self.state == "open" and now >= self.open_until:
            self.state, self.half_open_since = "half_open", now
            self.probes_left, self.probes = self.cfg["half_open_calls"], []
        if (self.state == "half_open" and self.outstanding() > 0
                and now - self.half_open_since >= self.cfg["half_open_max_duration"]):
            self.trip(now)

    def outstanding(self) -> int:
        """Probes let in during this half-open period that have not ended."""
        return self.cfg["half_open_calls"] - self.probes_left - len(self.probes)

    def manual(self, to: str) -> None:
        if to == "closed":
            self.calls = []
        self.state, self.trips = to, 0

    def admit(self, now: float) -> bool:
        self.tick(now)
        if self.state in ("closed", "disabled"):
            return True
        if self.state == "half_open" and self.probes_left > 0:
            if self.outstanding() == 0:
                self.half_open_since = now
            self.probes_left -= 1
            return True
        return False

    def over(self, failed: int, slow: int, n: int) -> bool:
        return (
            failed / n >= self.cfg["failure_rate_threshold"]
            or slow / n >= self.cfg["slow_call_rate_threshold"]
        )

    def complete(self, kind: str, duration: float, now: float) -> None:
        if self.state == "half_open":
            self.half_open_since = now
        if kind in ("ignored", "cancelled"):
            if self.state == "half_open":
                self.probes_left += 1
            return
        failed, slow = kind == "failure", duration >= SLOW
        if self.state == "closed":
            self.calls.append((now, failed, slow))
            win = self.window(now)
            if len(win) >= self.minimum and self.over(
                sum(c[1] for c in win), sum(c[2] for c in win), len(win)
            ):
                self.trip(now)
        elif self.state == "half_open":
            self.probes.append((failed, slow))
            n = len(self.probes)
            if n == self.cfg["half_open_calls"]:
                if self.over(sum(p[0] for p in self.probes), sum(p[1] for p in self.probes), n):
                    self.trip(now)
                else:
                    self.state, self.trips, self.calls = "closed", 0, []


class BreakerMachine(RuleBasedStateMachine):
    """Random walks over calls and time; after every step the breaker must agree with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []
        self.sink = self.events.append
        add_sink(self.sink)

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
        wait_multiplier=st.sampled_from([1.0, 2.0]),
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

    @rule(kind=st.sampled_from(["success", "failure", "slow", "slow_failure", "ignored", "cancelled"]))
    def call(self, kind: str) -> None:
        duration = 2.0 if kind.startswith("slow") else 0.0
        outcome = {"slow": "success", "slow_failure": "failure"}.get(kind, kind)
        admitted = self.model.admit(self.clock.now)

        @self.breaker
        def work() -> None:
            self.clock.now += duration
            if outcome == "failure":
                raise ConnectionError
            if outcome == "ignored":
                raise KeyError
            if outcome == "cancelled":
                raise asyncio.CancelledError

        try:
            work()
            ran = True
        except obskit.CircuitOpenError:
            ran = False
        except (ConnectionError, KeyError, asyncio.CancelledError):
            ran = True
        assert ran == admitted
        if admitted:
            self.model.complete(outcome, duration, self.clock.now)

    @rule(action=st.sampled_from(["reset", "force_open", "disable"]))
    def by_hand(self, action: str) -> None:
        getattr(self.breaker, action)()
        self.model.manual({"reset": "closed", "force_open": "forced_open", "disable": "disabled"}[action])

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 5.0, 20.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "model"):
            return
        self.model.tick(self.clock.now)
        assert self.breaker.state.value == self.model.state

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
                    assert e.window_size >= self.model.minimum


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBreakerStateMachine = BreakerMachine.TestCase
TestBreakerStateMachine.__doc__ = "The breaker matches the reference model over random call sequences."
