"""obskit's own health on ``/metrics``: what it dropped and which exports failed, per signal.

These are ordinary obskit counters, so they reach Prometheus and OTLP like the application's own. They
are created on first use, never at import, so importing obskit constructs no metric value (which keeps
the multiprocess switch of the gunicorn hooks safe).
"""

from __future__ import annotations

from typing import Any

from ._safe import report_internal_error

__all__ = ["SIGNALS", "ensure", "record_dropped", "record_export_failure"]

SIGNALS = ("traces", "logs", "metrics")


def _get(which: str) -> Any:
    """The counter itself; ``counter()`` returns the existing one, and survives ``_reset_for_tests``."""
    from .._metrics._instruments import counter

    if which == "dropped":
        return counter("obskit_telemetry_dropped", "Spans, log records or metric points obskit dropped "
                       "because a queue was full", labels=["signal"])
    return counter("obskit_export_failures", "OTLP export calls that failed", labels=["signal"])


def ensure() -> None:
    """Create both counters with a zero series per signal, so dashboards see them before any problem."""
    for which in ("dropped", "failures"):
        inst = _get(which)
        for signal in SIGNALS:
            inst.inc(0, signal=signal)


def record_dropped(signal: str, count: int = 1) -> None:
    """Items of ``signal`` ("traces", "logs", "metrics") dropped because a queue was full."""
    try:
        _get("dropped").inc(count, signal=signal)
    except Exception as exc:
        report_internal_error("self-telemetry", exc)


def record_export_failure(signal: str, count: int = 1) -> None:
    """One failed export call for ``signal``."""
    try:
        _get("failures").inc(count, signal=signal)
    except Exception as exc:
        report_internal_error("self-telemetry", exc)
