"""The OTLP export requests written straight to protobuf wire format, for speed.

The SDK's encoders (``encode_spans``, ``encode_logs``, ``encode_metrics``) build a protobuf message object per
span, attribute and value in Python, then serialize it: ~48 µs for a typical HTTP server span, more than a web
framework spends on the request. Here the bytes are appended to a ``bytearray`` with precomputed tags; an
attribute whose value is a short str or an int (method, route, status, server address repeat on every request)
is encoded once and kept in a bounded cache, and a resource's and a scope's encodings are kept per object
(both are immutable in the SDK; a changed resource is a new object).

The bytes are exactly the SDK's ``SerializeToString()`` of its own request: same fields, same grouping
(resource, then scope, by equality, in first-seen order), same rules for empty and absent values, fields
in number order as upb writes them. Anything left to the SDK (an int outside int64, a lone surrogate, a
value of an unknown type: the SDK drops such an attribute with a logged error, or fails the batch) and
any fault in this module falls back to the SDK's encoder for that batch: a batch is never lost here.
``tests/test_wire.py`` checks the equality on generated spans, log records and metrics (Sum, Gauge and
Histogram: an ExponentialHistogram is left to the SDK's encoder).

Over HTTP obskit's own exporters send these bytes (``_otlp_http``; :func:`http_exporter_class`, the SDK's
sending them, where that module cannot be used); the gRPC ones parse them into the request message in C
(:func:`grpc_exporter_class`), still faster than building it in Python.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes

from . import _bounds, _redact
from ._redact import EXCEPTION_KEYS, REDACTED, Redactor
from ._safe import report_internal_error

__all__ = [
    "Unsupported",
    "clean_spans",
    "count_points",
    "encode_logs",
    "encode_metrics",
    "encode_spans",
    "grpc_exporter_class",
    "http_exporter_class",
    "http_post",
    "http_send",
    "logs_request",
    "metrics_request",
    "request_of",
    "spans_request",
]

#: Entries in the key/value cache before it is emptied and refilled (never unbounded).
CACHE_MAX = 4096
#: Longest key + value (characters) whose encoding is cached: the repeating ones are short.
CACHE_CHARS = 256
_OBJECT_CACHE_MAX = 64


class Unsupported(Exception):
    """A value the fast encoder leaves to the SDK's encoder (not a fault: nothing is reported)."""


_pack_q = struct.Struct("<Q").pack
_pack_i = struct.Struct("<I").pack
_pack_d = struct.Struct("<d").pack
_SMALL = [bytes((i,)) for i in range(0x80)]
_U64 = 0xFFFFFFFFFFFFFFFF
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _varint(n: int) -> bytes:
    """Unsigned varint of ``n >= 0``."""
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int64(v: int) -> bytes:
    if _I64_MIN <= v <= _I64_MAX:
        return _varint(v & _U64)
    raise Unsupported("int outside int64")


def _int32(v: int) -> bytes:
    if -(1 << 31) <= v < (1 << 31):
        return _varint(v & _U64)
    raise Unsupported("int outside int32")


def _uint32(v: int) -> bytes:
    if 0 <= v < (1 << 32):
        return _varint(v)
    raise Unsupported("count outside uint32")


def _fixed64(tag: bytes, t: int | None) -> bytes:
    """A fixed64 field (a time), absent when 0 or unset."""
    return tag + _pack_q(t) if t else b""


def _text(tag: bytes, s: str) -> bytes:
    """A length-delimited string field (the caller skips empty strings: proto3 does not write them)."""
    b = s.encode()
    return tag + _varint(len(b)) + b


# --- AnyValue and KeyValue ------------------------------------------------------------------------------

def _any(v: Any) -> bytes:
    """The body of an ``AnyValue``, as the SDK's ``_encode_value`` builds it (checks in the same order)."""
    t = type(v)
    if t is str:
        b: bytes = v.encode()
        return b"\x0a" + _varint(len(b)) + b
    if t is bool:
        return b"\x10\x01" if v else b"\x10\x00"
    if t is int:
        return b"\x18" + _int64(v)
    if t is float:
        return b"\x21" + _pack_d(v)
    if v is None:
        return b""
    if t is tuple or t is list:
        return _array(v)
    if t is bytes:
        return b"\x3a" + _varint(len(v)) + bytes(v)
    return _any_other(v)


def _array(v: Any) -> bytes:
    parts = []
    for item in v:
        a = _any(item)
        parts.append(b"\x0a" + _varint(len(a)) + a)
    body = b"".join(parts)
    return b"\x2a" + _varint(len(body)) + body


def _any_other(v: Any) -> bytes:
    if isinstance(v, bool):
        return b"\x10\x01" if v else b"\x10\x00"
    if isinstance(v, str):
        b = str.encode(v)
        return b"\x0a" + _varint(len(b)) + b
    if isinstance(v, int):
        return b"\x18" + _int64(int(v))
    if isinstance(v, float):
        return b"\x21" + _pack_d(v)
    if isinstance(v, bytes):
        return b"\x3a" + _varint(len(v)) + bytes(v)
    if isinstance(v, Sequence):
        return _array(v)
    if isinstance(v, Mapping):
        body = b"".join([b"\x0a" + _kv(str(k), x) for k, x in v.items()])
        return b"\x32" + _varint(len(body)) + body
    raise Unsupported(f"value of type {type(v).__name__}")


def _kv(key: Any, value: Any) -> bytes:
    """A ``KeyValue``, length prefixed (the caller writes the tag). Its value is always present."""
    if not isinstance(key, str):
        raise Unsupported("non-str key")
    a = _any(value)
    body = (_text(b"\x0a", key) if key else b"") + b"\x12" + _varint(len(a)) + a
    return _varint(len(body)) + body


_kv_cache: dict[tuple[Any, ...], bytes] = {}
_key_cache: dict[str, bytes] = {}


def _kv_scalar(key: Any, value: Any, t: type) -> bytes:
    """``_kv`` for a str or int value, with the key's field from its own cache: a key repeats even where
    its value does not (a client port, a request id)."""
    kf = _key_cache.get(key)
    if kf is None:
        if type(key) is not str:
            return _kv(key, value)
        kf = _text(b"\x0a", key) if key else b""
        if len(key) <= CACHE_CHARS:
            if len(_key_cache) >= CACHE_MAX:
                _key_cache.clear()
            _key_cache[key] = kf
    if t is int:
        a = b"\x18" + _int64(value)
    else:
        b = value.encode()
        a = b"\x0a" + _varint(len(b)) + b
    body = kf + b"\x12" + _varint(len(a)) + a
    return _varint(len(body)) + body


def _items(attrs: Mapping[str, Any]) -> Any:
    """The pairs of ``attrs`` in its order. The SDK's ``BoundedAttributes`` keeps them in a plain dict that
    it iterates itself: reading that skips a Python-level ``__getitem__`` per key."""
    if type(attrs) is BoundedAttributes:
        d = getattr(attrs, "_dict", None)
        if type(d) is dict:
            return d.items()
    return attrs.items()


def _attributes(tag: bytes, attrs: Mapping[str, Any]) -> bytes:
    """Every attribute as a ``KeyValue`` field ``tag``; short str, int and bool pairs come from the cache."""
    cache = _kv_cache
    get = cache.get
    out = bytearray()
    for k, v in _items(attrs):
        t = type(v)
        if t is str or t is int:
            kv = get((k, v))
            if kv is None:
                kv = _kv_scalar(k, v, t)
                if type(k) is str and (t is int or len(k) + len(v) <= CACHE_CHARS):
                    if len(cache) >= CACHE_MAX:
                        cache.clear()
                    cache[(k, v)] = kv
        elif t is bool:
            kv = get((k, v, t))  # True == 1: a bool has a key of its own
            if kv is None:
                kv = _kv(k, v)
                if type(k) is str:
                    if len(cache) >= CACHE_MAX:
                        cache.clear()
                    cache[(k, v, t)] = kv
        else:
            kv = _kv(k, v)
        out += tag
        out += kv
    return bytes(out)


# --- resources and scopes, cached per object --------------------------------------------------------------

_object_cache: dict[int, tuple[Any, bytes, bytes]] = {}


def _cached(obj: Any, build: Callable[[Any], tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    hit = _object_cache.get(id(obj))
    if hit is not None and hit[0] is obj:  # the object is held, so its id is not reused while cached
        return hit[1], hit[2]
    head, tail = build(obj)
    if len(_object_cache) >= _OBJECT_CACHE_MAX:
        _object_cache.clear()
    _object_cache[id(obj)] = (obj, head, tail)
    return head, tail


def _resource_parts(resource: Any) -> tuple[bytes, bytes]:
    """(the ``resource`` field, the ``schema_url`` field) of a ResourceSpans/ResourceLogs. The SDK writes
    neither the dropped count nor entity refs of a resource."""
    attrs = resource.attributes
    body = _attributes(b"\x0a", attrs) if attrs else b""
    schema = resource.schema_url
    return b"\x0a" + _varint(len(body)) + body, _text(b"\x1a", schema) if schema else b""


def _scope_parts(scope: Any) -> tuple[bytes, bytes]:
    """(the ``scope`` field, the ``schema_url`` field) of a ScopeSpans/ScopeLogs; an absent scope is an
    empty message, as the SDK writes it."""
    if scope is None:
        return b"\x0a\x00", b""
    name, version, attrs, schema = scope.name, scope.version, scope.attributes, scope.schema_url
    body = (_text(b"\x0a", name) if name else b"") + (_text(b"\x12", version) if version else b"") + (
        _attributes(b"\x1a", attrs) if attrs else b"")
    return b"\x0a" + _varint(len(body)) + body, _text(b"\x1a", schema) if schema else b""


# --- grouping, exactly as the SDK's nested defaultdicts ----------------------------------------------------

class _Canon:
    """Maps each object to the first one equal to it, as a dict keyed by them would. Objects are hashed
    only once a second distinct one appears (a Resource's hash JSON-dumps its attributes)."""

    __slots__ = ("by_eq", "by_id")

    def __init__(self) -> None:
        self.by_id: dict[int, Any] = {}
        self.by_eq: dict[Any, Any] | None = None

    def get(self, obj: Any) -> Any:
        by_id = self.by_id
        if id(obj) in by_id:
            return by_id[id(obj)]
        if not by_id:
            c = obj
        else:
            if self.by_eq is None:
                first = next(iter(by_id.values()))
                self.by_eq = {first: first}
            c = self.by_eq.setdefault(obj, obj)
        by_id[id(obj)] = c
        return c


Groups = list[tuple[Any, list[tuple[Any, list[Any]]]]]


def _group(items: Sequence[Any]) -> Groups:
    """[(resource, [(scope, [item, ...]), ...]), ...]: the SDK groups by resource, then by
    ``instrumentation_scope or None``, in dicts keyed by them (so by equality, first seen first)."""
    if not items:
        return []
    first = items[0]
    r0, s0 = first.resource, first.instrumentation_scope or None
    for item in items:  # the usual batch: one resource object, one scope object
        if item.resource is not r0 or (item.instrumentation_scope or None) is not s0:
            break
    else:
        return [(r0, [(s0, list(items))])]
    resources = _Canon()
    groups: dict[int, tuple[Any, _Canon, dict[int, tuple[Any, list[Any]]]]] = {}
    for item in items:
        r = resources.get(item.resource)
        g = groups.get(id(r))
        if g is None:
            g = groups[id(r)] = (r, _Canon(), {})
        sc = g[1].get(item.instrumentation_scope or None)
        sg = g[2].get(id(sc))
        if sg is None:
            sg = g[2][id(sc)] = (sc, [])
        sg[1].append(item)
    return [(r, list(scopes.values())) for r, _, scopes in groups.values()]


def _request(items: Sequence[Any], encode_item: Callable[[Any], bytes]) -> bytes:
    """The export request: ResourceX (field 1) > ScopeX (field 2) > items (field 2); the three levels share
    their field numbers in traces, logs and metrics."""
    return _grouped_request(_group(items), encode_item)


def _grouped_request(groups: Groups, encode_item: Callable[[Any], bytes]) -> bytes:
    """:func:`_request` for items already grouped by resource, then scope."""
    blocks = []
    for resource, scopes in groups:
        r_head, r_tail = _cached(resource, _resource_parts)
        parts = [r_head]
        for scope, members in scopes:
            s_head, s_tail = (b"\x0a\x00", b"") if scope is None else _cached(scope, _scope_parts)
            inner = [s_head]
            for member in members:
                b = encode_item(member)
                inner.append(b"\x12" + _varint(len(b)))
                inner.append(b)
            inner.append(s_tail)
            body = b"".join(inner)
            parts.append(b"\x12" + _varint(len(body)))
            parts.append(body)
        parts.append(r_tail)
        body = b"".join(parts)
        blocks.append(b"\x0a" + _varint(len(body)))
        blocks.append(body)
    return b"".join(blocks)


# --- spans ------------------------------------------------------------------------------------------------

def _kinds() -> dict[Any, bytes]:
    from opentelemetry.trace import SpanKind

    numbers = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4,
               SpanKind.CONSUMER: 5}
    return {kind: b"\x30" + _SMALL[n] for kind, n in numbers.items()}


_KIND: dict[Any, bytes] = {}
# flags (field 16, fixed32): SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, with IS_REMOTE when the context is remote
_SPAN_FLAGS = (b"\x85\x01" + _pack_i(0x100), b"\x85\x01" + _pack_i(0x300))
_LINK_FLAGS = (b"\x35" + _pack_i(0x100), b"\x35" + _pack_i(0x300))


_plain_spans: dict[type, bool] = {}


def _is_plain(cls: type) -> bool:
    """Whether ``cls`` reads attributes, events and links as the SDK's ``ReadableSpan`` does: from its own
    fields, through properties that only wrap (a read-only view) or copy (a tuple) them."""
    from opentelemetry.sdk.trace import ReadableSpan

    plain = _plain_spans.get(cls)
    if plain is None:
        plain = issubclass(cls, ReadableSpan) and all(getattr(cls, name, None) is getattr(ReadableSpan, name)
                                                      for name in ("attributes", "events", "links"))
        if len(_plain_spans) >= _OBJECT_CACHE_MAX:
            _plain_spans.clear()
        _plain_spans[cls] = plain
    return plain


def _span(sp: Any, red: Redactor | None = None) -> bytes:
    """One ``Span`` message, field by field as the SDK's ``_encode_span``; with ``red``, its name and
    attributes redacted and bounded on the way (:func:`clean_span`)."""
    if _plain_spans.get(type(sp)) or _is_plain(type(sp)):
        attrs, events, links = sp._attributes, sp._events, sp._links  # what the properties wrap or copy
    else:
        attrs, events, links = sp.attributes, sp.events, sp.links
    status = sp.status
    if red is not None and (events or links or (status is not None and status.description)):
        raise _Slow
    ctx = sp.get_span_context()
    out = bytearray(b"\x0a\x10")
    out += ctx.trace_id.to_bytes(16, "big")
    out += b"\x12\x08"
    out += ctx.span_id.to_bytes(8, "big")
    state = ctx.trace_state
    if state is not None:
        text = ",".join([f"{key}={value}" for key, value in state.items()])
        if text:
            out += _text(b"\x1a", text)
    parent = sp.parent
    if parent:
        out += b"\x22\x08"
        out += parent.span_id.to_bytes(8, "big")
    name = sp.name
    if name:
        out += _text(b"\x2a", name) if red is None else _clean_name(name, red)
    out += _KIND[sp.kind]
    out += _fixed64(b"\x39", sp.start_time)
    out += _fixed64(b"\x41", sp.end_time)
    if attrs:
        out += _attributes(b"\x4a", attrs) if red is None else _clean_attributes(attrs, red)
    n = sp.dropped_attributes
    if n:
        out += b"\x50" + _uint32(n)
    if events:
        out += _messages(b"\x5a", events, _event)
    n = sp.dropped_events
    if n:
        out += b"\x60" + _uint32(n)
    if links:
        out += _messages(b"\x6a", links, _link)
    n = sp.dropped_links
    if n:
        out += b"\x70" + _uint32(n)
    if status is not None:
        message, code = status.description, status.status_code.value
        body = (_text(b"\x12", message) if message else b"") + (b"\x18" + _int32(code) if code else b"")
        out += b"\x7a" + _varint(len(body)) + body
    out += _SPAN_FLAGS[bool(parent and parent.is_remote)]
    return bytes(out)


def _messages(tag: bytes, items: Any, encode: Callable[[Any], bytes]) -> bytes:
    """A repeated message field."""
    parts = []
    for item in items:
        body = encode(item)
        parts.append(tag + _varint(len(body)))
        parts.append(body)
    return b"".join(parts)


def _event(event: Any) -> bytes:
    name, attrs, n = event.name, event.attributes, event.dropped_attributes
    return b"".join((
        _fixed64(b"\x09", event.timestamp),
        _text(b"\x12", name) if name else b"",
        _attributes(b"\x1a", attrs) if attrs else b"",
        b"\x20" + _uint32(n) if n else b"",
    ))


def _link(link: Any) -> bytes:
    """A ``Link``: the SDK writes neither its trace_state nor its context's trace flags."""
    ctx, attrs, n = link.context, link.attributes, link.dropped_attributes
    return b"".join((
        b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + ctx.span_id.to_bytes(8, "big"),
        _attributes(b"\x22", attrs) if attrs else b"",
        b"\x28" + _uint32(n) if n else b"",
        _LINK_FLAGS[bool(ctx and ctx.is_remote)],
    ))


def encode_spans(spans: Sequence[Any]) -> bytes:
    """``ExportTraceServiceRequest`` bytes of ``spans`` (raises :class:`Unsupported` or on a fault)."""
    if not _KIND:
        _KIND.update(_kinds())
    return _request(spans, _span)


# --- spans redacted and bounded while they are encoded --------------------------------------------------

class _Slow(Exception):
    """A span with events, links or a status description: cleaned by the caller, then encoded plainly."""


_clean_cache: dict[tuple[Any, ...], bytes] = {}
_clean_names: dict[str, bytes] = {}
_clean_owner: list[Redactor | None] = [None]


def _clean_value(key: str, value: Any, red: Redactor) -> Any:
    """What redaction, then the size bound, make of one attribute (as ``Redactor.redact_attributes`` and
    ``_bounds.span_size`` do, in that order)."""
    if red.is_sensitive(key):
        return REDACTED
    if type(value) is str:
        if key not in EXCEPTION_KEYS or red.scrub_exceptions:
            value = red.scrub_text(value)
        return _bounds.cut(value)
    return value


def _clean_attributes(attrs: Mapping[str, Any], red: Redactor) -> bytes:
    """Span attributes as ``_attributes`` writes them, each one redacted and bounded first. A short str,
    int or bool pair is cleaned and encoded once per redactor and then read from the cache, so the
    repeating attributes of a request cost one lookup; anything else is cleaned here each time."""
    cache = _clean_cache
    if _clean_owner[0] is not red:  # another init(): other keys may be sensitive now
        cache.clear()
        _clean_names.clear()
        _clean_owner[0] = red
    get = cache.get
    out = bytearray()
    for k, v in _items(attrs):
        t = type(v)
        if t is str or t is int or t is bool:
            ck = (k, v, t)
            kv = get(ck)
            if kv is None:
                if type(k) is not str:
                    raise Unsupported("non-str key")
                kv = _kv(k, _clean_value(k, v, red))
                if t is not str or len(k) + len(v) <= CACHE_CHARS:
                    if len(cache) >= CACHE_MAX:
                        cache.clear()
                    cache[ck] = kv
        elif t is float or v is None:
            kv = _kv(k, REDACTED if red.is_sensitive(k) else v)
        else:
            raise _Slow  # a sequence or another type: redaction walks it (Redactor.redact_attributes)
        out += b"\x4a"
        out += kv
    return bytes(out)


def _clean_name(name: str, red: Redactor) -> bytes:
    """The span's name field, scrubbed of credentials in text and bounded (cached for short names)."""
    field = _clean_names.get(name)
    if field is None:
        field = _text(b"\x2a", _bounds.cut(red.scrub_text(name)))
        if len(name) <= CACHE_CHARS:
            if len(_clean_names) >= CACHE_MAX:
                _clean_names.clear()
            _clean_names[name] = field
    return field


def clean_spans(spans: Sequence[Any], clean_in_place: Callable[[Any], None]) -> list[bytes]:
    """Every span's ``Span`` message, redacted (by the runtime's redactor) and bounded as it is encoded:
    one pass instead of a redacting pass, a bounding pass and an encoding pass over the same attributes.

    A span this cannot clean while encoding (events, links, a status description, an attribute holding a
    sequence) is cleaned in place by ``clean_in_place`` first, then encoded as it is. Raises
    :class:`Unsupported` where :func:`encode_spans` would; the spans cleaned in place by then are marked
    (``_obskit_cleaned``) so that they are not cleaned twice.
    """
    if not _KIND:
        _KIND.update(_kinds())
    red = _redact.current()
    out = []
    for sp in spans:
        try:
            body = _span(sp, red)
        except _Slow:
            clean_in_place(sp)
            body = _span(sp)
        out.append(body)
    return out


def request_of(spans: Sequence[Any], bodies: Sequence[bytes]) -> bytes:
    """The ``ExportTraceServiceRequest`` holding ``spans`` whose messages are ``bodies`` (same order)."""
    by_id = {id(sp): body for sp, body in zip(spans, bodies, strict=True)}
    return _request(spans, lambda sp: by_id[id(sp)])


# --- log records --------------------------------------------------------------------------------------------

def _log(record: Any) -> bytes:
    """One ``LogRecord`` message, field by field as the SDK's ``_encode_log``."""
    lr = record.log_record
    out = bytearray()
    out += _fixed64(b"\x09", lr.timestamp)
    severity = getattr(lr.severity_number, "value", None)
    if severity:
        out += b"\x10" + _int32(severity)
    text = lr.severity_text
    if text:
        out += _text(b"\x1a", text)
    body = _any(lr.body)  # always present, empty for None
    out += b"\x2a" + _varint(len(body))
    out += body
    attrs = lr.attributes
    if attrs:
        out += _attributes(b"\x32", attrs)
    n = record.dropped_attributes
    if n:
        out += b"\x38" + _uint32(n)
    flags = int(lr.trace_flags)
    if flags:
        out += b"\x45" + _pack_i(flags)
    trace_id = lr.trace_id
    if trace_id != 0:
        out += b"\x4a\x10" + trace_id.to_bytes(16, "big")
    span_id = lr.span_id
    if span_id != 0:
        out += b"\x52\x08" + span_id.to_bytes(8, "big")
    out += _fixed64(b"\x59", lr.observed_timestamp)
    name = lr.event_name
    if name:
        out += _text(b"\x62", name)
    return bytes(out)


def encode_logs(records: Sequence[Any]) -> bytes:
    """``ExportLogsServiceRequest`` bytes of ``records`` (raises :class:`Unsupported` or on a fault)."""
    return _request(records, _log)


# --- metrics ------------------------------------------------------------------------------------------------

_pack_q_signed = struct.Struct("<q").pack


def _time(tag: bytes, t: Any) -> bytes:
    """A fixed64 time field: absent when None or 0 (as the SDK leaves it unset or proto3 skips it)."""
    if t is None:
        return b""
    if type(t) is not int or not 0 <= t <= _U64:
        raise Unsupported("time not a uint64")
    return tag + _pack_q(t) if t else b""


def _double(v: Any) -> bytes:
    if type(v) is float or type(v) is int:
        return _pack_d(v)
    raise Unsupported("value not a float")


def _number(double_tag: bytes, int_tag: bytes, v: Any) -> bytes:
    """A number's ``as_int`` (sfixed64) or ``as_double`` field, as the SDK chooses (an int is ``as_int``).
    A oneof member: written even when 0."""
    t = type(v)
    if t is float:
        return double_tag + _pack_d(v)
    if t is int:
        if _I64_MIN <= v <= _I64_MAX:
            return int_tag + _pack_q_signed(v)
        raise Unsupported("int outside int64")
    raise Unsupported(f"number of type {t.__name__}")  # a bool, a numpy scalar: the SDK decides


def _exemplar(ex: Any) -> bytes:
    """One ``Exemplar``: time (2), as_double (3), span_id (4), trace_id (5), as_int (6), filtered attributes
    (7). The ids only when both are set, as the SDK's ``_encode_exemplars``."""
    span_id, trace_id, attrs = ex.span_id, ex.trace_id, ex.filtered_attributes
    ids = b""
    if span_id is not None and trace_id is not None:
        if type(span_id) is not int or type(trace_id) is not int or not (
                0 <= span_id < 1 << 64 and 0 <= trace_id < 1 << 128):
            raise Unsupported("exemplar id")
        ids = b"\x22\x08" + span_id.to_bytes(8, "big") + b"\x2a\x10" + trace_id.to_bytes(16, "big")
    value = _number(b"\x19", b"\x31", ex.value)
    return b"".join((
        _time(b"\x11", ex.time_unix_nano),
        value if value[0] == 0x19 else b"",
        ids,
        value if value[0] == 0x31 else b"",
        _attributes(b"\x3a", attrs) if attrs else b"",
    ))


def _number_point(point: Any, with_start: bool) -> bytes:
    """A ``NumberDataPoint``: start (2, not for a gauge), time (3), as_double (4), exemplars (5), as_int (6),
    attributes (7)."""
    value = _number(b"\x21", b"\x31", point.value)
    attrs = point.attributes
    return b"".join((
        _time(b"\x11", point.start_time_unix_nano) if with_start else b"",
        _time(b"\x19", point.time_unix_nano),
        value if value[0] == 0x21 else b"",
        _messages(b"\x2a", point.exemplars or (), _exemplar),
        value if value[0] == 0x31 else b"",
        _attributes(b"\x3a", attrs) if attrs else b"",
    ))


def _packed(tag: bytes, values: Any, pack: Callable[[Any], bytes]) -> bytes:
    if not values:
        return b""
    body = b"".join([pack(v) for v in values])
    return tag + _varint(len(body)) + body


def _count(n: Any) -> bytes:
    if type(n) is not int or not 0 <= n <= _U64:
        raise Unsupported("count not a uint64")
    return _pack_q(n)


def _histogram_point(point: Any) -> bytes:
    """A ``HistogramDataPoint``: start (2), time (3), count (4), sum (5, optional), bucket counts (6) and
    explicit bounds (7) packed, exemplars (8), attributes (9), min (11) and max (12) when set."""
    count, total, lo, hi, attrs = point.count, point.sum, point.min, point.max, point.attributes
    return b"".join((
        _time(b"\x11", point.start_time_unix_nano),
        _time(b"\x19", point.time_unix_nano),
        b"\x21" + _count(count) if count else b"",
        b"" if total is None else b"\x29" + _double(total),
        _packed(b"\x32", point.bucket_counts, _count),
        _packed(b"\x3a", point.explicit_bounds, _double),
        _messages(b"\x42", point.exemplars or (), _exemplar),
        _attributes(b"\x4a", attrs) if attrs else b"",
        b"" if lo is None else b"\x59" + _double(lo),
        b"" if hi is None else b"\x61" + _double(hi),
    ))


def _temporality(t: Any) -> bytes:
    if not isinstance(t, int) or isinstance(t, bool):
        raise Unsupported("temporality not an int")
    n = int(t)
    return b"\x10" + _int32(n) if n else b""


def _metric(metric: Any) -> bytes:
    """One ``Metric``: name (1), description (2), unit (3), then gauge (5), sum (7) or histogram (9), each
    absent when it has no data point (the SDK sets them only while appending points)."""
    from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum

    out = bytearray()
    for tag, text in ((b"\x0a", metric.name), (b"\x12", metric.description), (b"\x1a", metric.unit)):
        if text is None:
            continue
        if type(text) is not str:
            raise Unsupported("metric text not a str")
        if text:
            out += _text(tag, text)
    data = metric.data
    points = data.data_points
    if isinstance(data, Gauge):  # the SDK's order of checks
        if points:
            body = _messages(b"\x0a", points, lambda p: _number_point(p, False))
            out += b"\x2a" + _varint(len(body)) + body
    elif isinstance(data, Histogram):
        if points:
            body = _messages(b"\x0a", points, _histogram_point) + _temporality(data.aggregation_temporality)
            out += b"\x4a" + _varint(len(body)) + body
    elif isinstance(data, Sum):
        if points:
            monotonic = data.is_monotonic
            if type(monotonic) is not bool:
                raise Unsupported("is_monotonic not a bool")
            body = b"".join((_messages(b"\x0a", points, lambda p: _number_point(p, True)),
                             _temporality(data.aggregation_temporality), b"\x18\x01" if monotonic else b""))
            out += b"\x3a" + _varint(len(body)) + body
    else:
        raise Unsupported(f"metric data {type(data).__name__}")  # ExponentialHistogram: the SDK's encoder
    return bytes(out)


def encode_metrics(data: Any) -> bytes:
    """``ExportMetricsServiceRequest`` bytes of the SDK's ``MetricsData`` (raises :class:`Unsupported` or on a
    fault). Grouped as the SDK's ``encode_metrics`` does, in dicts: an equal resource later in the batch
    replaces the earlier one's scopes (kept in the first one's place), an equal scope (name, version, schema)
    the earlier one's metrics and its scope message."""
    by_resource: dict[Any, dict[Any, tuple[Any, Any]]] = {}
    for rm in data.resource_metrics:
        scopes: dict[Any, tuple[Any, Any]] = {}
        by_resource[rm.resource] = scopes
        for sm in rm.scope_metrics:
            if sm.scope is None:
                raise Unsupported("no scope")  # the SDK's encoder fails the batch
            scopes[sm.scope] = (sm.scope, sm.metrics)
    groups = [(resource, [(scope, list(metrics)) for scope, metrics in scopes.values()])
              for resource, scopes in by_resource.items()]
    return _grouped_request(groups, _metric)


def count_points(data: Any) -> int:
    """The data points in ``data`` (what the SDK's exporter metrics count per export)."""
    return sum(len(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics)


# --- with the SDK's encoder behind them -------------------------------------------------------------------

def _fast_or_sdk(fast: Callable[[Any], bytes], sdk: Callable[[Any], bytes], batch: Any, what: str) -> bytes:
    try:
        return fast(batch)
    except (Unsupported, UnicodeEncodeError):
        pass  # the SDK's encoder decides: it drops that attribute with a logged error, or fails the batch
    except Exception as exc:
        report_internal_error(f"fast OTLP {what} encoder", exc)
    return sdk(batch)


def _sdk_spans(spans: Sequence[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk

    return sdk(spans).SerializePartialToString()  # type: ignore[no-any-return]


def _sdk_logs(records: Sequence[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as sdk

    return sdk(records).SerializeToString()  # type: ignore[no-any-return]


def _sdk_metrics(data: Any) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as sdk

    return sdk(data).SerializeToString()  # type: ignore[no-any-return]


def spans_request(spans: Sequence[Any]) -> bytes:
    """The request bytes for ``spans``: fast, or the SDK's encoder's when the fast one declines or fails.
    Raises only where the SDK's encoder raises."""
    return _fast_or_sdk(encode_spans, _sdk_spans, spans, "span")


def logs_request(records: Sequence[Any]) -> bytes:
    """The request bytes for ``records``, as :func:`spans_request`."""
    return _fast_or_sdk(encode_logs, _sdk_logs, records, "log")


def metrics_request(data: Any) -> bytes:
    """The request bytes for ``data`` (``MetricsData``), as :func:`spans_request`: an exponential histogram
    or a value the fast encoder declines is encoded by the SDK's encoder."""
    return _fast_or_sdk(encode_metrics, _sdk_metrics, data, "metric")


# --- the exporters that send them ---------------------------------------------------------------------------

_HTTP_STATE = ("_shutdown", "_metrics", "_max_request_size", "_client")
_HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"  # the SDK's semconv constant, not imported


def http_send(exporter: Any, batch: Sequence[Any], encode: Callable[[Sequence[Any]], bytes], what: str,
              result_type: Any, logger: logging.Logger, too_large: type[Exception]) -> Any:
    """The SDK 1.45 HTTP exporters' ``export``, with the request encoded by ``encode``: shutdown check,
    its metrics, the size limit, its client, the result mapping and its log lines, unchanged. Serves the
    SDK's exporters (the fallback below) and obskit's (``_otlp_http``), which hold the same four fields
    (``_HTTP_STATE``); ``too_large`` is the error class each reports an oversized request with."""
    if exporter._shutdown:
        logger.warning("Exporter already shutdown, ignoring batch")
        return result_type.FAILURE
    with exporter._metrics.export_operation(len(batch)) as result:
        try:
            data = encode(batch)
        except Exception as error:
            logger.error("Failed to encode %s batch: %s", what, error)
            result.error = error
            return result_type.FAILURE
        return http_post(exporter, data, what, result, result_type, logger, too_large)


def http_post(exporter: Any, data: bytes, what: str, result: Any, result_type: Any, logger: logging.Logger,
              too_large: type[Exception]) -> Any:
    """The size limit (on the request before compression; 0 or less: none), then the request, inside the
    exporter metrics' operation (``result``), as :func:`http_send` does it."""
    limit = exporter._max_request_size
    if 0 < limit < len(data):
        logger.warning("Dropping %s batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                       what, len(data), limit)
        result.error = too_large(
            f"Serialized {what} request size {len(data)} bytes exceeds max_request_size {limit} bytes.")
        return result_type.FAILURE
    sent = exporter._client.export(data)
    if not sent.success:
        result.error = sent.error
        result.error_attrs = (
            {_HTTP_RESPONSE_STATUS_CODE: sent.status_code} if sent.status_code is not None else None)
        return result_type.FAILURE
    return result_type.SUCCESS


def _http_export(exporter: Any, batch: Sequence[Any], encode: Callable[[Sequence[Any]], bytes], what: str,
                 result_type: Any, logger: logging.Logger) -> Any:
    """:func:`http_send` for the SDK's own exporter objects, reporting the SDK's error class."""
    from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError

    return http_send(exporter, batch, encode, what, result_type, logger, RequestPayloadTooLargeError)


def _http_fast_ready() -> bool:
    try:
        from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError  # noqa: F401
    except ImportError:
        return False
    return True


_DOC = "The SDK's exporter, encoding with obskit's wire format encoder (obskit._runtime._wire)."


@functools.cache
def http_exporter_class(signal: str) -> type[Any]:
    """The SDK's OTLP/HTTP exporter for ``signal`` ("traces" or "logs"), sending this module's bytes. Where
    the SDK's private parts it relies on are missing (another SDK version), it is the SDK's own export."""
    base: Any
    result_type: Any
    encode: Callable[[Sequence[Any]], bytes]
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as base
        from opentelemetry.sdk.trace.export import SpanExportResult as result_type

        encode, what = spans_request, "span"
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as base
        from opentelemetry.sdk._logs.export import LogRecordExportResult as result_type

        encode, what = logs_request, "logs"
    logger = logging.getLogger(base.__module__)  # the SDK's: its filters and levels apply
    ready = _http_fast_ready()

    def export(self: Any, batch: Sequence[Any]) -> Any:
        if not (ready and all(hasattr(self, a) for a in _HTTP_STATE)):
            return base.export(self, batch)
        return _http_export(self, batch, encode, what, result_type, logger)

    def export_encoded(self: Any, batch: Sequence[Any], data: bytes) -> Any:
        """Export ``batch`` whose request is already encoded (:func:`clean_spans`, :func:`request_of`)."""
        if not (ready and all(hasattr(self, a) for a in _HTTP_STATE)):
            return base.export(self, batch)
        return _http_export(self, batch, lambda _: data, what, result_type, logger)

    return type(f"Fast{base.__name__}", (base,), {"export": export, "export_encoded": export_encoded,
                                                  "__module__": __name__, "__doc__": _DOC})


@functools.cache
def grpc_exporter_class(signal: str) -> type[Any]:
    """The SDK's OTLP/gRPC exporter for ``signal`` ("traces" or "logs"), its request parsed (in C) from this
    module's bytes: the SDK's retries, metrics and channel handling are untouched."""
    base: Any
    msg: Any
    encode: Callable[[Sequence[Any]], bytes]
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as base
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as msg

        encode = spans_request
    else:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as base
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest as msg

        encode = logs_request

    def _translate_data(self: Any, data: Sequence[Any]) -> Any:
        encoded = self.__dict__.pop("_obskit_encoded", None)
        if encoded is not None and encoded[0] is data:
            return msg.FromString(encoded[1])
        return msg.FromString(encode(data))

    def export_encoded(self: Any, batch: Sequence[Any], data: bytes) -> Any:
        """Export ``batch`` whose request is already encoded; the SDK's ``export`` (retries, metrics) asks
        ``_translate_data`` for it. Calls are serialised by obskit's exporter guard."""
        self._obskit_encoded = (batch, data)
        try:
            return self.export(batch)
        finally:
            self.__dict__.pop("_obskit_encoded", None)

    return type(f"Fast{base.__name__}", (base,), {"_translate_data": _translate_data,
                                                  "export_encoded": export_encoded, "__module__": __name__,
                                                  "__doc__": _DOC})
