"""Shared by the hooks built on ``opentelemetry-instrumentation-dbapi`` (psycopg, psycopg2, PyMySQL,
mysqlclient): a cursor tracer whose recorded statement has no literal values, traced cursor classes handed to
the driver's own ``cursor_factory`` / ``cursorclass`` argument, and the switch that wraps a driver's
``connect`` (:class:`ConnectHook`).

Why cursor classes instead of dbapi's connection proxy: the connection stays the driver's real class
(``isinstance`` checks, type hints and driver extensions such as ``psycopg2.extras`` keep working), and the
caller's own cursor class is kept, subclassed. Imported only by those hooks, once their driver is installed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from obskit.integrations._sql import text_for
from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.instrumentation import dbapi

__all__ = ["ConnectHook", "CursorClassIntegration", "SanitizingCursorTracer", "traced_async_cursor",
           "traced_cursor"]


class SanitizingCursorTracer(dbapi.CursorTracer[Any]):
    """dbapi's tracer, recording the statement with literals replaced by ``?`` (unless they are kept).

    ``as_text`` turns a driver's composed statement (``psycopg.sql.SQL(...)``) into text first.
    """

    def __init__(self, integration: dbapi.DatabaseApiIntegration,
                 as_text: Callable[[Any, Sequence[Any]], Sequence[Any]] | None = None) -> None:
        super().__init__(integration)
        self._as_text = as_text

    def _args(self, cursor: Any, args: Sequence[Any]) -> Sequence[Any]:
        return self._as_text(cursor, args) if self._as_text is not None else args

    def get_operation_name(self, cursor: Any, args: Sequence[Any]) -> str:
        return super().get_operation_name(cursor, self._args(cursor, args))

    def get_statement(self, cursor: Any, args: Sequence[Any]) -> str:
        statement = super().get_statement(cursor, self._args(cursor, args))
        return text_for(statement, self._db_api_integration.database_system)

    def _populate_span(self, span: Any, cursor: Any, *args: Any) -> None:
        """dbapi's attributes, plus ``db.operation.name`` (dbapi puts it on the metric only), as the
        semantic conventions and obskit's other SQL hooks have it."""
        super()._populate_span(span, cursor, *args)
        operation = self.get_operation_name(cursor, args)
        if operation and span.is_recording():
            span.set_attribute("db.operation.name", operation)


def _alone(call: Callable[..., Any]) -> Callable[..., Any]:
    """``call`` with instrumentation suppressed beneath it: PyMySQL's and mysqlclient's ``executemany`` send
    the batch (its values written in) through their own ``execute``, which would be a second span."""

    def run(*args: Any, **kwargs: Any) -> Any:
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            return call(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run


def traced_cursor(tracer: dbapi.CursorTracer[Any], base: type[Any]) -> type[Any]:
    """``base`` with ``execute`` and ``executemany`` traced, each one span."""

    class TracedCursor(base):  # type: ignore[valid-type,misc]
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            return tracer.traced_execution(self, super().execute, *args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            return tracer.traced_execution(self, _alone(super().executemany), *args, **kwargs)

    TracedCursor.__name__ = TracedCursor.__qualname__ = f"Traced{base.__name__}"
    return TracedCursor


def traced_async_cursor(tracer: dbapi.CursorTracer[Any], base: type[Any]) -> type[Any]:
    """``base`` (an asyncio cursor) with ``execute`` and ``executemany`` traced."""

    class TracedAsyncCursor(base):  # type: ignore[valid-type,misc]
        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            return await tracer.traced_execution_async(self, super().execute, *args, **kwargs)

        async def executemany(self, *args: Any, **kwargs: Any) -> Any:
            return await tracer.traced_execution_async(self, super().executemany, *args, **kwargs)

    TracedAsyncCursor.__name__ = TracedAsyncCursor.__qualname__ = f"Traced{base.__name__}"
    return TracedAsyncCursor


class CursorClassIntegration(dbapi.DatabaseApiIntegration):
    """Traces a driver's connections through the cursor class it takes at ``connect`` (``cursor_kwarg``): the
    caller's class (or ``default_cursor``) is subclassed with traced ``execute``/``executemany``."""

    cursor_kwarg = "cursor_factory"
    default_cursor: type[Any] = object
    as_text: Callable[[Any, Sequence[Any]], Sequence[Any]] | None = None

    def wrapped_connection(  # type: ignore[override]
        self, connect_method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[Any, Any]
    ) -> Any:
        base = kwargs.pop(self.cursor_kwarg, None) or self.default_cursor
        kwargs[self.cursor_kwarg] = traced_cursor(SanitizingCursorTracer(self, type(self).as_text), base)
        connection = connect_method(*args, **kwargs)
        self.get_connection_attributes(connection)
        return connection


class ConnectHook:
    """A driver hook's ``instrument`` / ``uninstrument`` / ``is_instrumented``: ``module``'s connect functions
    (``names``: every name the driver exports for it) are wrapped by dbapi, each connection made through
    them getting ``integration``'s traced cursors; connections made before are left alone."""

    def __init__(self, scope: str, module: Any, names: tuple[str, ...], system: str,
                 attributes: dict[str, str], version: str, integration: type[CursorClassIntegration]) -> None:
        self._scope = scope
        self._module = module
        self._names = names
        self._system = system
        self._attributes = attributes
        self._version = version
        self._integration = integration
        self._lock = threading.Lock()
        self._on = False

    def instrument(self) -> bool:
        """Trace connections opened from now on; False (and nothing done) if already instrumented."""
        with self._lock:
            if self._on:
                return False
            for name in self._names:
                dbapi.wrap_connect(self._scope, self._module, name, self._system, self._attributes,
                                   version=self._version, db_api_integration_factory=self._integration)
            self._on = True
            return True

    def uninstrument(self) -> None:
        """Stop tracing new connections (open ones keep their traced cursors until closed)."""
        with self._lock:
            if self._on:
                for name in self._names:
                    dbapi.unwrap_connect(self._module, name)
                self._on = False

    def is_instrumented(self) -> bool:
        """Whether :meth:`instrument` is in effect."""
        return self._on
