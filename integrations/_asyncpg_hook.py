"""The asyncpg hook behind :mod:`obskit.integrations.asyncpg`; imported only when it is switched on.

Why not OpenTelemetry's ``AsyncPGInstrumentor``: it has no release in the series the other instrumentations
come from (pip would move them all back one release, or fail to resolve), it records the query text with its
literals and records no duration metric. The public query methods of ``asyncpg.Connection`` are wrapped on the
class, as that instrumentor does, so connections and pools made before ``init()`` are traced too; each call
is one span and one ``db.client.operation.duration`` observation through :class:`StatementRecorder`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

try:
    import asyncpg  # type: ignore[import-untyped]
    import asyncpg.connection  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.asyncpg needs asyncpg ({exc}); install it with: "
                      "pip install 'obskit[asyncpg]'") from exc

from obskit.integrations._sql import StatementRecorder, is_suppressed

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "obskit.integrations.asyncpg"
# Each takes the statement first; none calls another of them, so a call is one span.
_METHODS = ("execute", "executemany", "fetch", "fetchval", "fetchrow", "fetchmany")
_lock = threading.Lock()
_originals: dict[str, Callable[..., Any]] = {}


def _describe(conn: Any) -> tuple[str | None, str | None, int | None]:
    """(database, host, port) from what the connection was opened with (asyncpg keeps no public copy)."""
    params = getattr(conn, "_params", None)
    addr = getattr(conn, "_addr", None)
    host, port = (addr[0], addr[1]) if isinstance(addr, tuple) and len(addr) >= 2 else (addr, None)
    return getattr(params, "database", None), host if isinstance(host, str) else None, port


def _wrap(recorder: StatementRecorder, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def traced(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if is_suppressed() or not isinstance(query, str):
            return await original(self, query, *args, **kwargs)
        database, host, port = _describe(self)
        name, span_attrs, metric_attrs = recorder.attributes("postgresql", query, database, host, port)
        return await recorder.run_async(name, span_attrs, metric_attrs,
                                        lambda: original(self, query, *args, **kwargs))

    traced.__obskit_original__ = original  # type: ignore[attr-defined]
    return traced


def instrument() -> bool:
    """Trace every connection's queries, existing and future; False if already instrumented."""
    with _lock:
        if _originals:
            return False
        recorder = StatementRecorder(_SCOPE, asyncpg.__version__)
        cls = asyncpg.connection.Connection
        for method in _METHODS:
            original = getattr(cls, method, None)
            if original is not None:
                _originals[method] = original
                setattr(cls, method, _wrap(recorder, original))
        return True


def uninstrument() -> None:
    """Put the original methods back."""
    with _lock:
        cls = asyncpg.connection.Connection
        for method, original in _originals.items():
            setattr(cls, method, original)
        _originals.clear()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return bool(_originals)
