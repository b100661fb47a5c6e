"""The single path every log event takes, whether it came from structlog or from stdlib ``logging``.

Both front ends (obskit's bound logger and the root handler) call :func:`process`, so a line looks the same
and is correlated the same wherever it came from. Everything that depends on ``init()``'s settings lives in
one immutable :class:`State` that ``configure_logging`` swaps in a single assignment: loggers created and
cached before ``init()`` therefore follow it afterwards, and a reader never sees half of an old setup.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol

import orjson
from opentelemetry.trace import get_current_span
from structlog.contextvars import STRUCTLOG_KEY_PREFIX
from structlog.dev import ConsoleRenderer, plain_traceback
from structlog.tracebacks import ExceptionDictTransformer

from .._runtime import _fork, _health
from .._runtime._redact import Redactor
from .._runtime._safe import in_telemetry, report_internal_error, utf8_safe

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

__all__ = ["ACCESS_LOGGERS", "ExcInfo", "State", "context_fields", "default_state", "normalize_exc_info",
           "process"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

_PREFIX = STRUCTLOG_KEY_PREFIX
_PREFIX_LEN = len(STRUCTLOG_KEY_PREFIX)
_JSON_OPTS = orjson.OPT_APPEND_NEWLINE
# Locals can hold passwords and tokens that redaction by key never sees: tracebacks never carry them.
_TO_DICT = ExceptionDictTransformer(show_locals=False)
# Loggers whose exceptions are telemetry's own (an exporter's connection error quoting its URL): their text
# is always scrubbed, whereas the application's exceptions are only with ``redact_exceptions``.
_INTERNAL = ("obskit.", "opentelemetry", "grpc")
# Loggers servers write their access lines to. Each line repeats its request's server span (method, route,
# status, duration), so it is exported over OTLP only with ``access_log_export``.
ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access", "hypercorn.access", "django.server", "werkzeug",
                  "aiohttp.access")


class Exporter(Protocol):
    """What :func:`process` needs from the OTLP bridge (see ``_logging_otlp``)."""

    def emit(
        self,
        level: int,
        logger_name: str,
        event: Any,
        fields: Mapping[str, Any],
        exc_info: ExcInfo | None,
        created: float,
        record: logging.LogRecord | None,
    ) -> None: ...


Renderer = Callable[[str, str, str, Any, "dict[str, Any]", "tuple[str, str] | None", "ExcInfo | None"], str]


class State:
    """Everything a log call reads; replaced as a whole, never mutated."""

    __slots__ = ("exporter", "level", "redactor", "render", "stream", "unexported")

    def __init__(
        self,
        *,
        level: int,
        render: Renderer,
        stream: IO[str] | None,
        redactor: Redactor,
        exporter: Exporter | None,
        unexported: frozenset[str] = frozenset(),
    ) -> None:
        self.level = level
        self.render = render
        self.stream = stream  # None: sys.stdout looked up at write time (pytest's capsys swaps it)
        self.redactor = redactor
        self.exporter = exporter
        self.unexported = unexported  # loggers whose lines are printed but not exported

    def without_exporter(self) -> State:
        return State(
            level=self.level, render=self.render, stream=self.stream, redactor=self.redactor, exporter=None
        )


# --- small helpers -------------------------------------------------------------------------------------

_level_names: dict[int, str] = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


def level_name(level: int) -> str:
    name = _level_names.get(level)
    if name is None:
        name = logging.getLevelName(level).lower().replace("level ", "level_")
        if len(_level_names) < 256:
            _level_names[level] = name
    return name


_ts_cache: tuple[int, str] = (-1, "")


def iso_timestamp(t: float) -> str:
    """ISO-8601 UTC with microseconds; the date part is formatted once per second, not per line."""
    global _ts_cache
    sec = int(t)
    cached_sec, prefix = _ts_cache
    if sec != cached_sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _ts_cache = (sec, prefix)
    return "%s.%06dZ" % (prefix, (t - sec) * 1_000_000)  # noqa: UP031 - measurably faster than an f-string


def safe_str(value: object) -> str:
    """``str()`` that cannot fail: a value whose ``__str__`` raises must not cost the line."""
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__name__}>"


def normalize_exc_info(exc_info: object) -> ExcInfo | None:
    """Accept what structlog and stdlib accept: True, an exception, or a ``sys.exc_info()`` tuple."""
    if exc_info is None or exc_info is False:
        return None
    if isinstance(exc_info, BaseException):
        return (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[0] is not None:
        etype, value, tb = exc_info
        if isinstance(value, BaseException):
            return (type(value), value, tb if tb is not None else value.__traceback__)
        if isinstance(etype, type) and issubclass(etype, BaseException):  # (ValueError, None, None)
            try:
                made = etype() if value is None else etype(value)
            except Exception:
                return None
            return (etype, made, None)
        return None  # not an exception at all: log the line without one
    if exc_info is True or exc_info:
        current = sys.exc_info()
        if current[0] is not None:
            return current  # type: ignore[return-value]
    return None


_BOUND_VARS: dict[str, contextvars.ContextVar[Any]] | None
try:  # structlog's own registry of the variables bind_contextvars() made (prefixed name -> variable)
    from structlog.contextvars import _CONTEXT_VARS as _BOUND_VARS
except ImportError:  # pragma: no cover - a structlog without it: walk the whole context instead
    _BOUND_VARS = None


def context_fields() -> dict[str, Any]:
    """The ``structlog.contextvars`` context of the caller (``bind_context`` and friends).

    Reads only the variables structlog made, each once, rather than copying the caller's whole context
    (every variable of every library) on each line; none bound costs nothing.
    """
    out: dict[str, Any] = {}
    bound = _BOUND_VARS
    if bound is None:
        for var, value in contextvars.copy_context().items():
            if value is not Ellipsis and var.name.startswith(_PREFIX):
                out[var.name[_PREFIX_LEN:]] = value
        return out
    if bound:
        for name, var in tuple(bound.items()):
            value = var.get(Ellipsis)
            if value is not Ellipsis:
                out[name[_PREFIX_LEN:]] = value
    return out


_last_ids: tuple[object, tuple[str, str] | None] = (None, None)


def _trace_ids() -> tuple[str, str] | None:
    """Hex ids of the current span; formatting 128-bit ints is costly, so the last span's are reused."""
    global _last_ids
    ctx: SpanContext = get_current_span().get_span_context()
    last_ctx, ids = _last_ids
    if ctx is last_ctx:
        return ids
    ids = ("%032x" % ctx.trace_id, "%016x" % ctx.span_id) if ctx.is_valid else None  # noqa: UP031
    _last_ids = (ctx, ids)
    return ids


# --- renderers -----------------------------------------------------------------------------------------


def _json_default(value: object) -> Any:
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return safe_str(value)


def _sanitize(value: Any, depth: int = 0) -> Any:
    """Slow path: make anything orjson refused (huge ints, odd keys) serialisable."""
    if depth > 20:
        return utf8_safe(safe_str(value))
    if isinstance(value, str):
        return utf8_safe(value)  # orjson refuses lone surrogates (undecodable bytes in a message)
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, Mapping):
        return {utf8_safe(safe_str(k)): _sanitize(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_sanitize(v, depth + 1) for v in value]
    return utf8_safe(safe_str(value))


def render_json(
    ts: str,
    level: str,
    logger: str,
    event: Any,
    fields: dict[str, Any],
    trace_ids: tuple[str, str] | None,
    exc_info: ExcInfo | None,
    service_fields: Mapping[str, str] = {},
) -> str:
    out: dict[str, Any] = {"timestamp": ts, "level": level, "logger": logger, "event": event}
    out.update(fields)
    if len(out) != 4 + len(fields):  # a field shadowed a base key: the base key wins, in place
        out.update(timestamp=ts, level=level, logger=logger, event=event)
    out.update(service_fields)
    if trace_ids is not None:
        out["trace_id"], out["span_id"] = trace_ids
    if exc_info is not None:
        out["exception"] = _TO_DICT(exc_info)
    try:
        data = orjson.dumps(out, default=_json_default, option=_JSON_OPTS)
    except (TypeError, orjson.JSONEncodeError):
        data = orjson.dumps(_sanitize(out), default=_json_default, option=_JSON_OPTS)
    return data.decode()


def make_json_renderer(service_fields: Mapping[str, str]) -> Renderer:
    return functools.partial(render_json, service_fields=dict(service_fields))


def make_console_renderer(colors: bool) -> Renderer:
    # plain_traceback: the rich/better-exceptions formatters would print local variables.
    console = ConsoleRenderer(colors=colors, exception_formatter=plain_traceback)

    def render(
        ts: str,
        level: str,
        logger: str,
        event: Any,
        fields: dict[str, Any],
        trace_ids: tuple[str, str] | None,
        exc_info: ExcInfo | None,
    ) -> str:
        ed: dict[str, Any] = {"timestamp": ts, "level": level, "event": safe_str(event), "logger": logger}
        for k, v in fields.items():
            if k not in ed:
                ed[k] = v
        if trace_ids is not None:
            ed["trace_id"], ed["span_id"] = trace_ids
        if exc_info is not None:
            ed["exc_info"] = exc_info
        return str(console(None, level, ed)) + "\n"

    return render


def is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except Exception:
        return False


def make_auto_renderer(stream: IO[str] | None, service_fields: Mapping[str, str]) -> Renderer:
    """Before ``init()`` the stream may still change (tests, redirects): decide on every line."""
    json_r = make_json_renderer(service_fields)
    console_r = make_console_renderer(colors=True)
    plain_r = make_console_renderer(colors=False)

    def render(
        ts: str,
        level: str,
        logger: str,
        event: Any,
        fields: dict[str, Any],
        trace_ids: tuple[str, str] | None,
        exc_info: ExcInfo | None,
    ) -> str:
        target = stream if stream is not None else sys.stdout
        r = (console_r if _colors_allowed() else plain_r) if is_tty(target) else json_r
        return r(ts, level, logger, event, fields, trace_ids, exc_info)

    return render


def _colors_allowed() -> bool:
    return not os.environ.get("NO_COLOR")


def default_state() -> State:
    """What obskit does before ``init()``: INFO and up, console on a TTY else JSON, to stdout."""
    return State(
        level=logging.INFO,
        render=make_auto_renderer(None, {}),
        stream=None,
        redactor=Redactor(),
        exporter=None,
    )


STATE: State = default_state()
_write_lock = threading.RLock()


def _new_lock_in_child() -> None:
    """A fork while another thread held the lock (gunicorn, multiprocessing) must not deadlock the child."""
    global _write_lock
    _write_lock = threading.RLock()


def set_state(state: State) -> None:
    global STATE
    STATE = state
    _fork.register("log write lock", after_in_child=_new_lock_in_child)



# --- the path ------------------------------------------------------------------------------------------


def process(
    level: int,
    logger_name: str,
    event: Any,
    fields: dict[str, Any],
    exc_info: ExcInfo | None,
    created: float | None = None,
    record: logging.LogRecord | None = None,
) -> None:
    """Redact, correlate, render, write, then export one event. Never raises.

    The line is written before the export so that it is out even if exporting fails, and so that anything
    the exporter logs follows the line that caused it. The message is scrubbed like any other text (an
    access line's ``?token=``, a library's warning quoting a URL with credentials); an exception's text
    only with ``redact_exceptions``, or when it is telemetry's own.
    """
    if in_telemetry() and _health.stale():  # an export that outlived its setup's shutdown
        return
    st = STATE
    try:
        redactor = st.redactor
        try:
            if fields and redactor.needs_redaction(fields):
                fields = redactor.redact(fields)
            if type(event) is str:
                event = redactor.scrub_text(event)
        except Exception as exc:  # a value redaction cannot walk: keep the line, drop the fields
            report_internal_error("logging: redaction", exc)
            fields = {"obskit_error": "fields could not be redacted"}
        if created is None:
            created = time.time()
        trace_ids = _trace_ids()
        try:
            line = st.render(
                iso_timestamp(created), level_name(level), logger_name, event, fields, trace_ids, exc_info
            )
        except Exception as exc:
            report_internal_error("logging: rendering", exc)
            line = _fallback_line(level, logger_name, event, exc_info)
        if exc_info is not None and (redactor.scrub_exceptions or in_telemetry()
                                     or logger_name.startswith(_INTERNAL) or logger_name == "obskit"):
            line = redactor.scrub_text(line)
        _write(st.stream, utf8_safe(line))
        if st.exporter is not None and logger_name not in st.unexported:
            try:
                st.exporter.emit(level, logger_name, event, fields, exc_info, created, record)
            except Exception as exc:
                report_internal_error("logging: OTLP log export", exc)
    except Exception as exc:
        report_internal_error("logging", exc)


def _fallback_line(level: int, logger_name: str, event: Any, exc_info: ExcInfo | None) -> str:
    """A field defeated the renderer: still say what happened, without the fields."""
    out: dict[str, Any] = {
        "timestamp": iso_timestamp(time.time()),
        "level": level_name(level),
        "logger": logger_name,
        "event": utf8_safe(safe_str(event)),
        "obskit_error": "fields could not be rendered",
    }
    if exc_info is not None:
        out["exception"] = utf8_safe(safe_str("".join(traceback.format_exception_only(exc_info[0],
                                                                                        exc_info[1]))))
    return orjson.dumps(out, option=_JSON_OPTS).decode()


_writing = threading.local()


def _write(stream: IO[str] | None, line: str) -> None:
    target = stream if stream is not None else sys.stdout
    reentered = getattr(_writing, "active", False)
    if reentered:
        # The stream itself logged while we wrote to it (sys.stdout redirected into logging): write this
        # line to the real stdout instead of going round again, which would recurse until the process dies.
        target = sys.__stdout__
    if target is None:  # pythonw, or a closed-down interpreter
        return
    try:
        with _write_lock:
            _writing.active = True
            try:
                target.write(line)
                target.flush()
            finally:
                _writing.active = reentered
    except Exception as exc:
        if getattr(target, "closed", False):  # interpreter shutdown closed it: nothing left to tell
            return
        report_internal_error("logging: writing to the log stream", exc)
