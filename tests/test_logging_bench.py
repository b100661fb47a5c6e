"""Smoke test of the logging benchmark script (tiny n, no timing asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))

import bench_logging


def test_benchmark_runs_and_reports_both_variants(capsys: object) -> None:
    """run() returns positive ns/op for both variants and their ratio; main() prints the table."""
    result = bench_logging.run(n=200, rounds=1)
    assert result["obskit_ns"] > 0 and result["structlog_ns"] > 0 and result["ratio"] > 0
    assert bench_logging.main(["100"]) == 0
