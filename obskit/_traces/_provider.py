"""The TracerProvider obskit installs (or joins): sampler, batch processor, redacting exporter.

``TracingHandle`` records exactly what ``init()`` installed, so ``shutdown()`` undoes that and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from .._config import Config
from .._runtime import _fork
from .._runtime._batching import batch_span_processor
from .._runtime._exporters import make_exporter
from .._runtime._redact import Redactor
from .._runtime._resource import process_attributes
from .._runtime._safe import SafeLogger
from . import _global, _lean, _redaction, _span

__all__ = ["TracingHandle", "forget", "reset", "setup_tracing"]

_log = SafeLogger("obskit")


def _sampler(config: Config) -> Sampler:
    ratio = config.sample_ratio
    root: Sampler = ALWAYS_ON if ratio >= 1.0 else ALWAYS_OFF if ratio <= 0.0 else TraceIdRatioBased(ratio)
    return ParentBased(root) if config.parent_based else root


class TracingHandle:
    """What ``init()`` installed, so ``shutdown()`` undoes exactly that and nothing else."""

    def __init__(self, provider: TracerProvider, owned: bool, processors: list[SpanProcessor]) -> None:
        self.provider = provider
        self.owned = owned
        self.processors = processors
        self.fork_name = f"tracing {id(self)}"
        _fork.register(self.fork_name, after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """The SDK renews ``service.instance.id`` after a fork; obskit renews ``process.pid`` with it, and
        frees the lock every lean span's attributes share."""
        _lean.after_fork_in_child()
        self.provider._update_resource(Resource(process_attributes()))  # type: ignore[attr-defined]

    def force_flush(self, timeout: float) -> bool:
        millis = int(timeout * 1000)
        if self.owned:
            return bool(self.provider.force_flush(millis))
        return all(p.force_flush(millis) for p in self.processors)

    def shutdown(self) -> None:
        if self.owned:
            self.provider.shutdown()
        else:
            for p in self.processors:
                p.shutdown()


def setup_tracing(config: Config, resource: Resource, *, span_processors: Sequence[SpanProcessor] = (),
                  id_generator: IdGenerator | None = None) -> TracingHandle | None:
    """Install (or join) the TracerProvider per ``config``; None when tracing is off.

    ``span_processors`` are added after obskit's own (tests add an in-memory one); ``id_generator`` makes
    trace and span ids deterministic where a test needs them to be.
    """
    _redaction.set_redactor(Redactor(config.redact, scrub_exceptions=config.redact_exceptions))
    if not config.traces or config.disabled:
        return None

    glob = _global.installed()
    owned = not isinstance(glob, TracerProvider)
    if owned:
        # obskit bounds shutdown itself; the SDK's own atexit hook could wait 30 s on a hung collector.
        provider = TracerProvider(resource=resource, sampler=_sampler(config), id_generator=id_generator,
                                  shutdown_on_exit=False)
        if not isinstance(glob, _global.GlobalTracerProvider):
            _log.warning("obskit: a TracerProvider that is not the OpenTelemetry SDK's is installed globally "
                         "(%s); obskit's spans go to its own provider, instrumentations to that one",
                         type(glob).__name__)
    else:
        provider = cast(TracerProvider, glob)
        _log.warning(
            "obskit: a TracerProvider was already installed; obskit adds its processors to it and leaves "
            "its resource and sampler as they are"
        )

    processors: list[SpanProcessor] = []
    exporter: SpanExporter | None = None
    if config.exports("traces"):
        exporter = make_exporter("traces", config)
    elif config.traces_exporter == "console":
        exporter = ConsoleSpanExporter()
    if exporter is not None:
        processors.append(batch_span_processor(_redaction.RedactingSpanExporter(exporter)))
    processors.extend(span_processors)
    for p in processors:
        provider.add_span_processor(p)

    if owned and isinstance(glob, _global.GlobalTracerProvider):
        glob.point_to(provider)
    _span.bind_tracer(provider.get_tracer("obskit"))
    return TracingHandle(provider, owned, processors)


def forget(handle: TracingHandle) -> None:
    """After ``shutdown()``: no fork work for ``handle``; ``span()`` goes back to the global proxy."""
    _fork.unregister(handle.fork_name)
    _span.bind_tracer(None)
    glob = _global.installed()
    if isinstance(glob, _global.GlobalTracerProvider) and glob.delegate is handle.provider:
        glob.point_to(None)


def reset() -> None:
    """Process-wide tracing state back to before any ``init()``: default redaction, no obskit provider."""
    _redaction.set_redactor(Redactor())
    _span.bind_tracer(None)
    glob = trace.get_tracer_provider()
    if isinstance(glob, _global.GlobalTracerProvider):
        glob.point_to(None)
