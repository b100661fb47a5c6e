"""Size bounds on what leaves in one export, so that one oversized span or log record costs only itself.

A 10 MB log record over gRPC made its whole batch fail (collectors refuse messages over 4 MiB by default,
and the exporter retried until its timeout first): ``force_flush`` took 7 s and none of the 40 ordinary
records exported with it arrived. Two bounds, applied on the export thread as a batch leaves:

- every string longer than :data:`MAX_CHARS` is cut there and marked (``... [truncated by obskit: N
  characters]``): attribute values (inside lists too), a log record's body, a span's name, its events' names
  and attributes, its status description. The marked value says what happened where the reader looks;
- a batch is split into chunks of at most :data:`CHUNK_BYTES` (estimated), exported one after another. An
  item still larger than that goes alone, so if the collector refuses it, it is the only loss.

Only items that need cutting are touched; for the others this is one pass over their strings' lengths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import Status

__all__ = ["CHUNK_BYTES", "MAX_CHARS", "chunks", "cut", "log_record_size", "span_size"]

#: Longest string kept whole: 32 KiB of text holds a deep Python traceback; a dumped file or payload is cut.
MAX_CHARS = 32 * 1024
#: Largest batch (estimated) sent in one export: under the 4 MiB gRPC default, with room for protobuf framing.
CHUNK_BYTES = 3 * 1024 * 1024
_OTHER = 16  # estimated bytes of a number, a bool, a key's framing

T = TypeVar("T")


_MARK = "... [truncated by obskit: "


def _mark(text: str) -> str:
    return f"{text[:MAX_CHARS]}{_MARK}{len(text)} characters]"


def _too_long(text: str) -> bool:
    """Longer than :data:`MAX_CHARS` and not cut already (cutting twice would re-count the mark)."""
    return len(text) > MAX_CHARS and not text.startswith(_MARK, MAX_CHARS)


def cut(text: str) -> str:
    """``text``, or its first :data:`MAX_CHARS` characters, marked, when it is longer."""
    return _mark(text) if _too_long(text) else text


def _text_bytes(text: str) -> int:
    return len(text) if text.isascii() else 4 * len(text)  # UTF-8 needs at most 4 bytes a character


def _value(value: Any) -> tuple[Any, int, bool]:
    """(the value, cut if needed; its estimated encoded size; whether it was cut)."""
    if isinstance(value, str):
        if _too_long(value):
            value = _mark(value)
            return value, _text_bytes(value), True
        return value, _text_bytes(value), False
    if isinstance(value, bytes):
        return value, len(value), False
    if isinstance(value, list | tuple):
        items = [_value(v) for v in value]
        cut = any(c for _, _, c in items)
        return ([v for v, _, _ in items] if cut else value), sum(n for _, n, _ in items) + _OTHER, cut
    if isinstance(value, Mapping):  # log bodies and log attributes may be maps
        new, size = _attributes(value)
        return (value if new is None else new), size + _OTHER, new is not None
    return value, _OTHER, False


def _attributes(attrs: Any) -> tuple[dict[str, Any] | None, int]:
    """(a new mapping if a value had to be cut, else None; the estimated size of all of them)."""
    if not attrs:
        return None, 0
    size, new, cut = 0, {}, False
    for key, value in attrs.items():
        v, n, c = _value(value)
        size += n + len(str(key)) + _OTHER
        new[key] = v
        cut = cut or c
    return (new if cut else None), size


def _bounded(original: Any, values: dict[str, Any], extended: bool = False) -> BoundedAttributes:
    """``values`` as the SDK's own attributes container, keeping the count of attributes dropped before
    (``extended``: log attributes, which may hold maps)."""
    out = BoundedAttributes(attributes=values, immutable=True, extended_attributes=extended)
    out.dropped = getattr(original, "dropped", 0)
    return out


def span_size(span: Any) -> int:
    """Cut what is too long in an ended span (in place, on the export thread); its estimated size.

    Reads the span's own fields rather than its properties, which copy (this runs for every span exported).
    """
    size = _OTHER * 8
    name = span._name
    if _too_long(name):
        span._name = name = _mark(name)
    size += _text_bytes(name)
    if span._attributes:
        new, n = _attributes(span._attributes)
        if new is not None:
            span._attributes = _bounded(span._attributes, new)
        size += n
    if span._events:
        events, events_cut = [], False
        for event in span._events:
            ev_name, n, cut = _value(event.name)
            size += n
            ev_attrs, n = _attributes(event.attributes)
            size += n
            if cut or ev_attrs is not None:
                events_cut = True
                kept = ev_attrs if ev_attrs is not None else event.attributes
                event = Event(ev_name, kept, event.timestamp)
            events.append(event)
        if events_cut:
            span._events = tuple(events)
    for link in span._links or ():
        size += _attributes(link.attributes)[1] + _OTHER * 4
    description = span._status.description
    if description:
        text, n, cut = _value(description)
        if cut:
            span._status = Status(span._status.status_code, text)
        size += n
    return size


def log_record_size(record: Any) -> int:
    """Cut what is too long in a log record about to be exported (in place); its estimated size."""
    inner = record.log_record
    body, size, cut = _value(inner.body)
    if cut:
        inner.body = body
    new, n = _attributes(inner.attributes)
    if new is not None:
        inner.attributes = _bounded(inner.attributes, new, extended=True)
    return size + n + _OTHER * 8


def chunks(items: Sequence[T], size_of: Callable[[T], int]) -> Iterable[list[T]]:
    """``items`` in order, in runs of at most :data:`CHUNK_BYTES`; an item larger than that runs alone."""
    chunk: list[T] = []
    total = 0
    for item in items:
        n = size_of(item)
        if chunk and total + n > CHUNK_BYTES:
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += n
    if chunk:
        yield chunk
