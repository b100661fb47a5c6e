"""What a demo run produced, told at the end so a newcomer sees it: spans, log lines, metric series, the
breaker's story, and where to look when a collector is configured.

The counts are real, not estimated: a span processor counts every span that ended, a stream wrapper counts
the lines obskit wrote, the metric series are counted on the very exposition ``/metrics`` serves, and the
breaker's story is told from its own state-change events.
"""

from __future__ import annotations

import threading
import time
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from .._config import Config
from .._resilience import add_sink, remove_sink
from .._resilience._events import CallRejected, FallbackInvoked, StateChanged

__all__ = ["LineCounter", "SpanCounter", "Tally", "where_to_look"]


class SpanCounter(SpanProcessor):
    """Counts spans as they end (sampled or not, exported or not: what the program made)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.count += 1


class LineCounter:
    """A text stream that counts the lines written through it, then passes them on."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._stream, "isatty", lambda: False)())


class Tally:
    """Everything the summary reports, collected while the demo runs. Use as a context manager."""

    def __init__(self, stream: IO[str]) -> None:
        self.spans = SpanCounter()
        self.stream = LineCounter(stream)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.changes: list[tuple[float, StateChanged]] = []
        self.rejected = 0
        self.fallbacks = 0

    def __enter__(self) -> Tally:
        add_sink(self._event)
        return self

    def start_clock(self) -> None:
        """Times in the breaker's story count from here (the first order), not from start-up."""
        self._started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        remove_sink(self._event)

    def _event(self, event: Any) -> None:
        with self._lock:
            if isinstance(event, StateChanged):
                self.changes.append((time.monotonic() - self._started, event))
            elif isinstance(event, CallRejected):
                self.rejected += 1
            elif isinstance(event, FallbackInvoked):
                self.fallbacks += 1

    def breaker_story(self, name: str, state_now: str) -> list[str]:
        """Three lines: how the breaker opened, what happened while it was open, where it is now."""
        with self._lock:
            changes = [(t, e) for t, e in self.changes if e.name == name]
            rejected, fallbacks = self.rejected, self.fallbacks
        opened = [(t, e) for t, e in changes if e.to_state == "open"]
        if not opened:
            return [f"breaker {name!r} never opened: every payment call reached the provider;",
                    f"{fallbacks} call(s) were answered by the fallback;", f"it is {state_now} now."]
        t, first = opened[0]
        why = (f"failure rate {first.failure_rate:.0%} over {first.window_size} calls"
               if first.failure_rate is not None else first.reason)
        closed = [t2 for t2, e in changes if e.to_state == "closed" and t2 > t]
        return [
            f"breaker {name!r} opened at {t:.1f}s ({why}), {len(opened)} time(s) in all;",
            f"it rejected {rejected} call(s) while open; the fallback answered {fallbacks} call(s) in all;",
            (f"it closed again at {closed[-1]:.1f}s after a probe succeeded, and is {state_now} now."
             if closed else f"it is {state_now} now (no probe has succeeded yet)."),
        ]


def metric_series() -> int:
    """How many series ``/metrics`` serves right now (every sample line of the text format)."""
    from .._metrics._exposition import render

    body = render("text/plain")[0].decode("utf-8", "replace")
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def where_to_look(config: Config) -> list[str]:
    """With an endpoint configured: the Jaeger search and the Grafana dashboards of the docs/deploy stack."""
    endpoint = config.endpoint_for("traces") or config.endpoint_for("metrics") or config.endpoint_for("logs")
    if not endpoint:
        return []
    service = config.service_name
    return [f"sent to {endpoint}. With the docs/deploy stack, look at:",
            f"  traces  http://localhost:16686/search?service={service}  (Jaeger)",
            "  metrics http://localhost:3000/d/obskit-service  (Grafana: RED, dependencies, resilience, "
            "health, runtime, logs)"]
