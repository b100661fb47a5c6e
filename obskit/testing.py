"""Test helpers for users of obskit, registered as a pytest plugin (``obskit_capture``).

    def test_checkout(obskit_capture):
        checkout(order_id=7)
        assert obskit_capture.span("charge").attributes["order_id"] == 7
        assert obskit_capture.logs[-1]["event"] == "charged"
        assert obskit_capture.metric("orders_processed_total", status="ok") == 1

Nothing leaves the process: spans go to memory, log lines are rendered as JSON into a buffer and parsed,
metric values are read straight from the registry. Metric calls with wrong labels raise here, so a typo
fails the test instead of being dropped with an error log as in production.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["Capture", "capture", "obskit_capture", "reset"]


class Capture:
    """What the code under test emitted: ``spans``, ``logs`` (parsed JSON lines) and metric values."""

    def __init__(self, spans: InMemorySpanExporter, stream: io.StringIO) -> None:
        self._spans = spans
        self._stream = stream

    @property
    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in the order they ended."""
        return list(self._spans.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (fails the test if there are none or several)."""
        found = [s for s in self.spans if s.name == name]
        if len(found) != 1:
            raise AssertionError(f"expected one span named {name!r}, found {len(found)}: "
                                 f"{[s.name for s in self.spans]}")
        return found[0]

    @property
    def logs(self) -> list[dict[str, Any]]:
        """Every log line written so far (structlog and stdlib), as dicts."""
        out = []
        for line in self._stream.getvalue().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"event": line, "level": "unparsed"})
        return out

    def events(self, event: str) -> list[dict[str, Any]]:
        """Log lines whose ``event`` equals ``event``."""
        return [e for e in self.logs if e.get("event") == event]

    def metric(self, name: str, /, **labels: str) -> float | None:
        """A sample's current value as ``/metrics`` names it (``orders_total``), or None if absent."""
        from prometheus_client import REGISTRY

        value = REGISTRY.get_sample_value(name, labels)
        return None if value is None else float(value)

    def clear(self) -> None:
        """Forget what was captured so far (metrics are cumulative and stay)."""
        self._spans.clear()
        self._stream.seek(0)
        self._stream.truncate()


def reset() -> None:
    """Shut obskit down and put every global it touched back, so the next ``init()`` starts fresh.

    OpenTelemetry lets a global provider be set only once per process; tests need it again.
    """
    from opentelemetry import trace
    from opentelemetry.util._once import Once

    from . import _setup as _telemetry
    from ._logs import _api as _logging
    from ._metrics import _instruments as _metrics
    from .integrations import _registry as _integrations

    _telemetry.shutdown(timeout=2.0)
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    try:
        import opentelemetry._logs._internal as logs_api

        logs_api._LOGGER_PROVIDER_SET_ONCE = Once()
        logs_api._LOGGER_PROVIDER = None
    except (ImportError, AttributeError):
        pass
    for module in (_logging, _metrics, _integrations):
        fn = getattr(module, "_reset_for_tests", None)
        if fn is not None:
            fn()


@contextlib.contextmanager
def capture(**init_kwargs: Any) -> Iterator[Capture]:
    """``with capture(**init_kwargs) as cap:``: obskit with in-memory sinks for the block, reset after it.

    ``init_kwargs`` go to ``init()`` (e.g. ``integrations=["requests"]``, ``redact=["ssn"]``).
    """
    import obskit

    from ._metrics import _instruments as _metrics

    reset()
    stream = io.StringIO()
    kwargs: dict[str, Any] = {"service_name": "test", "otlp_endpoint": None, "metrics_port": None,
                              "integrations": "none", **init_kwargs}
    kwargs.update(log_format="json", log_stream=stream)
    # Nothing may leave the process: hide endpoint and port variables from init() (then put them back).
    import os

    hidden = {k: os.environ.pop(k) for k in list(os.environ)
              if k.startswith(("OTEL_EXPORTER_OTLP_", "OBSKIT_OTLP_")) or k == "OBSKIT_METRICS_PORT"}
    try:
        tel = obskit.init(**kwargs)
    finally:
        os.environ.update(hidden)
    from ._traces._provider import RedactingSpanExporter

    spans = InMemorySpanExporter()
    if tel.tracer_provider is not None:
        # Through the same redaction as obskit's exporters, so tests see what would leave the process.
        tel.tracer_provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(spans)))
    set_strict = getattr(_metrics, "set_strict_labels", None)
    if set_strict is not None:
        set_strict(True)
    try:
        yield Capture(spans, stream)
    finally:
        if set_strict is not None:
            set_strict(False)
        reset()


@pytest.fixture
def obskit_capture() -> Iterator[Capture]:
    """obskit initialised with in-memory sinks for one test; everything is reset afterwards."""
    with capture() as cap:
        yield cap
