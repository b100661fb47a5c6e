"""Server spans started without the SDK's per-span bookkeeping, for the one span every request makes.

``Tracer.start_span`` followed by ``Span.end`` costs some 25 us here, more than the rest of a server
integration's work per request: it builds a bounded list for events and another for links that a request's
span almost never uses, a ``BoundedAttributes`` that re-checks every value, a second object
(``_readable_span()``) just to hand the ended span to the processors, and it calls every processor's
``on_start``/``_on_ending`` even when they do nothing. :func:`start_span` makes the same span, an instance of
the SDK's own ``Span`` (so processors, exporters, ``record_exception``, ``set_status`` and everything else see
an SDK span), with the same ids, sampling decision, trace flags, resource, scope and limits, and skips only
that bookkeeping: events and links get their bounded lists on first use, and the ended span itself is what
the processors receive (it is a ``ReadableSpan``, read-only once ended).

It takes this path only where it can vouch for the result, and returns None otherwise so that the caller
starts the span through the SDK: an SDK ``Tracer``, enabled, whose sampler ignores attributes (stock
samplers) and adds none, span limits that bound no value's length, and an SDK whose ``Span`` holds exactly
the fields filled here (:func:`_fields_known`, checked once), so that a later SDK with another field falls
back instead of producing a span missing it.
"""

from __future__ import annotations

import logging
import threading
from time import time_ns
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, Tracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, StaticSampler
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags

__all__ = ["LeanSpan", "after_fork_in_child", "put", "start_span"]

_log = logging.getLogger("opentelemetry.sdk.trace")  # the SDK's own logger, for the SDK's own warnings
_UNSET = Status(StatusCode.UNSET)
# The lock of every lean span's attributes (the SDK's BoundedAttributes takes it around each change): one for
# all, as a lock is one more object per span for the garbage collector to track. Re-entrant: the SDK logs a
# warning while holding it (a full attribute set), and a logging handler may set another span's attribute.
_ATTRIBUTES_LOCK = threading.RLock()
_NOTHING: tuple[Any, ...] = ()  # events and links until the first is added
_FLAGS = {(s, r): TraceFlags((TraceFlags.SAMPLED if s else TraceFlags.DEFAULT)
                             | (TraceFlags.RANDOM_TRACE_ID if r else 0))
          for s in (False, True) for r in (False, True)}
# The fields the SDK's Span.__init__ (and ReadableSpan's) set, all of which start_span fills.
_SPAN_FIELDS = frozenset({
    "_name", "_context", "_kind", "_instrumentation_info", "_instrumentation_scope", "_parent", "_start_time",
    "_end_time", "_attributes", "_events", "_links", "_resource", "_status", "_sampler", "_trace_config",
    "_record_exception", "_set_status_on_exception", "_span_processor", "_limits", "_lock",
    "_record_end_metrics"})
_ATTRIBUTE_FIELDS = frozenset({"_dict", "maxlen", "dropped", "max_value_len", "_lock", "_immutable"})
# Processors whose on_start and _on_ending are the base class's no-ops.
_QUIET = (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)


def after_fork_in_child() -> None:
    """A thread of the parent may have held the shared attributes lock at the fork, which no thread of the
    child would ever release: reset it in place, so that the spans the child inherited and those it makes
    find it free (a lock per span only ever stranded the span that other thread was changing)."""
    reinit = getattr(_ATTRIBUTES_LOCK, "_at_fork_reinit", None)  # what logging and threading use
    if reinit is not None:
        reinit()
    else:  # pragma: no cover - an RLock without it: at least the spans the child makes get a free one
        globals()["_ATTRIBUTES_LOCK"] = threading.RLock()


class LeanSpan(SdkSpan):
    """The SDK's ``Span``, made by :func:`start_span`; it differs only in what it does not do."""

    _lean_processors: tuple[Any, ...] | None  # the processors to call on end; None: the SDK's multi-processor

    def _add_event(self, event: Any) -> None:
        if self._events is _NOTHING:
            self._events = BoundedList(self._limits.max_events)
        super()._add_event(event)

    def _add_link(self, link: trace.Link) -> None:
        if self._links is _NOTHING:
            self._links = BoundedList(self._limits.max_links)
        super()._add_link(link)

    def put(self, key: str, value: str | int) -> None:
        """``set_attribute`` for a str or int that obskit made (a route, a status): written as the SDK writes
        it (a key set again moves to the end), without re-checking the value; anything the SDK would warn
        about or drop for (an ended span, a full attribute set) goes through ``set_attribute``."""
        with self._lock:
            if self._end_time is None:
                held: Any = self._attributes
                found = held._dict
                if key in found:
                    del found[key]
                if held.maxlen is None or len(found) < held.maxlen:
                    found[key] = value
                    return
        self.set_attribute(key, value)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._end_time is not None:
                _log.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            self._attributes._immutable = True  # type: ignore[union-attr]
        if self._record_end_metrics:
            self._record_end_metrics()
        processors = self._lean_processors
        multi = self._span_processor
        if processors is not None and getattr(multi, "_span_processors", None) is processors:
            for processor in cast(tuple[Any, ...], processors):
                processor.on_end(self)
        else:  # the SDK's own way (a processor added since the start may want _on_ending)
            multi._on_ending(self)
            multi.on_end(self)


_fields_ok: bool | None = None


def _fields_known() -> bool:
    """Whether this SDK's Span and BoundedAttributes hold exactly the fields start_span fills."""
    global _fields_ok
    if _fields_ok is None:
        try:
            probe = LeanSpan("probe", trace.INVALID_SPAN_CONTEXT, limits=SpanLimits())
            _fields_ok = (set(vars(probe)) == _SPAN_FIELDS
                          and type(probe._attributes) is BoundedAttributes
                          and set(vars(probe._attributes)) == _ATTRIBUTE_FIELDS)
        except Exception:
            _fields_ok = False
    return _fields_ok


_plan: tuple[Any, tuple[Any, ...] | None, bool] = (None, None, False)


def _processors(multi: Any) -> tuple[tuple[Any, ...] | None, bool]:
    """For the provider's processor ``multi``: the processors to call on end directly (None: go through
    ``multi``) and whether any needs ``on_start``. Decided once per processor list."""
    global _plan
    listed = getattr(multi, "_span_processors", None)
    if _plan[0] is listed and listed is not None:
        return _plan[1], _plan[2]
    if type(listed) is not tuple or not all(isinstance(p, SpanProcessor) for p in listed):
        return None, True
    quiet = all(type(p).on_start in {c.on_start for c in _QUIET}
                and type(p)._on_ending in {c._on_ending for c in _QUIET} for p in listed)
    _plan = (listed, listed if quiet else None, not quiet)
    return _plan[1], _plan[2]


def _static_decision(sampler: Any, parent: trace.SpanContext | None) -> tuple[Any, Any] | None:
    """What the SDK's default sampler (``ParentBased`` over always-on/off delegates) or an always-on/off
    sampler decides, without its result objects: (decision, trace state), as ``StaticSampler`` returns them
    (the parent's trace state). None for any other sampler (ask it)."""
    delegate = sampler
    if type(sampler) is ParentBased:
        if parent is None:
            delegate = sampler._root
        elif parent.is_remote:
            delegate = (sampler._remote_parent_sampled if parent.trace_flags.sampled
                        else sampler._remote_parent_not_sampled)
        else:
            delegate = (sampler._local_parent_sampled if parent.trace_flags.sampled
                        else sampler._local_parent_not_sampled)
    if type(delegate) is not StaticSampler:
        return None
    return delegate._decision, (parent.trace_state if parent is not None else None)


def start_span(tracer: Any, name: str, kind: SpanKind, attributes: dict[str, Any],
               context: otel_context.Context | None) -> trace.Span | None:
    """A started span as ``tracer.start_span(name, context, kind, attributes)`` would make it, or None
    when this path cannot vouch for that (start it through the SDK then). ``attributes`` (str and int
    values, set by obskit) become the span's own dict; the caller must not reuse it."""
    if type(tracer) is not Tracer or not _fields_known() or not tracer._is_enabled():
        return None
    limits = tracer._span_limits
    if limits.max_span_attribute_length is not None or (limits.max_span_attributes is not None
                                                         and len(attributes) > limits.max_span_attributes):
        return None
    parent: trace.SpanContext | None = trace.get_current_span(context).get_span_context()
    ids = tracer.id_generator
    if parent is None or not parent.is_valid:
        parent = None
        trace_id = ids.generate_trace_id()
        random_id = ids.is_trace_id_random()
    else:
        trace_id = parent.trace_id
        random_id = parent.trace_flags.random_trace_id
    sampler = tracer.sampler
    decided = _static_decision(sampler, parent)
    if decided is not None:
        decision, trace_state = decided
    else:
        result = sampler.should_sample(context, trace_id, name, kind, None, ())
        if result.attributes:  # a sampler that adds attributes: let the SDK merge them
            return None
        decision, trace_state = result.decision, result.trace_state
    flags = _FLAGS[decision.is_sampled(), bool(random_id)]
    span_context = trace.SpanContext(trace_id, ids.generate_span_id(), False, flags, trace_state)
    record_end_metrics = tracer._tracer_metrics.start_span(parent, decision)
    if not decision.is_recording():
        return trace.NonRecordingSpan(span_context)
    # Fields assigned one by one, not through __dict__: the instance keeps them inline, without a dict
    # object of its own (one fewer object for the garbage collector per span and per attribute set).
    held: Any = BoundedAttributes.__new__(BoundedAttributes)
    held._dict = attributes
    held.maxlen = limits.max_span_attributes
    held.dropped = 0
    held.max_value_len = None
    held._lock = _ATTRIBUTES_LOCK
    held._immutable = False
    multi = tracer.span_processor
    on_end, on_start = _processors(multi)
    span: Any = object.__new__(LeanSpan)  # not the SDK's __init__: the fields are set below
    span._name = name
    span._context = span_context
    span._kind = kind
    span._instrumentation_info = tracer.instrumentation_info
    span._instrumentation_scope = tracer._instrumentation_scope
    span._parent = parent
    span._end_time = None
    span._attributes = held
    span._events = _NOTHING
    span._links = _NOTHING
    span._resource = tracer.resource
    span._status = _UNSET
    span._sampler = sampler
    span._trace_config = None
    span._record_exception = True
    span._set_status_on_exception = True
    span._span_processor = multi
    span._limits = limits
    span._lock = threading.Lock()
    span._record_end_metrics = record_end_metrics
    span._lean_processors = on_end
    span._start_time = time_ns()
    if on_start:
        multi.on_start(span, parent_context=context)
    return cast(trace.Span, span)


def put(span: trace.Span, key: str, value: str | int) -> None:
    """``span.set_attribute(key, value)`` for a value obskit made; the lean span's cheaper write."""
    if type(span) is LeanSpan:
        span.put(key, value)
    else:
        span.set_attribute(key, value)
