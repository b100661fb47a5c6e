"""Smoke test of the resilience benchmark script (figures only; timing is never asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_benchmark_runs_with_tiny_n() -> None:
    """run(n) returns every figure the table prints."""
    path = Path(__file__).parent / "benchmarks" / "bench_resilience.py"
    spec = importlib.util.spec_from_file_location("bench_resilience", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.run(n=50, repeat=1)
    expected = {"bare_us", "obskit_us", "pybreaker_us", "obskit_overhead_us", "ratio_to_pybreaker"}
    assert expected <= set(figures)
    assert all(value == value for value in figures.values())  # no NaN: pybreaker was measured too
