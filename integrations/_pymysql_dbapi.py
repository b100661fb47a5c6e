"""The PyMySQL hook behind :mod:`obskit.integrations.pymysql`; imported only when it is switched on.

Built on ``opentelemetry-instrumentation-dbapi`` like OpenTelemetry's own PyMySQL instrumentor (a thin layer
over it that has no release in the series the rest of obskit's instrumentations come from). Connections
opened after :func:`instrument` get a ``cursorclass`` (the caller's own, subclassed) whose
``execute``/``executemany`` open a span; the connection stays a real ``pymysql.connections.Connection``.
"""

from __future__ import annotations

try:
    import pymysql  # type: ignore[import-untyped]
    import pymysql.cursors  # type: ignore[import-untyped]
    from obskit.integrations._dbapi_sql import ConnectHook, CursorClassIntegration  # needs dbapi
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.pymysql needs PyMySQL and opentelemetry-instrumentation-dbapi "
                      f"({exc}); install them with: pip install 'obskit[pymysql]'") from exc

__all__ = ["instrument", "is_instrumented", "uninstrument"]


class _Integration(CursorClassIntegration):
    cursor_kwarg = "cursorclass"
    default_cursor = pymysql.cursors.Cursor


# pymysql.connect, pymysql.Connect and pymysql.connections.Connection are one class: wrap the name
# applications call, as OpenTelemetry's PyMySQL instrumentor does.
_HOOK = ConnectHook("obskit.integrations.pymysql", pymysql, ("connect",), "mysql",
                    {"database": "db", "port": "port", "host": "host", "user": "user"},
                    pymysql.__version__, _Integration)
instrument = _HOOK.instrument
uninstrument = _HOOK.uninstrument
is_instrumented = _HOOK.is_instrumented
