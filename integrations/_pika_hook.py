"""The pika hook behind :mod:`obskit.integrations.pika` (see its docstring for what is traced);
imported only when the integration is switched on, after the application has imported pika.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from obskit.integrations._library_switch import Wraps
from obskit.integrations._messaging import Delivery, MessagingRecorder
from obskit.integrations._sql import is_suppressed

__all__ = ["wraps"]

_SCOPE = "obskit.integrations.pika"
# Set while a BlockingChannel publishes through its impl channel: that inner call is the same message.
_publishing: ContextVar[bool] = ContextVar("obskit_pika_publishing", default=False)
_TRACED = "__obskit_traced__"


def _server(impl: Any) -> tuple[str | None, int | None]:
    """(host, port) the channel's connection was opened with (``impl``: a ``pika.channel.Channel``)."""
    try:
        params = impl.connection.params
        return params.host, params.port
    except Exception:
        return None, None


def _delivery(exchange: str | None, routing_key: str | None, properties: Any, body: Any,
              server: tuple[str | None, int | None], queue: str | None = None,
              delivery_tag: int | None = None) -> Delivery:
    return Delivery(exchange, routing_key, server[0], server[1],
                    getattr(properties, "message_id", None), getattr(properties, "correlation_id", None),
                    len(body) if isinstance(body, (bytes, bytearray, str)) else None, queue, delivery_tag)


def _incoming(method: Any, properties: Any, body: Any, server: tuple[str | None, int | None],
              queue: str | None) -> Delivery:
    """A delivered message (``method``: ``Basic.Deliver`` or ``Basic.GetOk``) taken from ``queue``."""
    return _delivery(getattr(method, "exchange", None), getattr(method, "routing_key", None), properties,
                     body, server, queue, getattr(method, "delivery_tag", None))


def _headers(properties: Any) -> Any:
    return getattr(properties, "headers", None)


def _with_headers(properties: Any, headers: dict[str, Any]) -> Any:
    """A copy of ``properties`` (or new ones) carrying ``headers``: the user's object is not changed."""
    import pika  # type: ignore[import-untyped]

    out = pika.BasicProperties() if properties is None else copy.copy(properties)
    out.headers = headers
    return out


def _publish(recorder: MessagingRecorder, original: Callable[..., Any], blocking: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    def basic_publish(self: Any, exchange: str, routing_key: str, body: Any, properties: Any = None,
                      mandatory: bool = False) -> Any:
        if _publishing.get() or is_suppressed():
            return original(self, exchange, routing_key, body, properties, mandatory)
        impl = self._impl if blocking else self
        sending = recorder.send(_delivery(exchange, routing_key, properties, body, _server(impl)),
                                _headers(properties))
        sent = properties
        if sending is not None and sending.headers is not None:
            try:
                sent = _with_headers(properties, sending.headers)
            except Exception:
                sent = properties
        token = _publishing.set(True)
        try:
            result = original(self, exchange, routing_key, body, sent, mandatory)
        except BaseException as exc:
            if sending is not None:
                sending.end(exc)
            raise
        finally:
            _publishing.reset(token)
        if sending is not None:
            sending.end(None)
        return result

    return basic_publish


def _processed(recorder: MessagingRecorder, callback: Callable[..., Any], queue: str | None,
               server: tuple[str | None, int | None]) -> Callable[..., Any]:
    """``callback(channel, method, properties, body)`` run inside the message's process span."""
    if getattr(callback, _TRACED, False):
        return callback

    def on_message(channel: Any, method: Any, properties: Any, body: Any) -> Any:
        delivery = _incoming(method, properties, body, server, queue)
        processing = recorder.process(delivery, _headers(properties))
        if processing is None:
            return callback(channel, method, properties, body)
        try:
            result = callback(channel, method, properties, body)
        except BaseException as exc:
            processing.end(exc)
            raise
        processing.end(None)
        return result

    with contextlib.suppress(Exception):
        functools.update_wrapper(on_message, callback)
    setattr(on_message, _TRACED, True)
    return on_message


def _consume(recorder: MessagingRecorder, original: Callable[..., Any], blocking: bool,
             dispatcher: type) -> Callable[..., Any]:
    @functools.wraps(original)
    def basic_consume(self: Any, queue: str, on_message_callback: Any, *args: Any, **kwargs: Any) -> Any:
        # A BlockingChannel registers its own dispatcher on its impl channel: its user's callback is wrapped
        # where the BlockingChannel receives it, and the dispatcher (which only queues) is left alone.
        inner = isinstance(getattr(on_message_callback, "__self__", None), dispatcher)
        if callable(on_message_callback) and not inner:
            with contextlib.suppress(Exception):
                server = _server(self._impl if blocking else self)
                on_message_callback = _processed(recorder, on_message_callback, queue, server)
        return original(self, queue, on_message_callback, *args, **kwargs)

    return basic_consume


def _iterate(recorder: MessagingRecorder, messages: Iterator[Any], queue: str,
             server: tuple[str | None, int | None]) -> Iterator[Any]:
    """``BlockingChannel.consume``: each message is processed in its span, from the moment it is yielded
    until the loop asks for the next one (or ends)."""
    try:
        for item in messages:
            method, properties, body = item
            processing = None
            if method is not None:
                processing = recorder.process(_incoming(method, properties, body, server, queue),
                                              _headers(properties))
            try:
                yield item
            except GeneratorExit:
                if processing is not None:
                    processing.end(None)
                raise
            except BaseException as exc:  # thrown in with generator.throw()
                if processing is not None:
                    processing.end(exc)
                raise
            if processing is not None:
                processing.end(None)
    finally:
        close = getattr(messages, "close", None)
        if close is not None:
            close()


def _consume_generator(recorder: MessagingRecorder, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def consume(self: Any, queue: str, *args: Any, **kwargs: Any) -> Any:
        return _iterate(recorder, original(self, queue, *args, **kwargs), queue, _server(self._impl))

    return consume


def _get(recorder: MessagingRecorder, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def basic_get(self: Any, queue: str, *args: Any, **kwargs: Any) -> Any:
        start = time.time_ns()
        try:
            result = original(self, queue, *args, **kwargs)
        except BaseException as exc:
            recorder.received(_delivery(None, None, None, None, _server(self._impl), queue), None, start, exc)
            raise
        try:
            method, properties, body = result
            recorder.received(_incoming(method, properties, body, _server(self._impl), queue),
                              _headers(properties), start)
        except Exception:
            pass
        return result

    return basic_get


def wraps() -> Wraps:
    """What each method becomes; called once the library is imported."""
    import pika  # type: ignore[import-untyped]
    import pika.channel  # type: ignore[import-untyped]
    from pika.adapters.blocking_connection import BlockingChannel  # type: ignore[import-untyped]

    recorder = MessagingRecorder(_SCOPE, pika.__version__)
    impl = pika.channel.Channel
    return {
        (impl, "basic_publish"): lambda f: _publish(recorder, f, blocking=False),
        (impl, "basic_consume"): lambda f: _consume(recorder, f, False, BlockingChannel),
        (BlockingChannel, "basic_publish"): lambda f: _publish(recorder, f, blocking=True),
        (BlockingChannel, "basic_consume"): lambda f: _consume(recorder, f, True, BlockingChannel),
        (BlockingChannel, "consume"): lambda f: _consume_generator(recorder, f),
        (BlockingChannel, "basic_get"): lambda f: _get(recorder, f),
    }
