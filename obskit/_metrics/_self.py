"""obskit's health counts as ordinary obskit counters, bound to the runtime's health sink at start-up.

Created on first start, never at import, so importing obskit constructs no metric value (which keeps the
multiprocess switch of the server hooks safe).
"""

from __future__ import annotations

from .._runtime import _health
from ._instruments import Counter, counter

__all__ = ["install"]


def _counters() -> dict[str, Counter]:
    """``counter()`` returns the existing definitions on later calls (and across test resets)."""
    return {
        "dropped": counter("obskit_telemetry_dropped", "Spans or log records obskit could not deliver: "
                           "refused by a full queue, or in an export that failed", labels=["signal"]),
        "export_failures": counter("obskit_export_failures", "OTLP export calls that failed",
                                   labels=["signal"]),
    }


def install() -> None:
    """Zero series per signal (dashboards see them before any problem), then take the runtime's counts."""
    by_kind = _counters()
    for inst in by_kind.values():
        for signal in _health.SIGNALS:
            inst.inc(0, signal=signal)

    def sink(kind: str, signal: str, count: int) -> None:
        by_kind[kind].inc(count, signal=signal)

    _health.bind(sink)
