"""The aio_pika hook behind :mod:`obskit.integrations.aio_pika` (see its docstring for what is traced);
imported only when the integration is switched on, after the application has imported aio_pika.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from obskit.integrations._library_switch import Wraps
from obskit.integrations._messaging import Delivery, MessagingRecorder, Operation
from obskit.integrations._sql import is_suppressed

__all__ = ["wraps"]

_SCOPE = "obskit.integrations.aio_pika"
# The message whose process span is current: its own ``message.process()`` inside the callback adds none.
_processing: ContextVar[object | None] = ContextVar("obskit_aio_pika_processing", default=None)


def _server(url: Any) -> tuple[str | None, int | None]:
    try:
        return url.host, url.port
    except Exception:
        return None, None


def _channel_server(channel: Any) -> tuple[str | None, int | None]:
    """(host, port) of an aio_pika channel's connection."""
    return _server(getattr(getattr(channel, "_connection", None), "url", None))


def _message_server(message: Any) -> tuple[str | None, int | None]:
    """(host, port) of the aiormq connection an incoming message came on."""
    try:
        return _server(message.channel.connection.url)
    except Exception:
        return None, None


def _incoming(message: Any, queue: str | None, server: tuple[str | None, int | None]) -> Delivery:
    return Delivery(getattr(message, "exchange", None), getattr(message, "routing_key", None), server[0],
                    server[1], getattr(message, "message_id", None), getattr(message, "correlation_id", None),
                    getattr(message, "body_size", None), queue, getattr(message, "delivery_tag", None))


def _with_headers(message: Any, headers: dict[str, Any]) -> Any:
    """A copy of ``message`` carrying ``headers``: the user's (maybe locked, re-sent) one is untouched."""
    out = copy.copy(message)
    out.headers = headers
    return out


def _publish(recorder: MessagingRecorder, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def publish(self: Any, message: Any, routing_key: str, *args: Any, **kwargs: Any) -> Any:
        if is_suppressed():
            return await original(self, message, routing_key, *args, **kwargs)
        host, port = _channel_server(getattr(self, "channel", None))
        sending = recorder.send(
            Delivery(getattr(self, "name", None), routing_key, host, port,
                     getattr(message, "message_id", None), getattr(message, "correlation_id", None),
                     getattr(message, "body_size", None)),
            getattr(message, "headers", None))
        sent = message
        if sending is not None and sending.headers is not None:
            try:
                sent = _with_headers(message, sending.headers)
            except Exception:
                sent = message
        try:
            result = await original(self, sent, routing_key, *args, **kwargs)
        except BaseException as exc:
            if sending is not None:
                sending.end(exc)
            raise
        if sending is not None:
            sending.end(None)
        return result

    return publish


def _processed(recorder: MessagingRecorder, callback: Callable[..., Any], queue: str | None,
               server: tuple[str | None, int | None]) -> Callable[..., Any]:
    """``callback(message)`` (a coroutine function or a plain one) run inside the message's process span."""

    async def on_message(message: Any) -> Any:
        processing = recorder.process(_incoming(message, queue, server), getattr(message, "headers", None))
        if processing is None:
            result = callback(message)
            return await result if inspect.isawaitable(result) else result
        token = _processing.set(message)
        try:
            result = callback(message)
            if inspect.isawaitable(result):
                result = await result
        except BaseException as exc:
            processing.end(exc)
            raise
        finally:
            _processing.reset(token)
        processing.end(None)
        return result

    return on_message


def _consume(recorder: MessagingRecorder, original: Callable[..., Any], iterator: type) -> Callable[..., Any]:
    @functools.wraps(original)
    async def consume(self: Any, callback: Any, *args: Any, **kwargs: Any) -> Any:
        # queue.iterator() consumes with its own method, which only queues the message: its messages get
        # their span from message.process().
        if callable(callback) and not isinstance(getattr(callback, "__self__", None), iterator):
            with contextlib.suppress(Exception):
                callback = _processed(recorder, callback, getattr(self, "name", None),
                                      _channel_server(getattr(self, "channel", None)))
        return await original(self, callback, *args, **kwargs)

    return consume


class _TracedProcess:
    """``message.process()`` for a message no callback span covers: its span lasts the ``async with``."""

    def __init__(self, inner: Any, message: Any, recorder: MessagingRecorder) -> None:
        self._inner = inner
        self._message = message
        self._recorder = recorder
        self._processing: Operation | None = None
        self._token: Any = None

    async def __aenter__(self) -> Any:
        message = self._message
        self._processing = self._recorder.process(_incoming(message, None, _message_server(message)),
                                                  getattr(message, "headers", None))
        if self._processing is not None:
            self._token = _processing.set(message)
        try:
            return await self._inner.__aenter__()
        except BaseException as exc:
            self._end(exc)
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> Any:
        try:
            result = await self._inner.__aexit__(exc_type, exc, tb)
        except BaseException as raised:
            self._end(raised)
            raise
        self._end(exc)
        return result

    def _end(self, error: BaseException | None) -> None:
        if self._token is not None:
            _processing.reset(self._token)
            self._token = None
        if self._processing is not None:
            self._processing.end(error)
            self._processing = None


def _process(recorder: MessagingRecorder, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def process(self: Any, *args: Any, **kwargs: Any) -> Any:
        context = original(self, *args, **kwargs)
        if _processing.get() is self or is_suppressed():
            return context
        return _TracedProcess(context, self, recorder)

    return process


def wraps() -> Wraps:
    """What each method becomes; called once the library is imported."""
    import aio_pika
    import aio_pika.message
    import aio_pika.queue
    recorder = MessagingRecorder(_SCOPE, aio_pika.__version__)
    iterator = aio_pika.queue.QueueIterator
    return {
        (aio_pika.Exchange, "publish"): lambda f: _publish(recorder, f),
        (aio_pika.Queue, "consume"): lambda f: _consume(recorder, f, iterator),
        (aio_pika.message.IncomingMessage, "process"): lambda f: _process(recorder, f),
    }
