"""After a fork: every lock of the metric definitions and their values made anew in the child.

A lock another thread of the parent held at the moment of ``fork()`` stays held in the child, where that
thread does not exist: the child's next use blocks for good. obskit's threads take metric locks all the
time (an export thread counting a failure in ``obskit_export_failures_total``, the OTLP push reading every
value), and under gunicorn ``--preload`` the workers are forked from a master in which they run; a worker
forked in that instant would hang on its first count of that series, on a request thread if the series is
the request's own. So the child renews them before anything else can use them: the registries' locks,
each instrument's, each prometheus-client metric's and each in-memory value's. prometheus-client's
multiprocess values (their data in files) share one lock, a local variable of the function that made
their class, reachable only through the closures of the class's methods: that one is renewed in its cell.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from .._runtime import _fork
from . import _exposition, _instruments, _otel_api

__all__ = ["install"]

_VALUE_FIELDS = ("_value", "_sum", "_count")


def _fresh(lock: object) -> Any:
    return threading.RLock() if isinstance(lock, type(threading.RLock())) else threading.Lock()


def _renew_lock(owner: Any) -> None:
    lock = getattr(owner, "_lock", None)
    if lock is not None and hasattr(lock, "acquire"):
        owner._lock = _fresh(lock)


def _renew_shared_lock(value_class: Any) -> None:
    """The one lock all values of a prometheus-client multiprocess value class share: ``lock`` in the
    closure of ``MultiProcessValue()``, which made the class (the same cell in each method using it)."""
    method = getattr(value_class, "inc", None)
    code, cells = getattr(method, "__code__", None), getattr(method, "__closure__", None)
    if code is None or not cells or "lock" not in code.co_freevars:
        return
    cell = cells[code.co_freevars.index("lock")]
    if hasattr(cell.cell_contents, "acquire"):
        cell.cell_contents = _fresh(cell.cell_contents)


def _renew_value(value: Any, shared: set[type]) -> None:
    if not getattr(value, "_multiprocess", False):
        _renew_lock(value)
    elif type(value) not in shared:
        shared.add(type(value))
        _renew_shared_lock(type(value))


def _renew_values(child: Any, shared: set[type]) -> None:
    """The value locks of one prometheus-client child (a counter's or gauge's value, a histogram's sum and
    buckets, a summary's count and sum); ``shared``: the multiprocess value classes already renewed."""
    for name in _VALUE_FIELDS:
        value = getattr(child, name, None)
        if value is not None:
            _renew_value(value, shared)
    for bucket in getattr(child, "_buckets", None) or ():
        _renew_value(bucket, shared)


def _renew_metric(metric: Any, shared: set[type]) -> None:
    """A prometheus-client metric: its own lock (a labelled parent's) and every child's values."""
    _renew_lock(metric)
    children = getattr(metric, "_metrics", None)
    for child in list(children.values()) if isinstance(children, dict) else [metric]:
        _renew_values(child, shared)


def renew_in_child() -> None:
    """The fork registry's child callback (see the module docstring)."""
    _instruments._lock = threading.RLock()
    _otel_api._lock = threading.RLock()
    _exposition._agg_lock = threading.Lock()
    shared: set[type] = set()
    values = sys.modules.get("prometheus_client.values")
    value_class: Any = getattr(values, "ValueClass", None)
    if getattr(value_class, "_multiprocess", False):  # the class values are made from now on
        shared.add(value_class)
        _renew_shared_lock(value_class)
    for inst in _instruments.instruments():
        _renew_lock(inst)
        variants = getattr(inst, "_variants", None)  # an OpenTelemetry API instrument: one metric per key set
        metrics = list(variants.values()) if isinstance(variants, dict) else [getattr(inst, "_prom", None)]
        overflow = getattr(inst, "_overflow", None)
        for metric in [*metrics, overflow]:
            if metric is not None:
                _renew_metric(metric, shared)


def install() -> None:
    """Register :func:`renew_in_child` (idempotent: registered under one name)."""
    _fork.register("metric locks", after_in_child=renew_in_child)
