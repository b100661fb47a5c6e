"""The metrics benchmark runs (tiny n): a smoke test, never a timing assertion."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_bench_metrics_runs_and_reports_every_case() -> None:
    """run(n) returns a positive figure for every case and ratio."""
    path = Path(__file__).parent / "benchmarks" / "bench_metrics.py"
    spec = importlib.util.spec_from_file_location("bench_metrics", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run(50, rounds=1)
    for key in ("counter_obskit", "counter_prometheus", "counter_otel_sdk", "histogram_obskit_exemplar",
                "counter_vs_prometheus", "exemplar_over_plain"):
        assert result[key] > 0, key
