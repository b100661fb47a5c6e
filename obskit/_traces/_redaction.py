"""Redaction of ended spans on the export thread, with the runtime's one redactor.

Attributes set after the span started (``set_attribute``, instrumentations such as HTTP header capture or
``url.full``), event attributes and link attributes are scrubbed here, as the span leaves through obskit's
exporters: on the batch processor's thread, so the request path does not pay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from .._runtime import _bounds, _redact
from .._runtime._redact import Redactor
from .._runtime._safe import report_internal_error

__all__ = ["RedactingSpanExporter", "current", "scrub", "set_redactor"]


def set_redactor(redactor: Redactor) -> None:
    """The keys ``init()`` configured, for ``span()`` and for the exporters (the runtime's redactor)."""
    _redact.install(redactor)


def current() -> Redactor:
    """The redactor in force."""
    return _redact.current()


def _bounded(old: Any, clean: Mapping[str, Any]) -> BoundedAttributes:
    """Replacement attributes, keeping the SDK's limit and its count of dropped attributes."""
    new = BoundedAttributes(maxlen=getattr(old, "maxlen", None), attributes=clean, immutable=True)
    new.dropped = getattr(old, "dropped", 0)
    return new


def scrub(span: ReadableSpan) -> None:
    """Redact an ended span in place: its name, attributes, event and link attributes, and (when
    exceptions are scrubbed) its status description, which holds the exception's message."""
    try:
        red = _redact.current()
        name = red.scrub_text(span.name)
        if name is not span.name:
            span._name = name  # type: ignore[attr-defined]
        clean = red.redact_attributes(span.attributes)
        if clean is not None:
            span._attributes = _bounded(span._attributes, clean)  # type: ignore[attr-defined]
        items: tuple[Any, ...] = (*span.events, *span.links)
        for item in items:
            clean = red.redact_attributes(item.attributes)
            if clean is not None:
                item._attributes = _bounded(item.attributes, clean)  # type: ignore[attr-defined]
        status = span.status
        if red.scrub_exceptions and status.description:
            description = red.exception_text(status.description)
            if description is not status.description:
                span._status = Status(status.status_code, description)  # type: ignore[attr-defined]
    except Exception as exc:
        report_internal_error("span redaction", exc)


def _scrub_and_bound(span: ReadableSpan) -> None:
    """What the one-pass encoder cannot do while encoding: redact, then bound, the span in place."""
    scrub(span)
    try:
        _bounds.span_size(span)
    except Exception as exc:
        report_internal_error("span size bounds", exc)
    span._obskit_cleaned = True  # type: ignore[attr-defined]


class RedactingSpanExporter(SpanExporter):
    """Scrubs sensitive data just before export, on the batch processor's thread.

    Doing it here rather than in a span processor keeps the work off the request path: the spans are
    ended and immutable through the public API, and every exporter obskit builds goes through this.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        clean = getattr(self.inner, "export_clean", None)
        if clean is not None:  # obskit's OTLP exporter: redacts while it encodes, in one pass
            return clean(spans, _scrub_and_bound)  # type: ignore[no-any-return]
        for sp in spans:
            scrub(sp)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
