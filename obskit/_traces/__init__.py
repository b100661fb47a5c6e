"""Traces: the TracerProvider obskit installs (or joins), ``span()``/``@traced``, and redaction on export.

- ``_provider``: sampler, provider, span processors, the handle ``shutdown()`` undoes.
- ``_span``: ``span()`` and ``@traced``, the hot path.
- ``_redaction``: scrubbing sensitive attributes on the export thread.
- ``_global``: the process-wide provider obskit installs once and points at each ``init()``'s provider.

May import: ``obskit._config``, ``obskit._errors``, ``obskit._runtime``. Never the other signal packages.
"""

from ._global import GlobalTracerProvider
from ._provider import TracingHandle, forget, reset, setup_tracing
from ._redaction import RedactingSpanExporter
from ._span import get_tracer, span, traced

__all__ = [
    "GlobalTracerProvider",
    "RedactingSpanExporter",
    "TracingHandle",
    "forget",
    "get_tracer",
    "reset",
    "setup_tracing",
    "span",
    "traced",
]
