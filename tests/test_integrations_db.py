"""SQL integrations against the real servers on loopback: SQLAlchemy (sync and asyncio), psycopg2 and asyncpg
on PostgreSQL (127.0.0.1:5432, db ``test``), PyMySQL on MariaDB (127.0.0.1:3306, db ``test``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import require
from obskit.integrations._sql import operation_name, sanitize
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from obskit.testing import Capture, capture

PG = "postgresql://postgres@127.0.0.1:5432/test"
SECRET = "alice@example.com"


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(autouse=True)
def _semconv(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """init() decides OTEL_SEMCONV_STABILITY_OPT_IN; the contrib layer reads it once per process, so it is
    made to read it again here (an earlier test may have set another value)."""
    from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability as Stability

    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    Stability._initialized = False
    yield
    Stability._initialized = False


@pytest.fixture
def pg() -> str:
    """The PostgreSQL DSN, once the server answers."""
    require(_reachable(5432), "PostgreSQL is not reachable on 127.0.0.1:5432")
    return PG


@pytest.fixture
def maria() -> None:
    """MariaDB answers on 127.0.0.1:3306."""
    require(_reachable(3306), "MariaDB is not reachable on 127.0.0.1:3306")


def _db_spans(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans if s.attributes and "db.system" in s.attributes]


def _statement(span: ReadableSpan) -> str:
    assert span.attributes is not None
    return str(span.attributes.get("db.query.text", span.attributes.get("db.statement")))


def _duration_count(cap: Capture, **labels: Any) -> float:
    return cap.metric("db_client_operation_duration_seconds_count",
                      **{k: str(v) for k, v in labels.items()}) or 0


def _pg_selects(cap: Capture, **labels: Any) -> float:
    """db_client_operation_duration_seconds_count for SELECTs on the local PostgreSQL database ``test``."""
    return _duration_count(cap, db_system_name="postgresql", db_namespace="test", db_operation_name="SELECT",
                           server_address="127.0.0.1", server_port=5432, **labels)


def _maria_selects(cap: Capture) -> float:
    """The same for MariaDB (recorded as ``mysql`` by the dbapi layer)."""
    return _duration_count(cap, db_system_name="mysql", db_namespace="test", db_operation_name="SELECT",
                           server_address="127.0.0.1", server_port=3306)


# --- sanitization, the function every SQL integration records through ----------------------------------


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT 1", "SELECT ?"),
    (f"SELECT * FROM users WHERE email = '{SECRET}' AND id = 42",
     "SELECT * FROM users WHERE email = ? AND id = ?"),
    ("SELECT a::int FROM t1 WHERE x = %s AND y = %(n)s AND z = $1 AND w = :p",
     "SELECT a::int FROM t1 WHERE x = %s AND y = %(n)s AND z = $1 AND w = :p"),
    ("INSERT INTO t (a, b) VALUES ('it''s', E'a\\'b'), (1.5e3, .5)",
     "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"),
    ("SELECT $$body$$, $f$x$f$, X'0F', 0x1f", "SELECT ?, ?, ?, ?"),
    ("/* app='checkout' */ SELECT \"col1\" FROM \"T2\" WHERE c IN (1, 2)",
     "/* app='checkout' */ SELECT \"col1\" FROM \"T2\" WHERE c IN (?, ?)"),
])
def test_sanitize_replaces_literals_and_keeps_the_rest(sql: str, expected: str) -> None:
    """Literals become ?, placeholders, identifiers, casts and comments stay."""
    assert sanitize(sql) == expected


def test_sanitize_mysql_double_quoted_strings() -> None:
    """For MySQL/MariaDB a double-quoted token is a string value, and is replaced too."""
    assert sanitize('SELECT "bob" FROM t', double_quoted_strings=True) == "SELECT ? FROM t"


def test_operation_name_skips_comments_and_parentheses() -> None:
    """The operation is the first keyword, upper-cased, after leading comments and parentheses."""
    statements = ("select 1", "/* x */ (SELECT 1)", "-- c\nWITH q AS (SELECT 1) SELECT 1", "  ")
    assert [operation_name(s) for s in statements] == ["SELECT", "SELECT", "WITH", ""]


# --- SQLAlchemy ----------------------------------------------------------------------------------------


def test_sqlalchemy_engine_made_before_init_is_traced_once_per_statement(pg: str) -> None:
    """An engine created before init(): one CLIENT span per statement (not one more from psycopg2), with the
    semantic-convention attributes and no literal value, and one duration observation."""
    import sqlalchemy as sa

    engine = sa.create_engine(pg.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with capture(integrations=["sqlalchemy", "psycopg2"]) as cap:
            with engine.connect() as conn:
                cap.clear()  # the dialect's own first queries
                before = _pg_selects(cap)
                row = conn.execute(sa.text(f"SELECT 7 WHERE '{SECRET}' <> :other"), {"other": "x"}).scalar()
            assert row == 7
            spans = _db_spans(cap)
            after = _pg_selects(cap)
    finally:
        engine.dispose()
    assert [s.instrumentation_scope.name for s in spans if s.instrumentation_scope] == [
        "obskit.integrations.sqlalchemy"]
    span = spans[0]
    assert span.name == "SELECT test" and span.kind is SpanKind.CLIENT
    assert span.attributes is not None
    assert span.attributes["db.system"] == "postgresql"
    assert span.attributes["db.namespace"] == "test"
    assert span.attributes["db.operation.name"] == "SELECT"
    assert span.attributes["db.query.text"] == "SELECT ? WHERE ? <> %(other)s"
    assert SECRET not in str(dict(span.attributes))
    assert after == before + 1


def test_sqlalchemy_asyncio_engine_made_after_init(pg: str) -> None:
    """An AsyncEngine created after init() is traced too, its spans children of the caller's span."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    import obskit

    async def run() -> int:
        engine = create_async_engine(pg.replace("postgresql://", "postgresql+psycopg://"))
        try:
            async with engine.connect() as conn:
                with obskit.span("report"):
                    return int((await conn.execute(sa.text("SELECT 40 + 2"))).scalar_one())
        finally:
            await engine.dispose()

    with capture(integrations=["sqlalchemy", "psycopg"]) as cap:
        assert asyncio.run(run()) == 42
        parent = cap.span("report")
        spans = [s for s in _db_spans(cap) if _statement(s) == "SELECT ? + ?"]
    assert len(spans) == 1 and spans[0].name == "SELECT test"
    assert spans[0].parent is not None and spans[0].parent.span_id == parent.context.span_id
    assert spans[0].context.trace_id == parent.context.trace_id


def test_sqlalchemy_failed_statement_is_an_error(pg: str) -> None:
    """A failing statement: span status ERROR with error.type, and the duration carries error.type."""
    import sqlalchemy as sa

    with capture(integrations=["sqlalchemy"]) as cap:
        engine = sa.create_engine(pg.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError):
            conn.execute(sa.text("SELECT * FROM obskit_no_such_table"))
        engine.dispose()
        (span,) = [s for s in _db_spans(cap) if "obskit_no_such_table" in _statement(s)]
        failures = _pg_selects(cap, error_type="UndefinedTable")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "UndefinedTable"
    assert failures >= 1


def test_sqlalchemy_pool_gauge_counts_used_and_idle(pg: str) -> None:
    """db_client_connection_count shows a checked-out connection as used, then as idle once returned."""
    import sqlalchemy as sa

    name = "postgresql+psycopg2://127.0.0.1:5432/test"
    with capture(integrations=["sqlalchemy"]) as cap:
        engine = sa.create_engine(pg.replace("postgresql://", "postgresql+psycopg2://"), pool_size=3)
        with engine.connect() as one, engine.connect() as two:
            one.execute(sa.text("SELECT 1"))
            two.execute(sa.text("SELECT 1"))
            used = cap.metric("db_client_connection_count", db_client_connection_pool_name=name,
                              db_client_connection_state="used")
        idle = cap.metric("db_client_connection_count", db_client_connection_pool_name=name,
                          db_client_connection_state="idle")
        used_after = cap.metric("db_client_connection_count", db_client_connection_pool_name=name,
                                db_client_connection_state="used")
        engine.dispose()
    assert (used, idle, used_after) == (2, 2, 0)


def test_sqlalchemy_keeps_literals_when_asked(pg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """OBSKIT_DB_QUERY_LITERALS=true records the statement as sent."""
    import sqlalchemy as sa

    monkeypatch.setenv("OBSKIT_DB_QUERY_LITERALS", "true")
    with capture(integrations=["sqlalchemy"]) as cap:
        engine = sa.create_engine(pg.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.connect() as conn:
            conn.execute(sa.text(f"SELECT '{SECRET}'"))
        engine.dispose()
        statements = [_statement(s) for s in _db_spans(cap)]
    assert f"SELECT '{SECRET}'" in statements


def test_sqlalchemy_switched_off_records_nothing(pg: str) -> None:
    """After the integration is switched off, statements run untraced (and still run)."""
    import sqlalchemy as sa
    from obskit.integrations import sqlalchemy as integration

    with capture(integrations=["sqlalchemy"]) as cap:
        integration.uninstrument()
        engine = sa.create_engine(pg.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 5")).scalar() == 5
        engine.dispose()
        assert _db_spans(cap) == []
        assert not integration.is_instrumented()


# --- psycopg2 ------------------------------------------------------------------------------------------


def test_psycopg2_span_sanitized_real_connection_and_own_cursor(pg: str) -> None:
    """psycopg2: a CLIENT span per execute with no literal, the connection a real psycopg2 connection, the
    caller's cursor_factory kept, and one duration observation."""
    import psycopg2
    import psycopg2.extensions
    import psycopg2.extras

    with capture(integrations=["psycopg2"]) as cap:
        before = _pg_selects(cap)
        conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test",
                                cursor_factory=psycopg2.extras.RealDictCursor)
        try:
            assert isinstance(conn, psycopg2.extensions.connection)
            with conn.cursor() as cur:
                assert isinstance(cur, psycopg2.extras.RealDictCursor)
                cur.execute(f"SELECT %s AS a, '{SECRET}' AS b", (1,))
                assert cur.fetchone()["b"] == SECRET
        finally:
            conn.close()
        after = _pg_selects(cap)
        span = cap.span("SELECT")
    assert span.kind is SpanKind.CLIENT and span.attributes is not None
    assert span.attributes["db.system"] == "postgresql" and span.attributes["db.namespace"] == "test"
    assert span.attributes["db.query.text"] == "SELECT %s AS a, ? AS b"
    assert SECRET not in str(dict(span.attributes))
    assert after == before + 1


# --- PyMySQL on MariaDB --------------------------------------------------------------------------------


def test_pymysql_span_on_mariadb_sanitized(maria: None) -> None:
    """PyMySQL on MariaDB: a CLIENT span with db.system mysql, double-quoted strings sanitized too, and one
    duration observation."""
    import pymysql
    import pymysql.cursors

    with capture(integrations=["pymysql"]) as cap:
        before = _maria_selects(cap)
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test",
                               cursorclass=pymysql.cursors.DictCursor)
        try:
            assert isinstance(conn, pymysql.connections.Connection)
            with conn.cursor() as cur:
                assert isinstance(cur, pymysql.cursors.DictCursor)
                cur.execute(f"SELECT %s AS a, \"{SECRET}\" AS b", (1,))
                assert cur.fetchone() == {"a": 1, "b": SECRET}
        finally:
            conn.close()
        after = _maria_selects(cap)
        span = cap.span("SELECT")
    assert span.kind is SpanKind.CLIENT and span.attributes is not None
    assert span.attributes["db.system"] == "mysql" and span.attributes["db.namespace"] == "test"
    assert span.attributes["db.query.text"] == "SELECT %s AS a, ? AS b"
    assert SECRET not in str(dict(span.attributes))
    assert after == before + 1


def test_sqlalchemy_on_pymysql_is_one_span(maria: None) -> None:
    """SQLAlchemy over PyMySQL with both integrations on: one span per statement, from SQLAlchemy."""
    import sqlalchemy as sa

    with capture(integrations=["sqlalchemy", "pymysql"]) as cap:
        engine = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/test")
        with engine.connect() as conn:
            cap.clear()
            assert conn.execute(sa.text("SELECT 'x'")).scalar() == "x"
        engine.dispose()
        spans = _db_spans(cap)
    assert [(s.name, _statement(s)) for s in spans] == [("SELECT test", "SELECT ?")]
    assert spans[0].attributes is not None and spans[0].attributes["db.system"] == "mariadb"


# --- asyncpg ---------------------------------------------------------------------------------------------


def test_asyncpg_connection_and_pool_made_before_init(pg: str) -> None:
    """asyncpg: a connection opened before init() is traced: one span per call, sanitized, in the caller's
    trace, a failed query is an error, and each call is one duration observation."""
    import asyncpg

    import obskit

    async def run(cap: Capture, conn: Any) -> tuple[Any, float, float]:
        before = _pg_selects(cap)
        with obskit.span("report"):
            value = await conn.fetchval(f"SELECT $1::int + 1 WHERE '{SECRET}' <> ''", 41)
            with pytest.raises(asyncpg.UndefinedTableError):
                await conn.execute("SELECT * FROM obskit_no_such_table")
        return value, before, _pg_selects(cap)

    async def main() -> None:
        conn = await asyncpg.connect(pg)
        try:
            with capture(integrations=["asyncpg"]) as cap:
                value, before, after = await run(cap, conn)
                parent = cap.span("report")
                spans = _db_spans(cap)
        finally:
            await conn.close()
        assert value == 42 and after == before + 1
        assert [_statement(s) for s in spans] == ["SELECT $1::int + ? WHERE ? <> ?",
                                                  "SELECT * FROM obskit_no_such_table"]
        ok, failed = spans
        assert ok.name == "SELECT test" and ok.kind is SpanKind.CLIENT
        assert ok.parent is not None and ok.parent.span_id == parent.context.span_id
        assert ok.attributes is not None and ok.attributes["server.port"] == 5432
        assert failed.status.status_code is StatusCode.ERROR

    asyncio.run(main())


def test_sqlalchemy_on_asyncpg_is_one_span(pg: str) -> None:
    """SQLAlchemy's asyncpg dialect with both integrations on: one span per statement, from SQLAlchemy."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    async def main(cap: Capture) -> None:
        engine = create_async_engine(pg.replace("postgresql://", "postgresql+asyncpg://"))
        try:
            async with engine.connect() as conn:
                cap.clear()
                assert (await conn.execute(sa.text("SELECT 'x'"))).scalar() == "x"
        finally:
            await engine.dispose()

    with capture(integrations=["sqlalchemy", "asyncpg"]) as cap:
        asyncio.run(main(cap))
        # (the pool's ROLLBACK on return is asyncpg's own call, outside any statement: a span of its own)
        spans = [s for s in _db_spans(cap) if _statement(s).startswith("SELECT")]
    assert [(s.name, s.instrumentation_scope.name if s.instrumentation_scope else "", _statement(s))
            for s in spans] == [("SELECT test", "obskit.integrations.sqlalchemy", "SELECT ?")]
