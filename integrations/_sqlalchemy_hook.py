"""The SQLAlchemy hook behind :mod:`obskit.integrations.sqlalchemy`; imported only when it is switched on.

Why not OpenTelemetry's ``SQLAlchemyInstrumentor``: it declares SQLAlchemy < 2.1 and refuses 2.1; it traces
only engines created after it (or handed to it one by one); its statement text keeps inline literals; it
records no duration metric. Here the listeners are registered on SQLAlchemy's classes (``Dialect`` for the
execution events, ``Engine`` for ``engine_connect``, ``Pool`` for ``checkin``), which SQLAlchemy applies to
every instance, those created before ``init()`` included, sync and asyncio alike (an ``AsyncEngine`` runs
its statements through its ``sync_engine``).

Each statement runs inside the ``do_execute`` / ``do_executemany`` / ``do_execute_no_params`` event, so the
span, the timing and the suppression of the driver's own instrumentation (psycopg2, asyncpg, PyMySQL under
SQLAlchemy: one span, not two) have a ``try/finally`` around exactly the driver call. The dialect's own
``do_execute`` is what runs, so dialect-specific execution is unchanged.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

try:
    import sqlalchemy
    from sqlalchemy import event
    from sqlalchemy.engine import Connection, Dialect, Engine
    from sqlalchemy.pool import Pool
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.sqlalchemy needs SQLAlchemy ({exc}); install it with: "
                      "pip install 'obskit[sqlalchemy]'") from exc

from obskit.integrations._sql import StatementRecorder, is_suppressed
from opentelemetry import metrics

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "obskit.integrations.sqlalchemy"
#: Connections in the pool by state (semantic conventions: ``db.client.connection.count``, an UpDownCounter;
#: here a gauge set from the pool's own counts, so pools made before ``init()`` are right from the start).
POOL_GAUGE = "db.client.connection.count"
_SYSTEMS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mariadb", "sqlite": "sqlite",
            "mssql": "microsoft.sql_server", "oracle": "oracle.db"}

# (db.system.name, db.namespace, server.address, server.port, pool name) of one engine.
_Described = tuple[str, str | None, str | None, int | None, str]
_lock = threading.Lock()
_hook: _Hook | None = None


class _Hook:
    def __init__(self) -> None:
        self.recorder = StatementRecorder(_SCOPE, sqlalchemy.__version__)
        self.pool_gauge = metrics.get_meter(_SCOPE, sqlalchemy.__version__).create_gauge(
            POOL_GAUGE, unit="{connection}",
            description="Connections in the pool, by state (idle: checked in, used: checked out).")
        # Per engine, computed once: (system, namespace, host, port, pool name). Weak: engines come and go.
        self._engines: weakref.WeakKeyDictionary[Engine, _Described] = weakref.WeakKeyDictionary()
        self._pools: weakref.WeakKeyDictionary[Pool, str] = weakref.WeakKeyDictionary()
        self.listeners: list[tuple[Any, str, Any]] = [
            (Dialect, "do_execute", self.do_execute),
            (Dialect, "do_executemany", self.do_executemany),
            (Dialect, "do_execute_no_params", self.do_execute_no_params),
            (Engine, "engine_connect", self.engine_connect),
            (Pool, "checkin", self.checkin),
        ]

    def describe(self, engine: Engine) -> _Described:
        found = self._engines.get(engine)
        if found is None:
            url = engine.url
            system = _SYSTEMS.get(engine.dialect.name, engine.dialect.name)
            if system == "mysql" and getattr(engine.dialect, "is_mariadb", False):
                system = "mariadb"
            # Never the password: the pool is named by driver, host, port and database only.
            pool_name = f"{url.drivername}://{url.host or ''}:{url.port or ''}/{url.database or ''}"
            found = (system, url.database, url.host, url.port, pool_name)
            self._engines[engine] = found
        return found

    def _run(self, context: Any, statement: str, call: Any) -> bool:
        if is_suppressed():
            return False  # SQLAlchemy runs the statement itself, untraced
        system, namespace, host, port, _ = self.describe(context.engine)
        name, span_attrs, metric_attrs = self.recorder.attributes(system, statement, namespace, host, port)
        self.recorder.run(name, span_attrs, metric_attrs, call)
        return True  # handled: SQLAlchemy does not execute it a second time

    def do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        return self._run(context, statement,
                         lambda: context.dialect.do_execute(cursor, statement, parameters, context))

    def do_executemany(self, cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        return self._run(context, statement,
                         lambda: context.dialect.do_executemany(cursor, statement, parameters, context))

    def do_execute_no_params(self, cursor: Any, statement: str, context: Any) -> bool:
        return self._run(context, statement,
                         lambda: context.dialect.do_execute_no_params(cursor, statement, context))

    def engine_connect(self, connection: Connection) -> None:
        engine = connection.engine
        pool = engine.pool
        if pool not in self._pools:
            self._pools[pool] = self.describe(engine)[4]
        self.observe(pool)

    def checkin(self, dbapi_connection: Any, connection_record: Any) -> None:
        pool = getattr(connection_record, "_ConnectionRecord__pool", None)
        if pool is not None:
            self.observe(pool, returning=True)

    def observe(self, pool: Pool, returning: bool = False) -> None:
        """Set the gauge from the pool's own counts. ``returning``: called from ``checkin``, which SQLAlchemy
        dispatches just before the connection goes back, so it is counted where it is about to be: idle, or
        closed if the pool is full (an overflow connection)."""
        name = self._pools.get(pool)
        checked_out = getattr(pool, "checkedout", None)
        checked_in = getattr(pool, "checkedin", None)
        size = getattr(pool, "size", None)
        if name is None or checked_out is None or checked_in is None or size is None:
            return  # a pool without counts (NullPool, StaticPool) or not seen through an engine yet
        used, idle = checked_out(), checked_in()
        if returning:
            used = max(used - 1, 0)
            if size() <= 0 or idle < size():
                idle += 1
        self.pool_gauge.set(used, {"db.client.connection.pool.name": name,
                                   "db.client.connection.state": "used"})
        self.pool_gauge.set(idle, {"db.client.connection.pool.name": name,
                                   "db.client.connection.state": "idle"})


def instrument() -> bool:
    """Trace every engine, existing and future; False (and nothing done) if already instrumented."""
    global _hook
    with _lock:
        if _hook is not None:
            return False
        hook = _Hook()
        for target, name, fn in hook.listeners:
            event.listen(target, name, fn)
        _hook = hook
        return True


def uninstrument() -> None:
    """Remove the listeners; engines keep working, untraced."""
    global _hook
    with _lock:
        hook, _hook = _hook, None
        if hook is None:
            return
        for target, name, fn in hook.listeners:
            if event.contains(target, name, fn):
                event.remove(target, name, fn)


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _hook is not None
