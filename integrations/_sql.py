"""What every SQL integration records the same way: the query text without literal values, the operation name,
and ``db.client.operation.duration``.

Why sanitize here and not trust parameters: a driver sees ``WHERE id = %s`` only when the application passed
parameters. Code that formats values into the text (``f"... WHERE email = '{email}'"``), ORMs rendering
literals, ``IN (1, 2, 3)`` lists: all put values in the statement, and a span attribute is exported, stored
and searchable for weeks. The semantic conventions ask for exactly this: literals replaced by ``?``,
placeholders (``%s``, ``%(name)s``, ``$1``, ``:name``, ``?``), identifiers, keywords and comments kept, so
that the same query always gives the same text (which is also what makes it groupable).

Imports nothing from a database library: the hooks that do are imported by ``setup`` only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["DURATION", "StatementRecorder", "is_suppressed", "keep_literals", "operation_name", "sanitize",
           "set_keep_literals", "text_for"]

#: The semantic conventions' duration metric for a database call (exposed as
#: ``db_client_operation_duration_seconds``); the dbapi-based hooks get it from
#: ``opentelemetry-instrumentation-dbapi``, the others from :class:`StatementRecorder`.
DURATION = "db.client.operation.duration"

# One pass, leftmost match wins, so a quote inside a comment or an identifier is not taken for a string.
# Kept as they are: comments, quoted identifiers, placeholders. Replaced by ``?``: string literals
# (with '' and, in E'...', backslash escapes), dollar-quoted bodies, hex/binary strings, numbers.
_TOKENS = re.compile(
    r"""
      (?P<keep>
          --[^\n]*                          # line comment
        | /\*.*?\*/                         # block comment
        | `[^`]*`                           # MySQL identifier
        | \$\d+                             # $1 placeholder (PostgreSQL, asyncpg)
        | %\([^)]*\)[sdfr]                  # %(name)s placeholder
        | %[sdfr]                           # %s placeholder
        | (?<![\w:]):[A-Za-z_]\w*           # :name placeholder (not a ::cast)
      )
    | (?P<ident>"(?:[^"]|"")*")             # "identifier" (PostgreSQL), "string" (MySQL)
    | (?P<lit>
          (?<![\w$])[eE]'(?:[^'\\]|\\.|'')*'                # E'escaped\n'
        | (?<![\w$])(?:[xXbBnN]|[uU]&)?'(?:[^']|'')*'       # 'text', X'0F', N'text'
        | \$(?P<tag>[A-Za-z_]\w*)?\$.*?\$(?P=tag)?\$        # $$body$$, $fn$body$fn$
        | (?<![\w$.])0[xX][0-9a-fA-F]+\b                    # 0x1F
        | (?<![\w$])(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w$])  # 42, 4.2, .5, 1e10
      )
    """,
    re.VERBOSE | re.DOTALL,
)
_LEADING = re.compile(r"^(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z]+")


def sanitize(statement: str, *, double_quoted_strings: bool = False) -> str:
    """``statement`` with every literal value replaced by ``?``.

    ``double_quoted_strings``: MySQL and MariaDB read ``"text"`` as a string (PostgreSQL and the standard as
    an identifier), so for them a double-quoted token is a value too.
    """

    def replace(match: re.Match[str]) -> str:
        if match.lastgroup == "lit" or match.group("lit") is not None:
            return "?"
        if match.group("ident") is not None and double_quoted_strings:
            return "?"
        return match.group(0)

    return _TOKENS.sub(replace, statement)


_keep = False


def set_keep_literals(keep: bool) -> None:
    """Set by each SQL integration's ``setup`` from ``db_query_literals`` (``OBSKIT_DB_QUERY_LITERALS``)."""
    global _keep
    _keep = bool(keep)


def keep_literals() -> bool:
    """Whether query text is recorded as sent, literal values included (off by default)."""
    return _keep


def text_for(statement: str, system: str) -> str:
    """The query text to record for ``system``: sanitized unless literals are kept."""
    if _keep:
        return statement
    return sanitize(statement, double_quoted_strings=system in ("mysql", "mariadb"))


def operation_name(statement: str) -> str:
    """The statement's first keyword, upper-cased (``SELECT``, ``INSERT``, ``WITH``), or "" when it has none.

    Leading comments (sqlcommenter's) and parentheses are skipped; no further parsing is attempted, as the
    semantic conventions advise against it.
    """
    rest = _LEADING.sub("", statement, count=1)
    word = _WORD.match(rest)
    return word.group(0).upper() if word else ""


def is_suppressed() -> bool:
    """Whether instrumentation is switched off here (obskit's own exports, or an outer SQL span)."""
    return bool(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))


T = TypeVar("T")



def _failed(span: Any, exc: Exception, metric_attributes: Mapping[str, Any]) -> Mapping[str, Any]:
    """Mark the statement's span failed with ``exc``; the metric attributes with its ``error.type``."""
    error = type(exc).__qualname__
    span.set_attribute("error.type", error)
    span.set_status(Status(StatusCode.ERROR, str(exc)))
    return {**metric_attributes, "error.type": error}

class StatementRecorder:
    """One CLIENT span and one ``db.client.operation.duration`` observation per statement.

    For the hooks that are not built on ``opentelemetry-instrumentation-dbapi`` (SQLAlchemy, asyncpg), so
    that their spans and metric carry the same attributes. While the statement runs, instrumentation is
    suppressed underneath: SQLAlchemy on top of psycopg2 gives one span and one observation per statement,
    not one from each layer.
    """

    #: Statements repeat (an ORM sends the same few hundred texts), so what is derived from one is kept:
    #: the sanitizing and the attribute dicts were the hook's largest cost after the span itself.
    CACHE_SIZE = 1024

    def __init__(self, scope: str, version: str) -> None:
        self._cache: dict[tuple[Any, ...], tuple[str, dict[str, Any], dict[str, Any]]] = {}
        self.tracer = trace.get_tracer(scope, version)
        self.duration = metrics.get_meter(scope, version).create_histogram(
            DURATION, unit="s", description="Duration of database client operations.")

    def attributes(self, system: str, statement: str, namespace: str | None, host: str | None,
                   port: int | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(span name, span attributes, metric attributes) for one statement; shared, not to be changed."""
        key = (system, statement, namespace, host, port, _keep)
        found = self._cache.get(key)
        if found is None:
            found = self._attributes(system, statement, namespace, host, port)
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()  # statements built with literals inside would otherwise grow it forever
            self._cache[key] = found
        return found

    def _attributes(self, system: str, statement: str, namespace: str | None, host: str | None,
                    port: int | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
        operation = operation_name(statement)
        text = text_for(statement, system)
        metric: dict[str, Any] = {"db.system.name": system}
        if namespace:
            metric["db.namespace"] = namespace
        if operation:
            metric["db.operation.name"] = operation
        if host:
            metric["server.address"] = host
        if port:
            metric["server.port"] = port
        span = {**metric, "db.system": system, "db.query.text": text}
        # "{db.operation.name} {target}", the target being the database when no table is parsed out.
        name = " ".join(p for p in (operation, namespace) if p) or system
        return name, span, metric

    async def run_async(self, name: str, span_attributes: Mapping[str, Any],
                        metric_attributes: Mapping[str, Any], call: Callable[[], Awaitable[T]]) -> T:
        """:meth:`run` for a coroutine (asyncpg)."""
        with self.tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=span_attributes,
                                               record_exception=True, set_status_on_exception=True) as span:
            token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            start = time.perf_counter()
            try:
                return await call()
            except Exception as exc:
                metric_attributes = _failed(span, exc, metric_attributes)
                raise
            finally:
                otel_context.detach(token)
                self.duration.record(time.perf_counter() - start, attributes=metric_attributes)

    def run(self, name: str, span_attributes: Mapping[str, Any], metric_attributes: Mapping[str, Any],
            call: Callable[[], T]) -> T:
        """Run ``call`` as the statement: inside its span, timed, with instrumentation below suppressed."""
        with self.tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=span_attributes,
                                               record_exception=True, set_status_on_exception=True) as span:
            token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            start = time.perf_counter()
            try:
                return call()
            except Exception as exc:
                metric_attributes = _failed(span, exc, metric_attributes)
                raise
            finally:
                otel_context.detach(token)
                self.duration.record(time.perf_counter() - start, attributes=metric_attributes)
