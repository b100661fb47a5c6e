"""The PyMySQL hook behind :mod:`obskit.integrations.pymysql`; imported only when it is switched on.

Built on ``opentelemetry-instrumentation-dbapi`` like OpenTelemetry's own PyMySQL instrumentor (a thin layer
over it that has no release in the series the rest of obskit's instrumentations come from). Connections
opened after :func:`instrument` get a ``cursorclass`` (the caller's own, subclassed) whose
``execute``/``executemany`` open a span; the connection stays a real ``pymysql.connections.Connection``.
"""

from __future__ import annotations

import threading

try:
    import pymysql  # type: ignore[import-untyped]
    import pymysql.cursors  # type: ignore[import-untyped]
    from opentelemetry.instrumentation import dbapi
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.pymysql needs PyMySQL and opentelemetry-instrumentation-dbapi "
                      f"({exc}); install them with: pip install 'obskit[pymysql]'") from exc

from obskit.integrations._dbapi_sql import CursorClassIntegration

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "obskit.integrations.pymysql"
_ATTRIBUTES = {"database": "db", "port": "port", "host": "host", "user": "user"}
_lock = threading.Lock()
_on = False


class _Integration(CursorClassIntegration):
    cursor_kwarg = "cursorclass"
    default_cursor = pymysql.cursors.Cursor


def instrument() -> bool:
    """Trace connections opened from now on; False (and nothing done) if already instrumented."""
    global _on
    with _lock:
        if _on:
            return False
        # pymysql.connect, pymysql.Connect and pymysql.connections.Connection are one class: wrap the name
        # applications call, as OpenTelemetry's PyMySQL instrumentor does.
        dbapi.wrap_connect(_SCOPE, pymysql, "connect", "mysql", _ATTRIBUTES,
                           version=pymysql.__version__, db_api_integration_factory=_Integration)
        _on = True
        return True


def uninstrument() -> None:
    """Stop tracing new connections (open ones keep their traced cursors until closed)."""
    global _on
    with _lock:
        if _on:
            dbapi.unwrap_connect(pymysql, "connect")
            _on = False


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _on
