"""The process-wide TracerProvider obskit installs once, forwarding to the provider of the current ``init()``.

OpenTelemetry lets the global provider be set once per process. obskit sets this forwarder once and points
it at each ``init()``'s SDK provider, so ``shutdown()`` then ``init()`` really starts over (new resource, new
sampler), instrumentations that took a tracer from the global keep working across re-initialisation, and
tests re-initialise without touching OpenTelemetry's private globals. Between ``shutdown()`` and the next
``init()`` the forwarder hands out no-op spans.

``obskit.span()`` does not go through it: it uses the SDK tracer directly, so the forwarding costs only
third-party tracers one attribute check per span.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

__all__ = ["GlobalTracerProvider", "installed"]

_NOOP = trace.NoOpTracer()


class _ForwardingTracer(trace.Tracer):
    __slots__ = ("_args", "_generation", "_owner", "_real")

    def __init__(self, owner: GlobalTracerProvider, args: tuple[Any, ...]) -> None:
        self._owner = owner
        self._args = args
        self._generation = -1
        self._real: trace.Tracer = _NOOP

    def _tracer(self) -> trace.Tracer:
        owner = self._owner
        if self._generation != owner.generation:
            delegate = owner.delegate
            self._real = _NOOP if delegate is None else delegate.get_tracer(*self._args)
            self._generation = owner.generation
        return self._real

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:  # the SDK's context manager, as is
        return self._tracer().start_as_current_span(*args, **kwargs)


class GlobalTracerProvider(trace.TracerProvider):
    """OpenTelemetry's global provider, as obskit installs it. Attributes it lacks (``add_span_processor``,
    ``resource``, ``force_flush``...) are the current SDK provider's, so code written for the SDK works.
    """

    def __init__(self) -> None:
        self.delegate: TracerProvider | None = None
        self.generation = 0

    def point_to(self, provider: TracerProvider | None) -> None:
        """Send every span started from now on to ``provider`` (None: no-op spans)."""
        self.delegate = provider
        self.generation += 1

    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: str | None = None,
                   schema_url: str | None = None, attributes: Any = None) -> trace.Tracer:
        return _ForwardingTracer(self, (instrumenting_module_name, instrumenting_library_version, schema_url,
                                        attributes))

    def __getattr__(self, name: str) -> Any:
        delegate = self.__dict__.get("delegate")
        if delegate is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(delegate, name)


def installed() -> GlobalTracerProvider | trace.TracerProvider:
    """obskit's forwarder, set as the global now if nobody set one; else whatever provider is global."""
    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(GlobalTracerProvider())
        current = trace.get_tracer_provider()
    return current
