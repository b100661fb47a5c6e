"""The psycopg2 hook behind :mod:`obskit.integrations.psycopg2`; imported only when it is switched on.

Built on ``opentelemetry-instrumentation-dbapi`` like OpenTelemetry's own psycopg2 instrumentor, which has
no release in the series the rest of obskit's instrumentations come from (installing it would move them
all back one release). Connections opened after :func:`instrument` get a cursor factory (the caller's own,
subclassed) whose ``execute``/``executemany`` open a span and record ``db.client.operation.duration``; the
connection stays a real psycopg2 connection.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

try:
    import psycopg2  # type: ignore[import-untyped]
    import psycopg2.extensions  # type: ignore[import-untyped]
    import psycopg2.sql  # type: ignore[import-untyped]
    from opentelemetry.instrumentation import dbapi
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.psycopg2 needs psycopg2 and opentelemetry-instrumentation-dbapi "
                      f"({exc}); install them with: pip install 'obskit[psycopg2]'") from exc

from obskit.integrations._dbapi_sql import CursorClassIntegration

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "obskit.integrations.psycopg2"
_ATTRIBUTES = {"database": "info.dbname", "port": "info.port", "host": "info.host", "user": "info.user"}
_lock = threading.Lock()
_on = False


def _as_text(cursor: Any, args: Sequence[Any]) -> Sequence[Any]:
    """A ``psycopg2.sql.Composable`` statement rendered, so that it is recorded (and sanitized) as text."""
    if args and isinstance(args[0], psycopg2.sql.Composable):
        try:
            return (args[0].as_string(cursor), *args[1:])
        except Exception:
            return ()
    return args


class _Integration(CursorClassIntegration):
    cursor_kwarg = "cursor_factory"
    default_cursor = psycopg2.extensions.cursor
    as_text = staticmethod(_as_text)


def instrument() -> bool:
    """Trace connections opened from now on; False (and nothing done) if already instrumented."""
    global _on
    with _lock:
        if _on:
            return False
        dbapi.wrap_connect(_SCOPE, psycopg2, "connect", "postgresql", _ATTRIBUTES,
                           version=psycopg2.__version__.split(" ")[0],
                           db_api_integration_factory=_Integration)
        _on = True
        return True


def uninstrument() -> None:
    """Stop tracing new connections (open ones keep their traced cursors until closed)."""
    global _on
    with _lock:
        if _on:
            dbapi.unwrap_connect(psycopg2, "connect")
            _on = False


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _on
