"""The current span as an exemplar, cheaply: this runs on every observation made inside a span.

Reading the context variable directly skips three function layers of ``trace.get_current_span()``, and
the formatted ids are cached for the last span seen, so a span with many observations formats once.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as _otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation import _SPAN_KEY
from prometheus_client.samples import Exemplar

__all__ = ["current_exemplar", "current_span", "reset"]

_NONE: tuple[Any, Any] = (None, None)
_last: tuple[Any, Any] = _NONE  # (span, labels or None); replaced as a whole, so readers see a pair


def _span_via_api() -> Any:
    return trace.get_current_span()


def _make_getter() -> Any:
    runtime = getattr(_otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if var is None or not hasattr(var, "get"):
        return _span_via_api
    get = var.get

    def fast() -> Any:
        return get().get(_SPAN_KEY)
    return fast


_current_span = _make_getter()
#: The current span, or None outside any (read straight from the context variable where it can be).
current_span = _current_span


def current_exemplar(value: float) -> Exemplar | None:
    """An exemplar with ``trace_id``/``span_id`` of the current sampled span, or None outside one."""
    global _last
    span = _current_span()
    if span is None:
        return None
    last = _last
    if last[0] is span:
        labels = last[1]
    else:
        ctx = span.get_span_context()
        labels = None
        if ctx.is_valid and ctx.trace_flags.sampled:
            labels = {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
        _last = (span, labels)
    if labels is None:
        return None
    return Exemplar(labels, value, time.time())


def reset() -> None:
    """Drop the cached span (tests)."""
    global _last
    _last = _NONE
