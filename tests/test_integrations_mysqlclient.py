"""The mysqlclient integration (``MySQLdb``, on opentelemetry-instrumentation-dbapi) against the local
MariaDB: a CLIENT span per execute/executemany with the query text without literals, the duration on
/metrics, real connections and the caller's cursor class kept, errors recorded and re-raised, and off
restoring connect."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from conftest import require
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

# The SQL tests' helpers: the semantic-conventions mode re-read per test (an autouse fixture), reachability.
from test_integrations_db import _reachable, _semconv  # noqa: F401

from obskit.testing import Capture, capture

SECRET = "alice@example.com"
DB = {"host": "127.0.0.1", "port": 3306, "user": "root"}

try:
    import MySQLdb
    import MySQLdb.cursors

    CONNECT = MySQLdb.connect  # before anything is switched on: off must put this very function back
except ImportError:  # the CI image builds it against libmariadb-dev; require() below fails there if missing
    MySQLdb = None


@pytest.fixture
def mysqldb() -> ModuleType:
    """MySQLdb, with MariaDB answering on 127.0.0.1:3306."""
    require(MySQLdb is not None, "mysqlclient (MySQLdb) is not installed: it needs libmariadb-dev to build")
    require(_reachable(3306), "MariaDB is not reachable on 127.0.0.1:3306")
    return MySQLdb


def _db_spans(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans if s.attributes and s.attributes.get("db.system") == "mysql"]


def _count(cap: Capture, **labels: str) -> float:
    """db_client_operation_duration_seconds_count for the database ``test`` on the local MariaDB."""
    return cap.metric("db_client_operation_duration_seconds_count", db_system_name="mysql",
                      db_namespace="test", server_address="127.0.0.1", server_port="3306", **labels) or 0


def test_execute_is_a_sanitized_span_on_a_real_connection_with_the_callers_cursor(mysqldb: Any) -> None:
    """One execute: one CLIENT span with db.system mysql, db.namespace, db.operation.name and the text with
    every literal (double-quoted too) replaced; the connection a real MySQLdb connection, the caller's
    DictCursor kept; one duration observation."""
    with capture(integrations=["mysqlclient"]) as cap:
        before = _count(cap, db_operation_name="SELECT")
        conn = mysqldb.connect(database="test", cursorclass=mysqldb.cursors.DictCursor, **DB)
        try:
            assert isinstance(conn, mysqldb.connections.Connection)
            cur = conn.cursor()
            assert isinstance(cur, mysqldb.cursors.DictCursor)
            cur.execute(f"SELECT %s AS a, \"{SECRET}\" AS b, 42 AS c", (1,))
            assert cur.fetchall() == ({"a": 1, "b": SECRET, "c": 42},)
        finally:
            conn.close()
        after = _count(cap, db_operation_name="SELECT")
        (span,) = _db_spans(cap)
    assert span.kind is SpanKind.CLIENT and span.name == "SELECT" and span.attributes is not None
    assert span.attributes["db.namespace"] == "test" and span.attributes["db.operation.name"] == "SELECT"
    assert span.attributes["db.query.text"] == "SELECT %s AS a, ? AS b, ? AS c"
    assert span.attributes["server.address"] == "127.0.0.1" and span.attributes["server.port"] == 3306
    assert SECRET not in str(dict(span.attributes))
    assert after == before + 1


def test_executemany_and_every_name_of_connect_are_traced(mysqldb: Any) -> None:
    """executemany is one span; connections from MySQLdb.Connect and MySQLdb.Connection (the same function
    under other names) are traced too."""
    with capture(integrations=["mysqlclient"]) as cap:
        for connect in (mysqldb.connect, mysqldb.Connect, mysqldb.Connection):
            conn = connect(db="test", **DB)
            try:
                conn.cursor().execute("SELECT 1")
            finally:
                conn.close()
        conn = mysqldb.connect(db="test", **DB)
        try:
            cur = conn.cursor()
            cur.execute("CREATE TEMPORARY TABLE obskit_many (n INT, s VARCHAR(40))")
            cur.executemany("INSERT INTO obskit_many VALUES (%s, %s)", [(1, SECRET), (2, SECRET)])
            assert cur.rowcount == 2
        finally:
            conn.close()
        spans = _db_spans(cap)
    assert [(s.name, s.attributes and s.attributes["db.query.text"]) for s in spans] == [
        ("SELECT", "SELECT ?")] * 3 + [
        ("CREATE", "CREATE TEMPORARY TABLE obskit_many (n INT, s VARCHAR(?))"),
        ("INSERT", "INSERT INTO obskit_many VALUES (%s, %s)")]


def test_failed_statement_is_an_error_and_reaches_the_caller_unchanged(mysqldb: Any) -> None:
    """A statement MariaDB rejects: the caller gets MySQLdb's ProgrammingError, the span is an ERROR with the
    exception recorded, and the duration is counted with error_type ProgrammingError."""
    with capture(integrations=["mysqlclient"]) as cap:
        before = _count(cap, db_operation_name="SELECT", error_type="ProgrammingError")
        conn = mysqldb.connect(db="test", **DB)
        try:
            with pytest.raises(mysqldb.ProgrammingError) as caught:
                conn.cursor().execute("SELECT * FROM obskit_no_such_table WHERE id = 7")
        finally:
            conn.close()
        after = _count(cap, db_operation_name="SELECT", error_type="ProgrammingError")
        (span,) = _db_spans(cap)
    assert caught.value.args[0] == 1146  # ER_NO_SUCH_TABLE, as MariaDB said it
    assert span.status.status_code is StatusCode.ERROR and [e.name for e in span.events] == ["exception"]
    assert after == before + 1


def test_sqlalchemy_on_mysqlclient_is_one_span(mysqldb: Any) -> None:
    """SQLAlchemy over mysqlclient with both integrations on: one span per statement, from SQLAlchemy."""
    sa = pytest.importorskip("sqlalchemy")
    with capture(integrations=["sqlalchemy", "mysqlclient"]) as cap:
        engine = sa.create_engine("mysql+mysqldb://root@127.0.0.1:3306/test")
        with engine.connect() as conn:
            cap.clear()
            assert conn.execute(sa.text("SELECT 'x'")).scalar() == "x"
        engine.dispose()
        spans = [s for s in cap.spans if s.attributes and "db.system" in s.attributes]
    assert [(s.name, s.instrumentation_scope and s.instrumentation_scope.name) for s in spans] == [
        ("SELECT test", "obskit.integrations.sqlalchemy")]


def test_on_is_idempotent_and_off_restores_connect(mysqldb: Any) -> None:
    """instrument() while on changes nothing; off puts the very original connect back, and connections
    opened then make no span."""
    from obskit.integrations import mysqlclient

    with capture(integrations=["mysqlclient"]):
        wrapped = mysqldb.connect
        assert wrapped is not CONNECT and mysqlclient.is_instrumented()
        assert mysqlclient.instrument() is False and mysqldb.connect is wrapped
    assert mysqldb.connect is CONNECT and mysqldb.Connect is CONNECT and mysqldb.Connection is CONNECT
    assert not mysqlclient.is_instrumented()
    with capture(integrations="none") as cap:
        conn = mysqldb.connect(db="test", **DB)
        try:
            conn.cursor().execute("SELECT 1")
        finally:
            conn.close()
        assert _db_spans(cap) == []
