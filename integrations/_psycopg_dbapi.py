"""The psycopg 3 hook behind :mod:`obskit.integrations.psycopg`; imported only when it is switched on.

Built on ``opentelemetry-instrumentation-dbapi``, the layer OpenTelemetry's own psycopg instrumentor is made
of, so it installs from the same release series as the SDK obskit requires. Connections opened after
:func:`instrument` (``psycopg.connect``, ``Connection.connect``, ``AsyncConnection.connect``, and so pools)
get a cursor factory whose ``execute``/``executemany`` open a span; ``conn.execute()`` goes through it too.
The statement is recorded with its literal values replaced by ``?`` (``_dbapi_sql``).
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

from obskit.integrations._dbapi_sql import SanitizingCursorTracer, traced_async_cursor, traced_cursor
from opentelemetry.trace import TracerProvider

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "obskit.integrations.psycopg"  # the instrumentation scope spans carry: the public module
# Where dbapi finds span attributes on a connection (dotted paths into psycopg's ConnectionInfo).
_ATTRIBUTES = {"database": "info.dbname", "port": "info.port", "host": "info.host", "user": "info.user"}
_lock = threading.Lock()
_on = False


def _as_text(cursor: Any, args: Sequence[Any]) -> Sequence[Any]:
    """A ``psycopg.sql.Composable`` statement rendered, so that it is recorded (and sanitized) as text."""
    if args and isinstance(args[0], Composable):
        try:
            return (args[0].as_string(cursor), *args[1:])
        except Exception:
            return ()
    return args


def _traced_cursor(db: dbapi.DatabaseApiIntegration, base: type[psycopg.Cursor[Any]]) -> type[Any]:
    return traced_cursor(SanitizingCursorTracer(db, _as_text), base)


def _traced_async_cursor(db: dbapi.DatabaseApiIntegration, base: type[psycopg.AsyncCursor[Any]]) -> type[Any]:
    return traced_async_cursor(SanitizingCursorTracer(db, _as_text), base)


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
