"""Overhead of a closed circuit breaker around a trivial call, against the bare call and pybreaker.

Run ``python tests/benchmarks/bench_resilience.py``. Figures are per call, the best of several
interleaved repeats in one process, so machine noise affects all three the same way.
"""

from __future__ import annotations

import time
import timeit
import uuid
from collections.abc import Callable
from typing import Any

import obskit


def _trivial(x: int) -> int:
    return x


def _per_call(fn: Callable[[int], Any], n: int) -> float:
    """Seconds per call over ``n`` calls."""
    return timeit.Timer(lambda: [fn(1) for _ in range(n)]).timeit(number=1) / n


def run(n: int = 200_000, repeat: int = 7) -> dict[str, float]:
    """Per-call microseconds: bare, obskit closed breaker, pybreaker closed breaker, and the overheads.

    The three are measured in turn within each repeat and the best of each is kept, so a noisy neighbour
    slows all three alike instead of skewing one of them.
    """
    import pybreaker

    breaker = obskit.CircuitBreaker(f"bench-{uuid.uuid4().hex[:8]}", clock=time.monotonic)
    candidates = {
        "bare_us": _trivial,
        "obskit_us": breaker(_trivial),
        "pybreaker_us": pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)(_trivial),
    }
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(repeat):
        for key, fn in candidates.items():
            best[key] = min(best[key], _per_call(fn, n) * 1e6)
    figures = dict(best)
    figures["obskit_overhead_us"] = figures["obskit_us"] - figures["bare_us"]
    figures["pybreaker_overhead_us"] = figures["pybreaker_us"] - figures["bare_us"]
    figures["ratio_to_pybreaker"] = figures["obskit_overhead_us"] / figures["pybreaker_overhead_us"]
    return figures


def main() -> None:
    """Print the figures as a table."""
    figures = run()
    print(f"{'measure':<24}{'value':>12}")
    print("-" * 36)
    for key, value in figures.items():
        print(f"{key:<24}{value:>12.3f}")
    print("target: obskit_overhead_us <= 3.0 and ratio_to_pybreaker <= 1.5")


if __name__ == "__main__":
    main()
