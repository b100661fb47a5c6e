"""The mysqlclient hook behind :mod:`obskit.integrations.mysqlclient`; imported only when it is switched on.

Built on ``opentelemetry-instrumentation-dbapi`` like OpenTelemetry's own mysqlclient instrumentor, which has
no release in the series the rest of obskit's instrumentations come from. ``MySQLdb.connect`` (and its other
names, ``Connect`` and ``Connection``: one function) gives connections opened after :func:`instrument` a
``cursorclass`` (the caller's own, subclassed) whose ``execute``/``executemany`` open a span; the connection
stays a real ``MySQLdb.connections.Connection``.
"""

from __future__ import annotations

try:
    import MySQLdb  # type: ignore[import-untyped]
    import MySQLdb.cursors  # type: ignore[import-untyped]
    from obskit.integrations._dbapi_sql import ConnectHook, CursorClassIntegration  # needs dbapi
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.mysqlclient needs mysqlclient and "
                      f"opentelemetry-instrumentation-dbapi ({exc}); install them with: "
                      "pip install mysqlclient 'obskit[mysqlclient]'") from exc

__all__ = ["instrument", "is_instrumented", "uninstrument"]


class _Integration(CursorClassIntegration):
    cursor_kwarg = "cursorclass"
    default_cursor = MySQLdb.cursors.Cursor


_HOOK = ConnectHook("obskit.integrations.mysqlclient", MySQLdb, ("connect", "Connect", "Connection"), "mysql",
                    {"database": "db", "port": "port", "host": "host", "user": "user"},
                    ".".join(str(n) for n in MySQLdb.version_info[:3]), _Integration)
instrument = _HOOK.instrument
uninstrument = _HOOK.uninstrument
is_instrumented = _HOOK.is_instrumented
