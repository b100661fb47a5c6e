"""Tracing: the TracerProvider obskit installs (or joins), ``span()`` and ``@traced``.

``span()`` is a small class rather than the SDK's generator-based ``start_as_current_span``: it does the
same work (start, make current, record an exception, end) with fewer layers, which is what lets the
facade cost no more than the raw SDK call.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Counter, Meter, MeterProvider, NoOpMeter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from .._config import Config
from .._runtime import _health as _self_telemetry
from .._runtime._exporters import make_exporter
from .._runtime._redact import REDACTED, Redactor
from .._runtime._resource import process_attributes
from .._runtime._safe import report_internal_error

__all__ = ["TracingHandle", "get_tracer", "setup_tracing", "span", "traced"]

_log = logging.getLogger("obskit")
F = TypeVar("F", bound=Callable[..., Any])

# Set by setup_tracing(); until then spans go through the API's proxy and become real once a provider is set.
_redactor = Redactor()
_tracer: trace.Tracer | None = None


def _obskit_tracer() -> trace.Tracer:
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("obskit")
    return _tracer


def get_tracer(name: str | None = None) -> trace.Tracer:
    """A tracer from the global provider (obskit's after ``init()``); ``None`` gives obskit's own."""
    if name is None:
        return _obskit_tracer()
    return trace.get_tracer(name)


# --- attributes -------------------------------------------------------------------------------------------


def _coerce(value: Any) -> AttributeValue:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str | bool | int | float) for v in value):
        return list(value)
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


_FLAT_ATTR = frozenset({str, bool, int, float})


def _attributes(attrs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    red = _redactor
    out: dict[str, AttributeValue] = {}
    for k, v in attrs.items():
        if red.is_sensitive(k):
            out[k] = REDACTED
        elif type(v) in _FLAT_ATTR:
            out[k] = v
        else:  # nested values are redacted before they are stringified
            out[k] = _coerce(red.redact_value(v))
    return out


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


# --- self-telemetry bridge: the SDK's batch processors count drops through a MeterProvider ----------------


class _DropCounter(Counter):
    def __init__(self, signal: str) -> None:
        self._signal = signal

    def add(self, amount: int | float, attributes: Any = None, context: Any = None) -> None:
        try:
            if attributes and attributes.get("error.type"):
                _self_telemetry.record_dropped(self._signal, int(amount))
        except Exception as exc:
            report_internal_error("self-telemetry", exc)


class _SelfMeter(NoOpMeter):
    def __init__(self, signal: str) -> None:
        super().__init__("obskit-self")
        self._counter = _DropCounter(signal)

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        if name.endswith(".processed"):
            return self._counter
        return super().create_counter(name, unit, description)



class SelfMeterProvider(MeterProvider):
    """Feeds the SDK processors' "dropped" counts into ``obskit_telemetry_dropped_total{signal}``."""

    def __init__(self, signal: str) -> None:
        self._meter = _SelfMeter(signal)

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Any = None) -> Meter:
        return self._meter


# --- setup ------------------------------------------------------------------------------------------------


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


_fork_hook_installed = False
_handles: list[TracingHandle] = []
_handles_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """The SDK renews ``service.instance.id`` after a fork; obskit renews ``process.pid`` with it."""
    with _handles_lock:
        handles = list(_handles)
    for h in handles:
        try:
            h.provider._update_resource(Resource(process_attributes()))  # type: ignore[attr-defined]
        except Exception as exc:
            report_internal_error("tracing after fork", exc)


def setup_tracing(config: Config, resource: Resource) -> TracingHandle | None:
    """Install (or join) the global TracerProvider per ``config``; None when tracing is off."""
    global _redactor, _tracer, _fork_hook_installed
    _redactor = Redactor(config.redact)
    if not config.traces or config.disabled:
        return None

    existing = trace.get_tracer_provider()
    owned = not isinstance(existing, TracerProvider)
    if owned:
        # obskit bounds shutdown itself; the SDK's own atexit hook could wait 30 s on a hung collector.
        provider = TracerProvider(resource=resource, sampler=_sampler(config), shutdown_on_exit=False)
    else:
        provider = cast(TracerProvider, existing)
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
        processors.append(BatchSpanProcessor(RedactingSpanExporter(exporter),
                                             meter_provider=SelfMeterProvider("traces")))
    for p in processors:
        provider.add_span_processor(p)

    if owned:
        trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("obskit")

    handle = TracingHandle(provider, owned, processors)
    with _handles_lock:
        _handles.append(handle)
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_installed = True
    return handle


def _forget(handle: TracingHandle) -> None:
    global _tracer
    with _handles_lock:
        if handle in _handles:
            _handles.remove(handle)
    _tracer = None


# --- span() -----------------------------------------------------------------------------------------------


def _start(name: str, attrs: Mapping[str, Any]) -> Span:
    try:
        attributes = _attributes(attrs) if attrs else None
        return (_tracer or _obskit_tracer()).start_span(name, attributes=attributes)
    except Exception as exc:
        report_internal_error("span start", exc)
        return trace.INVALID_SPAN


def _finish(sp: Span, exc: BaseException | None) -> None:
    """End ``sp``, recording ``exc`` if it is an error; never raises (a span processor may)."""
    try:
        if exc is not None and isinstance(exc, Exception) and sp.is_recording():
            sp.record_exception(exc, escaped=True)
            sp.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        sp.end()
    except Exception as err:
        report_internal_error("span end", err)


class span:
    """``with obskit.span("charge", order_id=1) as sp:``; also ``async with``.

    Makes the span current for the block, records an ``Exception`` that escapes it (error status and an
    ``exception`` event) and ends it. Cancellation and other ``BaseException``s end the span without marking
    it an error. Attribute values that are not OTel types are stringified; sensitive keys are redacted.
    """

    __slots__ = ("_attrs", "_name", "_span", "_token")

    def __init__(self, name: str, /, **attributes: Any) -> None:
        self._name = name
        self._attrs = attributes
        self._span: Span | None = None
        self._token: object = None

    def __enter__(self) -> Span:
        sp = self._span = _start(self._name, self._attrs)
        try:
            self._token = otel_context.attach(trace.set_span_in_context(sp))
        except Exception as exc:
            report_internal_error("span start", exc)
        return sp

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        sp = self._span
        if sp is None:
            return
        try:
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]
            _finish(sp, exc)
        except Exception as err:
            report_internal_error("span end", err)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(et, exc, tb)


# --- @traced ----------------------------------------------------------------------------------------------


@overload
def traced(func: F, /) -> F: ...
@overload
def traced(*, name: str | None = None, attributes: Mapping[str, Any] | None = None) -> Callable[[F], F]: ...


def traced(func: F | None = None, /, *, name: str | None = None,
           attributes: Mapping[str, Any] | None = None) -> F | Callable[[F], F]:
    """Wrap a function in a span: ``@traced`` or ``@traced(name=..., attributes={...})``.

    Works on ``def``, ``async def``, generators and async generators (the span covers the whole iteration),
    keeps the signature, records exceptions with error status. Arguments are never recorded.
    """

    def decorate(fn: F) -> F:
        span_name = name or getattr(fn, "__qualname__", None) or repr(fn)
        attrs = dict(attributes or {})

        if inspect.isasyncgenfunction(fn):
            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
                sp = _start(span_name, attrs)
                ctx = trace.set_span_in_context(sp)
                agen = fn(*args, **kwargs)
                err: BaseException | None = None
                try:
                    step: Callable[[Any], Any] = agen.asend
                    arg: Any = None
                    while True:
                        token = otel_context.attach(ctx)
                        try:
                            item = await step(arg)
                        except StopAsyncIteration:
                            return
                        finally:
                            otel_context.detach(token)
                        try:
                            arg = yield item
                            step = agen.asend
                        except GeneratorExit:
                            await agen.aclose()
                            raise
                        except BaseException as thrown:
                            step, arg = agen.athrow, thrown
                except BaseException as e:
                    err = e
                    raise
                finally:
                    _finish(sp, err)
            return cast(F, agen_wrapper)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with span(span_name, **attrs):
                    return await fn(*args, **kwargs)
            return cast(F, async_wrapper)

        if inspect.isgeneratorfunction(fn):
            # The span is current only while the generator body runs, never in the caller between yields.
            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
                sp = _start(span_name, attrs)
                ctx = trace.set_span_in_context(sp)
                gen = fn(*args, **kwargs)
                err: BaseException | None = None
                try:
                    step: Callable[[Any], Any] = gen.send
                    arg: Any = None
                    while True:
                        token = otel_context.attach(ctx)
                        try:
                            item = step(arg)
                        except StopIteration as stop:
                            return stop.value
                        finally:
                            otel_context.detach(token)
                        try:
                            arg = yield item
                            step = gen.send
                        except GeneratorExit:
                            gen.close()
                            raise
                        except BaseException as thrown:
                            step, arg = gen.throw, thrown
                except BaseException as e:
                    err = e
                    raise
                finally:
                    _finish(sp, err)
            return cast(F, gen_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with span(span_name, **attrs):
                return fn(*args, **kwargs)
        return cast(F, wrapper)

    if func is not None:
        return decorate(func)
    return decorate
