"""``span()`` and ``@traced``: the hot path of tracing.

``span()`` is a small class rather than the SDK's generator-based ``start_as_current_span``: it does the
same work (start, make current, record an exception, end) with fewer layers, which is what lets the
facade cost no more than the raw SDK call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from .._runtime._redact import REDACTED
from .._runtime._safe import report_internal_error
from . import _redaction

__all__ = ["bind_tracer", "get_tracer", "span", "traced"]

F = TypeVar("F", bound=Callable[..., Any])

# Set by the provider setup; until then spans go through the API's proxy and become real once a provider
# is set.
_tracer: trace.Tracer | None = None


def bind_tracer(tracer: trace.Tracer | None) -> None:
    """The tracer ``span()`` and ``@traced`` use (obskit's provider's), or None for the global proxy."""
    global _tracer
    _tracer = tracer


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
    red = _redaction.current()
    out: dict[str, AttributeValue] = {}
    for k, v in attrs.items():
        if red.is_sensitive(k):
            out[k] = REDACTED
        elif type(v) in _FLAT_ATTR:
            out[k] = v
        else:  # nested values are redacted before they are stringified
            out[k] = _coerce(red.redact_value(v))
    return out


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

        # The four wrappers below are twins on purpose: sync and async code cannot share one body (``await``
        # and ``yield`` change what a function is), and a shared helper would add a layer to every call.
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
