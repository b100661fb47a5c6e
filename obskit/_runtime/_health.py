"""obskit's own health: what it dropped and which exports failed, per signal.

The runtime counts; the metrics package, when it starts, binds a sink that turns the counts into
``obskit_telemetry_dropped_total{signal}`` and ``obskit_export_failures_total{signal}`` (so they reach
``/metrics`` and OTLP like the application's own). Counts recorded before that, or with metrics off, are
kept here and handed to the sink when it binds: nothing is lost, and the runtime imports no signal package.

Who records: the batch processors (``_batching``: a full queue, a processor already shut down) and the
exporter guard (``_exporters``: the items of an export that failed, and each failed call).

Each recorder takes the :func:`generation` when it is made and passes it along: a shutdown that gave up
against a hung collector leaves its export threads running, and what they drop later belongs to that old
setup, not to the counts of the one started after ``reset()``; so do the lines they log
(:func:`working_for`, :func:`stale`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from ._safe import report_internal_error

__all__ = [
    "SIGNALS",
    "bind",
    "counts",
    "generation",
    "new_lock_in_child",
    "record_dropped",
    "record_export_failure",
    "reset",
    "stale",
    "working_for",
]

SIGNALS = ("traces", "logs", "metrics")
Sink = Callable[[str, str, int], None]  # (kind: "dropped" | "export_failures", signal, count)

_lock = threading.Lock()
_totals: dict[tuple[str, str], int] = {}
_pending: dict[tuple[str, str], int] = {}
_sink: Sink | None = None
_generation = 0


def new_lock_in_child() -> None:
    """After a fork (``_fork``): an export thread of the parent may have held the lock at that moment."""
    global _lock
    _lock = threading.Lock()


def generation() -> int:
    """The current setup's number: :func:`reset` starts a new one."""
    return _generation


_working = threading.local()


@contextlib.contextmanager
def working_for(gen: int) -> Iterator[None]:
    """Mark this thread as doing the work of setup ``gen`` (an exporter's call) for the block."""
    previous = getattr(_working, "gen", None)
    _working.gen = gen
    try:
        yield
    finally:
        _working.gen = previous


def stale() -> bool:
    """Whether this thread works for a setup that :func:`reset` has ended: an export that outlived its
    shutdown, whose log lines must not land in the setup started since."""
    gen = getattr(_working, "gen", None)
    return gen is not None and gen != _generation


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


def _record(kind: str, signal: str, count: int, gen: int | None = None) -> None:
    try:
        with _lock:
            if gen is not None and gen != _generation:
                return  # an earlier setup's straggler (see the module docstring)
            key = (kind, signal)
            _totals[key] = _totals.get(key, 0) + count
            sink = _sink
            if sink is None:
                _pending[key] = _pending.get(key, 0) + count
        _send(sink, kind, signal, count)
    except Exception as exc:
        report_internal_error("self-telemetry", exc)


def record_dropped(signal: str, count: int = 1, generation: int | None = None) -> None:
    """Items of ``signal`` ("traces", "logs", "metrics") that will never reach the collector; a recorder
    made under an earlier :func:`generation` is ignored."""
    _record("dropped", signal, count, generation)


def record_export_failure(signal: str, count: int = 1, generation: int | None = None) -> None:
    """One failed export call for ``signal``."""
    _record("export_failures", signal, count, generation)


def reset() -> None:
    """Forget every count and start a new generation (tests); a bound sink stays bound."""
    global _generation
    with _lock:
        _generation += 1
        _totals.clear()
        _pending.clear()
