"""Sliding windows of call outcomes: count-based (last N calls) and time-based (last N seconds).

Both keep running totals so recording a call and reading the rates are O(1) (amortised), which keeps the
breaker's critical section short. They are not thread-safe: the breaker's lock guards them.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

__all__ = ["CountWindow", "TimeWindow", "Window"]


class Window(Protocol):
    """What the breaker needs from a window."""

    calls: int
    failures: int
    slow: int

    def record(self, now: float, failed: bool, slow: bool) -> None: ...

    def expire(self, now: float) -> None: ...


class CountWindow:
    """The outcomes of the last ``size`` calls, in a ring buffer."""

    __slots__ = ("_index", "_ring", "_size", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._size = size
        self._ring: list[int] = [0] * size  # bit 0: counted, bit 1: failed, bit 2: slow
        self._index = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        """Add one outcome, evicting the oldest once the ring is full."""
        old = self._ring[self._index]
        if old:
            self.calls -= 1
            self.failures -= (old >> 1) & 1
            self.slow -= (old >> 2) & 1
        self._ring[self._index] = 1 | (failed << 1) | (slow << 2)
        self._index = (self._index + 1) % self._size
        self.calls += 1
        self.failures += failed
        self.slow += slow

    def expire(self, now: float) -> None:
        """Count windows never age."""


class TimeWindow:
    """The outcomes of the calls that ended in the last ``seconds`` whole seconds (one bucket per second).

    Per-second buckets, as resilience4j does, bound memory by the window length instead of by throughput.
    """

    __slots__ = ("_buckets", "_seconds", "calls", "failures", "slow")

    def __init__(self, seconds: int) -> None:
        self._seconds = seconds
        self._buckets: deque[list[int]] = deque()  # [second, calls, failures, slow], oldest first
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def expire(self, now: float) -> None:
        """Drop the buckets that fell out of the window."""
        oldest = math.floor(now) - self._seconds
        buckets = self._buckets
        while buckets and buckets[0][0] <= oldest:
            _, calls, failures, slow = buckets.popleft()
            self.calls -= calls
            self.failures -= failures
            self.slow -= slow

    def record(self, now: float, failed: bool, slow: bool) -> None:
        """Add one outcome to the bucket of the current second."""
        self.expire(now)
        second = math.floor(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] >= second:
            bucket = buckets[-1]
        else:
            bucket = [second, 0, 0, 0]
            buckets.append(bucket)
        bucket[1] += 1
        bucket[2] += failed
        bucket[3] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow
