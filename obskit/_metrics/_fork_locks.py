"""After a fork: every lock of the metric definitions and their values made anew in the child.

A lock another thread of the parent held at the moment of ``fork()`` stays held in the child, where that
thread does not exist: the child's next use blocks for good. obskit's threads take metric locks all the
time (an export thread counting a failure in ``obskit_export_failures_total``, the OTLP push reading every
value), and under gunicorn ``--preload`` the workers are forked from a master in which they run; a worker
forked in that instant would hang on its first count of that series, on a request thread if the series is
the request's own. So the child renews them before anything else can use them: the registries' locks,
each instrument's, each prometheus-client metric's and each in-memory value's (multiprocess values keep
their data in files and are left alone).
"""

from __future__ import annotations

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


def _renew_values(child: Any) -> None:
    """The value locks of one prometheus-client child (a counter's or gauge's value, a histogram's sum and
    buckets, a summary's count and sum)."""
    for name in _VALUE_FIELDS:
        value = getattr(child, name, None)
        if value is not None and not getattr(value, "_multiprocess", False):
            _renew_lock(value)
    for bucket in getattr(child, "_buckets", None) or ():
        if not getattr(bucket, "_multiprocess", False):
            _renew_lock(bucket)


def _renew_metric(metric: Any) -> None:
    """A prometheus-client metric: its own lock (a labelled parent's) and every child's values."""
    _renew_lock(metric)
    children = getattr(metric, "_metrics", None)
    for child in list(children.values()) if isinstance(children, dict) else [metric]:
        _renew_values(child)


def renew_in_child() -> None:
    """The fork registry's child callback (see the module docstring)."""
    _instruments._lock = threading.RLock()
    _otel_api._lock = threading.RLock()
    _exposition._agg_lock = threading.Lock()
    for inst in _instruments.instruments():
        _renew_lock(inst)
        variants = getattr(inst, "_variants", None)  # an OpenTelemetry API instrument: one metric per key set
        metrics = list(variants.values()) if isinstance(variants, dict) else [getattr(inst, "_prom", None)]
        overflow = getattr(inst, "_overflow", None)
        for metric in [*metrics, overflow]:
            if metric is not None:
                _renew_metric(metric)


def install() -> None:
    """Register :func:`renew_in_child` (idempotent: registered under one name)."""
    _fork.register("metric locks", after_in_child=renew_in_child)
