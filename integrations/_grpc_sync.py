"""obskit's interceptors for ``grpc`` (threads): each call timed into the RPC duration metrics.

The client interceptor watches the call object grpc hands back (an outcome, a future or a response
stream): its done callback fires when the call ends, however the application consumes it. The server
interceptor wraps the handler's behaviour, so the time is the handler's and the status is the one it set,
aborted with, or raised into.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc  # type: ignore[import-untyped]
from obskit.integrations._grpc_calls import (
    CLIENT_DURATION,
    Recorder,
    code_of_exception,
    serving,
    timed_handler,
)

from obskit._runtime._safe import report_internal_error

__all__ = ["ClientInterceptor", "ServerInterceptor", "wrap_behavior"]


class ClientInterceptor(grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
                        grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
                        grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
                        grpc.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Records ``rpc.client.call.duration`` for every kind of call on a channel."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def _intercept(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        call = self._recorder.start(CLIENT_DURATION, details.method)
        if call is None:
            return continuation(details, request)
        try:
            outcome = continuation(details, request)
        except BaseException as exc:
            call.end(code_of_exception(exc))
            raise
        try:
            outcome.add_done_callback(call.end_from_future)
        except Exception as exc:
            report_internal_error("grpc: watching a client call", exc)
        return outcome

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


def wrap_behavior(recorder: Recorder, method: Any, behavior: Callable[..., Any],
                  response_streaming: bool) -> Callable[..., Any]:
    """A synchronous handler's behaviour, timed; a response stream is timed until it is exhausted."""
    if response_streaming:
        def stream(request: Any, context: Any) -> Iterator[Any]:
            with serving(recorder, method, context):
                yield from behavior(request, context)

        return stream

    def unary(request: Any, context: Any) -> Any:
        with serving(recorder, method, context):
            return behavior(request, context)

    return unary


class ServerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Records ``rpc.server.call.duration`` for every method the server serves."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        return timed_handler(continuation(details), self._recorder, details.method, wrap_behavior)
