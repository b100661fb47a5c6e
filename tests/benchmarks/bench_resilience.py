"""Overhead of a closed circuit breaker around a trivial call, against the bare call and pybreaker.

Run ``python tests/benchmarks/bench_resilience.py``. Figures are per call, from the best of several
repeats in one process, so machine noise affects all three the same way.
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


def _best_per_call(fn: Callable[[int], Any], n: int, repeat: int) -> float:
    """Seconds per call, best of ``repeat`` runs of ``n`` calls."""
    timer = timeit.Timer(lambda: [fn(1) for _ in range(n)])
    return min(timer.repeat(repeat=repeat, number=1)) / n


def run(n: int = 200_000, repeat: int = 5) -> dict[str, float]:
    """Per-call microseconds: bare, obskit closed breaker, pybreaker closed breaker, and the overheads."""
    breaker = obskit.CircuitBreaker(f"bench-{uuid.uuid4().hex[:8]}", clock=time.monotonic)
    guarded = breaker(_trivial)
    figures = {"bare_us": _best_per_call(_trivial, n, repeat) * 1e6}
    figures["obskit_us"] = _best_per_call(guarded, n, repeat) * 1e6
    try:
        import pybreaker

        pb_guarded = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)(_trivial)
        figures["pybreaker_us"] = _best_per_call(pb_guarded, n, repeat) * 1e6
    except ImportError:  # pragma: no cover - pybreaker is a test dependency
        figures["pybreaker_us"] = float("nan")
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
