"""Metric edge cases found in review: each once let a call raise, mix series, or hang."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from prometheus_client import REGISTRY, generate_latest

import obskit
from obskit._metrics._instruments import instruments
from obskit._metrics._otlp import snapshot


def _lines(prefix: str) -> list[str]:
    return [line for line in generate_latest(REGISTRY).decode().splitlines() if line.startswith(prefix)]


def test_gauge_dec_with_a_bad_amount_never_raises() -> None:
    """dec('1') and dec(None) are dropped with an error log, like inc('1'), not raised into the app."""
    g = obskit.gauge("edge_inflight", "In flight")
    g.dec("1")  # type: ignore[arg-type]
    g.dec(None)  # type: ignore[arg-type]
    g.inc(2)
    g.dec()
    assert REGISTRY.get_sample_value("edge_inflight") == 1.0


def test_equal_label_values_that_print_differently_stay_separate() -> None:
    """1, True and 1.0 are equal in Python but are three label values on /metrics."""
    c = obskit.counter("edge_flags", "Flags", labels=["ok"])
    c.inc(ok=1)
    c.inc(ok=True)
    c.inc(ok=1.0)
    c.inc(ok=1)
    assert REGISTRY.get_sample_value("edge_flags_total", {"ok": "1"}) == 2.0
    assert REGISTRY.get_sample_value("edge_flags_total", {"ok": "True"}) == 1.0
    assert REGISTRY.get_sample_value("edge_flags_total", {"ok": "1.0"}) == 1.0


def test_nan_counter_increment_is_dropped() -> None:
    """A NaN increment is dropped instead of turning the counter into NaN for good."""
    c = obskit.counter("edge_nan", "NaN guard")
    c.inc(1)
    c.inc(float("nan"))
    c.inc(1)
    assert REGISTRY.get_sample_value("edge_nan_total") == 2.0


def test_histogram_time_accepts_a_label_named_self() -> None:
    """time(self=...) is a label, not a clash with the method's own parameter."""
    h = obskit.histogram("edge_self", "Self label", labels=["self"])
    with h.time(self="x"):
        pass
    assert REGISTRY.get_sample_value("edge_self_count", {"self": "x"}) == 1.0


def test_shared_timer_in_concurrent_tasks_times_each_task() -> None:
    """One timer object used by overlapping tasks records each task's own duration."""
    h = obskit.histogram("edge_timer", "Shared timer", buckets=[0.15, 0.5, 2.0])
    timer = h.time()

    async def job(delay: float) -> None:
        with timer:
            await asyncio.sleep(delay)

    async def main() -> None:
        first = asyncio.create_task(job(0.3))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(job(0.05))
        await asyncio.gather(first, second)

    asyncio.run(main())
    # 0.05 s lands under 0.15, 0.3 s under 0.5; a swapped start would put one of them past 0.5.
    assert REGISTRY.get_sample_value("edge_timer_bucket", {"le": "0.15"}) == 1.0
    assert REGISTRY.get_sample_value("edge_timer_bucket", {"le": "0.5"}) == 2.0


def test_le_label_on_a_counter_survives_otlp() -> None:
    """`le` is reserved on histograms only; on a counter its series stay distinct over OTLP."""
    c = obskit.counter("edge_sla", "SLA", labels=["le"])
    c.inc(1, le="fast")
    c.inc(10, le="slow")
    data = snapshot([i for i in instruments() if i.name == "edge_sla"], Resource({}))
    points = {dict(p.attributes)["le"]: p.value for m in data.resource_metrics[0].scope_metrics[0].metrics
              for p in m.data.data_points}
    assert points == {"fast": 1.0, "slow": 10.0}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_shutdown_does_not_wait_for_the_parents_metrics_server(fresh: None) -> None:
    """A child forked from a process serving /metrics shuts down without waiting on a thread it lacks."""
    import io

    obskit.init(service_name="svc", metrics_port=0, log_stream=io.StringIO(), integrations="none")
    pid = os.fork()
    if pid == 0:
        start = time.monotonic()
        ok = obskit.shutdown(timeout=3.0)
        os._exit(0 if ok and time.monotonic() - start < 2.0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert obskit.shutdown(timeout=3.0)


def test_filtered_scrape_in_multiprocess_mode(tmp_path: Path) -> None:
    """?name[]=... returns the named series in multiprocess mode too (the mode is chosen at import)."""
    script = (
        "import obskit\n"
        "from obskit._metrics._exposition import render\n"
        "obskit.counter('edge_jobs', 'Jobs').inc(5)\n"
        "print(render(names=['edge_jobs_total'])[0].decode())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    env["OBSKIT_MULTIPROC_DIR"] = str(tmp_path / "mp")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "edge_jobs_total 5.0" in proc.stdout
