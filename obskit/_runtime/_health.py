"""obskit's own health: what it dropped and which exports failed, per signal.

The runtime counts; the metrics package, when it starts, binds a sink that turns the counts into
``obskit_telemetry_dropped_total{signal}`` and ``obskit_export_failures_total{signal}`` (so they reach
``/metrics`` and OTLP like the application's own). Counts recorded before that, or with metrics off, are
kept here and handed to the sink when it binds: nothing is lost, and the runtime imports no signal package.

The SDK's batch processors report drops only through a ``MeterProvider``; :class:`SelfMeterProvider` is the
small one obskit gives them so that those drops land here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from opentelemetry.metrics import Counter, Meter, MeterProvider, NoOpMeter

from ._safe import report_internal_error

__all__ = [
    "SIGNALS",
    "SelfMeterProvider",
    "bind",
    "counts",
    "record_dropped",
    "record_export_failure",
    "reset",
]

SIGNALS = ("traces", "logs", "metrics")
Sink = Callable[[str, str, int], None]  # (kind: "dropped" | "export_failures", signal, count)

_lock = threading.Lock()
_totals: dict[tuple[str, str], int] = {}
_pending: dict[tuple[str, str], int] = {}
_sink: Sink | None = None


def bind(sink: Sink | None) -> None:
    """Send every count from now on to ``sink`` (None: keep them here), replaying what it has not seen."""
    global _sink
    with _lock:
        _sink = sink
        replay = dict(_pending) if sink is not None else {}
        if sink is not None:
            _pending.clear()
    for (kind, signal), n in replay.items():
        _send(sink, kind, signal, n)


def counts() -> dict[tuple[str, str], int]:
    """Every count recorded in this process, by (kind, signal)."""
    with _lock:
        return dict(_totals)


def _send(sink: Sink | None, kind: str, signal: str, n: int) -> None:
    try:
        if sink is not None:
            sink(kind, signal, n)
    except Exception as exc:
        report_internal_error("self-telemetry", exc)


def _record(kind: str, signal: str, count: int) -> None:
    try:
        with _lock:
            key = (kind, signal)
            _totals[key] = _totals.get(key, 0) + count
            sink = _sink
            if sink is None:
                _pending[key] = _pending.get(key, 0) + count
        _send(sink, kind, signal, count)
    except Exception as exc:
        report_internal_error("self-telemetry", exc)


def record_dropped(signal: str, count: int = 1) -> None:
    """Items of ``signal`` ("traces", "logs", "metrics") dropped because a queue was full."""
    _record("dropped", signal, count)


def record_export_failure(signal: str, count: int = 1) -> None:
    """One failed export call for ``signal``."""
    _record("export_failures", signal, count)


# --- the SDK's batch processors count drops through a MeterProvider ------------------------------------


class _DropCounter(Counter):
    def __init__(self, signal: str) -> None:
        self._signal = signal

    def add(self, amount: int | float, attributes: Any = None, context: Any = None) -> None:
        try:
            if attributes and attributes.get("error.type"):
                record_dropped(self._signal, int(amount))
        except Exception as exc:
            report_internal_error("self-telemetry", exc)


class _SelfMeter(NoOpMeter):
    def __init__(self, signal: str) -> None:
        super().__init__("obskit-self")
        self._counter = _DropCounter(signal)

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        if name.endswith(".processed"):
            return self._counter
        return super().create_counter(name, unit, description)


class SelfMeterProvider(MeterProvider):
    """Feeds the SDK processors' "dropped" counts into :func:`record_dropped` for one signal."""

    def __init__(self, signal: str) -> None:
        self._meter = _SelfMeter(signal)

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Any = None) -> Meter:
        return self._meter


def reset() -> None:
    """Forget every count (tests); a bound sink stays bound."""
    with _lock:
        _totals.clear()
        _pending.clear()
