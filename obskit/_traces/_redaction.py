"""Redaction of span attributes on the export thread, and the redactor ``span()`` applies up front.

Attributes set after the span started (``set_attribute``, instrumentations) are scrubbed here, as the span
leaves through obskit's exporters: on the batch processor's thread, so the request path does not pay.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._runtime._redact import REDACTED, Redactor
from .._runtime._safe import report_internal_error

__all__ = ["RedactingSpanExporter", "current", "set_redactor"]

_redactor = Redactor()


def set_redactor(redactor: Redactor) -> None:
    """The keys ``init()`` configured, for ``span()`` and for the exporters."""
    global _redactor
    _redactor = redactor


def current() -> Redactor:
    """The redactor in force."""
    return _redactor


def _scrub(span: ReadableSpan) -> None:
    """Replace sensitive attribute values of an ended span (set by anyone: instrumentations too)."""
    try:
        attrs = span.attributes
        if not attrs:
            return
        red = _redactor
        if any(red.is_sensitive(k) for k in attrs):
            from opentelemetry.attributes import BoundedAttributes

            clean = {k: (REDACTED if red.is_sensitive(k) else v) for k, v in attrs.items()}
            span._attributes = BoundedAttributes(attributes=clean, immutable=True)  # type: ignore[attr-defined]
    except Exception as exc:
        report_internal_error("span redaction", exc)


class RedactingSpanExporter(SpanExporter):
    """Scrubs sensitive attributes just before export, on the batch processor's thread.

    Doing it here rather than in a span processor keeps the work off the request path: the spans are
    ended and immutable through the public API, and every exporter obskit builds goes through this.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for sp in spans:
            _scrub(sp)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
