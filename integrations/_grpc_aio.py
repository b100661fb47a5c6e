"""obskit's interceptors for ``grpc.aio``: each call timed into the RPC duration metrics.

A call with one response is timed until its status is known, inside the interceptor, as the contrib one
does already, so the observation is there when the application's ``await`` returns. A response stream is
timed until grpc reports the call done, however far the application reads it; its status is read in a
small task then (grpc.aio gives it only to a coroutine). grpc.aio serves coroutine handlers, async
generators and plain functions and tells them apart by their type, so the server wrapper keeps the type.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]
from obskit.integrations import _grpc_sync
from obskit.integrations._grpc_calls import (
    CLIENT_DURATION,
    UNKNOWN,
    Call,
    Recorder,
    code_of_exception,
    number,
    serving,
    timed_handler,
)

from obskit._runtime._safe import report_internal_error

__all__ = ["ServerInterceptor", "client_interceptors", "wrap_behavior"]

# Tasks reading a finished stream's status: the event loop keeps only weak references to tasks.
_pending: set[asyncio.Future[None]] = set()

Continuation = Callable[[Any, Any], Awaitable[Any]]


async def _end_with_status(call: Call, rpc: Any) -> None:
    try:
        code = number(await rpc.code())
    except BaseException as exc:
        code = code_of_exception(exc)
    call.end(UNKNOWN if code is None else code)


def _ender(call: Call) -> Callable[[Any], None]:
    def done(rpc: Any) -> None:
        try:
            task = asyncio.ensure_future(_end_with_status(call, rpc))
            _pending.add(task)
            task.add_done_callback(_pending.discard)
        except Exception as exc:
            report_internal_error("grpc: reading a stream's status", exc)

    return done


class _Timing:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    async def _started(self, continuation: Continuation, details: Any,
                       request: Any) -> tuple[Call | None, Any]:
        """(the call being timed, None if it is not, and what the continuation returned)."""
        call = self._recorder.start(CLIENT_DURATION, details.method)
        if call is None:
            return None, await continuation(details, request)
        try:
            return call, await continuation(details, request)
        except BaseException as exc:
            call.end(code_of_exception(exc))
            raise

    async def _one_response(self, continuation: Continuation, details: Any, request: Any) -> Any:
        call, rpc = await self._started(continuation, details, request)
        if call is None:
            return rpc
        try:
            code = number(await rpc.code())
        except asyncio.CancelledError:
            call.end(code_of_exception(asyncio.CancelledError()))
            raise
        except Exception as exc:
            report_internal_error("grpc: reading a call's status", exc)
            code = None
        call.end(UNKNOWN if code is None else code)
        return rpc

    async def _stream_response(self, continuation: Continuation, details: Any, request: Any) -> Any:
        call, rpc = await self._started(continuation, details, request)
        if call is not None:
            try:
                rpc.add_done_callback(_ender(call))
            except Exception as exc:
                report_internal_error("grpc: watching a response stream", exc)
        return rpc


class _UnaryUnary(_Timing, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Continuation, details: Any, request: Any) -> Any:
        return await self._one_response(continuation, details, request)


class _StreamUnary(_Timing, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Continuation, details: Any, requests: Any) -> Any:
        return await self._one_response(continuation, details, requests)


class _UnaryStream(_Timing, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Continuation, details: Any, request: Any) -> Any:
        return await self._stream_response(continuation, details, request)


class _StreamStream(_Timing, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Continuation, details: Any, requests: Any) -> Any:
        return await self._stream_response(continuation, details, requests)


def client_interceptors(recorder: Recorder) -> list[Any]:
    """One interceptor per call kind: a grpc.aio channel files each interceptor under one kind only."""
    return [_UnaryUnary(recorder), _UnaryStream(recorder), _StreamUnary(recorder), _StreamStream(recorder)]


def wrap_behavior(recorder: Recorder, method: Any, behavior: Callable[..., Any],
                  response_streaming: bool) -> Callable[..., Any]:
    """An asyncio handler's behaviour, timed, of the same kind (coroutine, async generator or plain)."""
    if inspect.isasyncgenfunction(behavior):
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            with serving(recorder, method, context):
                async for response in behavior(request, context):
                    yield response

        return stream
    if inspect.iscoroutinefunction(behavior):
        async def unary(request: Any, context: Any) -> Any:
            with serving(recorder, method, context):
                return await behavior(request, context)

        return unary
    return _grpc_sync.wrap_behavior(recorder, method, behavior, response_streaming)


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Records ``rpc.server.call.duration`` for every method the server serves."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        return timed_handler(await continuation(details), self._recorder, details.method, wrap_behavior)
