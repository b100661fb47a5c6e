"""Adapter to obskit's metrics API: define instruments, bind label children once, notice test resets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._metrics import _instruments as _metrics
from .._runtime._safe import report_internal_error

__all__ = ["Bound", "child", "inc", "instrument"]


def instrument(kind: str, name: str, doc: str, labels: Sequence[str]) -> Any:
    """The obskit metric ``name`` (obskit returns the existing one when it is defined again)."""
    if kind == "counter":
        return _metrics.counter(name, doc, labels=labels)
    if kind == "histogram":
        return _metrics.histogram(name, doc, unit="seconds", labels=labels)
    return _metrics.gauge(name, doc, labels=labels)


class Bound:
    """A label-bound view through the instrument's public methods (used if children are not reachable)."""

    __slots__ = ("_inst", "_labels")

    def __init__(self, inst: Any, labels: dict[str, str]) -> None:
        self._inst, self._labels = inst, labels

    def inc(self, amount: float = 1) -> None:
        self._inst.inc(amount, **self._labels)

    def dec(self, amount: float = 1) -> None:
        self._inst.dec(amount, **self._labels)

    def observe(self, value: float) -> None:
        self._inst.observe(value, **self._labels)

    def set(self, value: float) -> None:
        self._inst.set(value, **self._labels)


def child(inst: Any, **labels: str) -> Any:
    """The prometheus child behind ``inst`` for ``labels``, looked up once so hot paths skip label work.

    Goes through obskit's own lookup, so label checks and the cardinality guard still apply.
    """
    lookup = getattr(inst, "_lookup", None)
    if callable(lookup):
        found = lookup(dict(labels))
        if found is not None and hasattr(found, "inc" if inst.kind != "histogram" else "observe"):
            return found
    return Bound(inst, labels)


def inc(metric: str, doc: str, /, amount: float = 1, **labels: str) -> None:
    """Increment a counter on a decision path (rare enough to go through the public API each time).

    Each channel (metric, log, span event) is guarded on its own, so one broken backend hides nothing else.
    """
    try:
        instrument("counter", metric, doc, tuple(labels)).inc(amount, **labels)
    except Exception as exc:
        report_internal_error("resilience metrics", exc)
