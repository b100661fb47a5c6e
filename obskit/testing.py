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
    """Shut obskit down and put back everything it changed process-wide, so the next ``init()`` starts fresh.

    The same as ``Telemetry.reset()``: OpenTelemetry's globals are left alone (obskit's own global provider
    is simply pointed at nothing until the next ``init()``).
    """
    from . import _setup

    _setup.reset(timeout=2.0)


# Settings that would make a test send data out of the process: hidden from init() in capture().
_LEAVES_PROCESS = ("OTEL_EXPORTER_OTLP_", "OBSKIT_OTLP_", "OBSKIT_METRICS_PORT")


@contextlib.contextmanager
def capture(**init_kwargs: Any) -> Iterator[Capture]:
    """``with capture(**init_kwargs) as cap:``: obskit with in-memory sinks for the block, reset after it.

    ``init_kwargs`` go to ``init()`` (e.g. ``integrations=["requests"]``, ``redact=["ssn"]``). Settings
    from the environment apply, except endpoints and the metrics port: nothing leaves the process.
    """
    import os

    import obskit

    from . import _metrics
    from ._traces import RedactingSpanExporter

    reset()
    stream = io.StringIO()
    spans = InMemorySpanExporter()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAVES_PROCESS)}
    kwargs: dict[str, Any] = {"service_name": "test", "otlp_endpoint": None, "metrics_port": None,
                              "integrations": "none", **init_kwargs}
    # Spans go through the same redaction as obskit's exporters, so tests see what would leave the process.
    kwargs.update(log_format="json", log_stream=stream, env=env,
                  span_processors=[SimpleSpanProcessor(RedactingSpanExporter(spans))])
    obskit.init(**kwargs)
    _metrics.set_strict_labels(True)
    try:
        yield Capture(spans, stream)
    finally:
        _metrics.set_strict_labels(False)
        reset()


@pytest.fixture
def obskit_capture() -> Iterator[Capture]:
    """obskit initialised with in-memory sinks for one test; everything is reset afterwards."""
    with capture() as cap:
        yield cap
