"""``process_thread_count``: the threads of the process (of every live worker, labelled ``pid``, in
multiprocess mode), read from ``/proc`` at scrape time.

prometheus-client's process collector has CPU, memory and file descriptors but no thread count, and a
runtime dashboard needs one: a thread leak (an executor per request, a client per call) shows there first.
``/proc/<pid>/status`` counts every thread, the native ones of gRPC included, which ``threading`` cannot see.
Linux only; elsewhere the metric is absent.
"""

from __future__ import annotations

import os
from typing import Any

from . import _multiprocess
from ._exposition import add_collector

__all__ = ["ThreadCountCollector", "install", "thread_count"]

NAME = "process_thread_count"
_DOC = "Threads of the process, native ones included (from /proc/<pid>/status)"


def thread_count(pid: int) -> int | None:
    """The number of threads of ``pid``, or None where ``/proc`` does not say (not Linux, process gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class ThreadCountCollector:
    """Collected at scrape time by whichever process serves ``/metrics``."""

    def collect(self) -> list[Any]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        path = _multiprocess.directory()
        if path is None:
            count = thread_count(os.getpid())
            return [] if count is None else [GaugeMetricFamily(NAME, _DOC, value=count)]
        family = GaugeMetricFamily(NAME, _DOC, labels=["pid"])
        for pid in _multiprocess.live_pids(path):
            count = thread_count(pid)
            if count is not None:
                family.add_metric([str(pid)], count)
        return [family]


_collector = ThreadCountCollector()


def install() -> None:
    """Serve the thread count on every scrape (idempotent)."""
    add_collector(_collector)
