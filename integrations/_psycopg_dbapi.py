"""The psycopg 3 hook behind :mod:`obskit.integrations.psycopg`; imported only when it is switched on.

Built on ``opentelemetry-instrumentation-dbapi``, the layer OpenTelemetry's own psycopg instrumentor is made
of, so it installs from the same release series as the SDK obskit requires. Connections opened after
:func:`instrument` (``psycopg.connect``, ``Connection.connect``, ``AsyncConnection.connect``, and so pools)
get a cursor factory whose ``execute``/``executemany`` open a span; ``conn.execute()`` goes through it too.
The connection stays a real ``psycopg.Connection`` (no proxy object), so ``isinstance`` and typing hold.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

try:
    import psycopg
    from opentelemetry.instrumentation import dbapi
    from psycopg.sql import Composable
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.psycopg needs psycopg and opentelemetry-instrumentation-dbapi "
                      f"({exc}); install them with: pip install 'obskit[psycopg]'") from exc

from opentelemetry.trace import TracerProvider

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "obskit.integrations.psycopg"  # the instrumentation scope spans carry: the public module
# Where dbapi finds span attributes on a connection (dotted paths into psycopg's ConnectionInfo).
_ATTRIBUTES = {"database": "info.dbname", "port": "info.port", "host": "info.host", "user": "info.user"}
_lock = threading.Lock()
_on = False


class _CursorTracer(dbapi.CursorTracer[Any]):
    """dbapi's tracer, taught that a ``psycopg.sql.Composable`` is a statement too."""

    def get_operation_name(self, cursor: Any, args: Sequence[Any]) -> str:
        return super().get_operation_name(cursor, _as_text(cursor, args))

    def get_statement(self, cursor: Any, args: Sequence[Any]) -> str:
        return super().get_statement(cursor, _as_text(cursor, args))


def _as_text(cursor: Any, args: Sequence[Any]) -> Sequence[Any]:
    if args and isinstance(args[0], Composable):
        try:
            return (args[0].as_string(cursor), *args[1:])
        except Exception:
            return ()
    return args


def _traced_cursor(db: dbapi.DatabaseApiIntegration, base: type[psycopg.Cursor[Any]]) -> type[Any]:
    tracer = _CursorTracer(db)

    class TracedCursor(base):  # type: ignore[valid-type,misc]
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            return tracer.traced_execution(self, super().execute, *args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            return tracer.traced_execution(self, super().executemany, *args, **kwargs)

    return TracedCursor


def _traced_async_cursor(db: dbapi.DatabaseApiIntegration, base: type[psycopg.AsyncCursor[Any]]) -> type[Any]:
    tracer = _CursorTracer(db)

    class TracedAsyncCursor(base):  # type: ignore[valid-type,misc]
        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            return await tracer.traced_execution_async(self, super().execute, *args, **kwargs)

        async def executemany(self, *args: Any, **kwargs: Any) -> Any:
            return await tracer.traced_execution_async(self, super().executemany, *args, **kwargs)

    return TracedAsyncCursor


class _Sync(dbapi.DatabaseApiIntegration):
    def wrapped_connection(  # type: ignore[override]
        self, connect_method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[Any, Any]
    ) -> Any:
        kwargs["cursor_factory"] = _traced_cursor(self, kwargs.pop("cursor_factory", None) or psycopg.Cursor)
        connection = connect_method(*args, **kwargs)
        self.get_connection_attributes(connection)
        return connection


class _Async(dbapi.DatabaseApiIntegration):
    async def wrapped_connection(  # type: ignore[override]
        self, connect_method: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[Any, Any]
    ) -> Any:
        kwargs["cursor_factory"] = _traced_async_cursor(
            self, kwargs.pop("cursor_factory", None) or psycopg.AsyncCursor)
        connection = await connect_method(*args, **kwargs)
        self.get_connection_attributes(connection)
        return connection


_TARGETS: tuple[tuple[Any, type[dbapi.DatabaseApiIntegration]], ...] = (
    (psycopg, _Sync), (psycopg.Connection, _Sync), (psycopg.AsyncConnection, _Async))


def instrument(tracer_provider: TracerProvider | None = None) -> bool:
    """Trace connections opened from now on; False (and nothing done) if already instrumented."""
    global _on
    with _lock:
        if _on:
            return False
        for target, factory in _TARGETS:
            dbapi.wrap_connect(_SCOPE, target, "connect", "postgresql", _ATTRIBUTES,
                               version=psycopg.__version__, tracer_provider=tracer_provider,
                               db_api_integration_factory=factory)
        _on = True
        return True


def uninstrument() -> None:
    """Stop tracing new connections (open ones keep their traced cursors until closed)."""
    global _on
    with _lock:
        if not _on:
            return
        for target, _ in _TARGETS:
            dbapi.unwrap_connect(target, "connect")
        _on = False


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _on
