"""Logging: structlog and stdlib ``logging`` rendered alike, correlated with the current span, redacted.

``get_logger`` returns a structlog bound logger whose every call goes through
:func:`obskit._logs._pipeline.process`, which reads the settings of the last ``configure_logging`` at call
time. So a logger created (even cached by structlog) before ``obskit.init()`` follows ``init()`` afterwards,
and before ``init()`` it prints sensibly (INFO and up, console on a TTY, JSON otherwise) without touching
stdlib logging.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import structlog
from structlog import BoundLoggerBase
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars, unbind_contextvars

from .._runtime._redact import Redactor
from .._runtime._safe import capture_internal_exceptions, report_internal_error
from . import _pipeline as _pl
from ._pipeline import State, context_fields, is_tty, normalize_exc_info, process, safe_str
from ._stdlib import ObskitHandler, RoutingState

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider

    from .._config import Config

__all__ = [
    "BoundLogger",
    "LoggingHandle",
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "get_logger",
    "unbind_context",
]

_DEBUG, _INFO, _WARNING, _ERROR, _CRITICAL = (
    logging.DEBUG,
    logging.INFO,
    logging.WARNING,
    logging.ERROR,
    logging.CRITICAL,
)


class _Sink:
    """The "wrapped logger" structlog expects; it only carries the logger name (output is the pipeline's)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<obskit logger {self.name!r}>"


class BoundLogger(BoundLoggerBase):
    """A structlog bound logger (``bind``/``unbind``/``new`` as usual) whose output follows obskit's setup.

    The level check reads the current settings on every call, so no configuration is frozen in a cached
    instance; everything after the check is guarded: a log call never raises into the application.
    """

    _logger: _Sink

    def _emit(self, level: int, event: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        try:
            exc_info = kw.pop("exc_info", None)
            stack_info = kw.pop("stack_info", False)
            if args:
                try:
                    event = event % args
                except Exception:
                    event = f"{safe_str(event)} {safe_str(args)}"
            fields = context_fields()
            if self._context:
                fields.update(self._context)
            if kw:
                fields.update(kw)
            if stack_info:
                fields["stack"] = "".join(traceback.format_stack()[:-2])
            process(level, self._logger.name, event, fields, normalize_exc_info(exc_info))
        except Exception as exc:
            report_internal_error("logging", exc)

    def is_enabled_for(self, level: int) -> bool:
        """Whether ``level`` would be printed now (follows later ``init()`` calls, so do not cache it)."""
        return level >= _pl.STATE.level

    isEnabledFor = is_enabled_for

    def debug(self, event: Any = None, *args: Any, **kw: Any) -> None:
        if _pl.STATE.level <= _DEBUG:
            self._emit(_DEBUG, event, args, kw)

    def info(self, event: Any = None, *args: Any, **kw: Any) -> None:
        if _pl.STATE.level <= _INFO:
            self._emit(_INFO, event, args, kw)

    def warning(self, event: Any = None, *args: Any, **kw: Any) -> None:
        if _pl.STATE.level <= _WARNING:
            self._emit(_WARNING, event, args, kw)

    warn = warning

    def error(self, event: Any = None, *args: Any, **kw: Any) -> None:
        if _pl.STATE.level <= _ERROR:
            self._emit(_ERROR, event, args, kw)

    def exception(self, event: Any = None, *args: Any, **kw: Any) -> None:
        if _pl.STATE.level <= _ERROR:
            kw.setdefault("exc_info", True)
            self._emit(_ERROR, event, args, kw)

    def critical(self, event: Any = None, *args: Any, **kw: Any) -> None:
        if _pl.STATE.level <= _CRITICAL:
            self._emit(_CRITICAL, event, args, kw)

    fatal = critical

    def msg(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self.info(event, *args, **kw)

    def log(self, level: int, event: Any = None, *args: Any, **kw: Any) -> None:
        if isinstance(level, int) and _pl.STATE.level <= level:
            self._emit(level, event, args, kw)

    # The async spellings of structlog's filtering loggers. Writing a line does not block for long enough
    # to be worth a thread hop, so they log inline.
    async def adebug(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self.debug(event, *args, **kw)

    async def ainfo(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self.info(event, *args, **kw)

    async def awarning(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self.warning(event, *args, **kw)

    async def aerror(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self.error(event, *args, **kw)

    async def aexception(self, event: Any = None, *args: Any, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        self.error(event, *args, **kw)

    async def acritical(self, event: Any = None, *args: Any, **kw: Any) -> None:
        self.critical(event, *args, **kw)

    async def alog(self, level: int, event: Any = None, *args: Any, **kw: Any) -> None:
        self.log(level, event, *args, **kw)


_SKIP_MODULES = ("obskit._logs", "structlog", "contextlib")


def _caller_module() -> str:
    """Name of the first module outside obskit's logging and structlog: the default logger name."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (isinstance(name, str) and name.startswith(_SKIP_MODULES)):
            return name if isinstance(name, str) and name else "root"
        frame = frame.f_back  # type: ignore[assignment]
    return "root"


def get_logger(name: str | None = None, **context: Any) -> BoundLogger:
    """A structlog logger named ``name`` (default: the caller's module) with ``context`` bound."""
    return BoundLogger(_Sink(name if name is not None else _caller_module()), (), dict(context))


def _structlog_factory(*args: Any) -> _Sink:
    name = args[0] if args and isinstance(args[0], str) else _caller_module()
    return _Sink(name)


# --- request-scoped context (structlog.contextvars: per asyncio task and per thread) ---------------------


def bind_context(**kv: Any) -> None:
    """Add fields to every line logged from this task or thread (and tasks it starts)."""
    bind_contextvars(**kv)


def unbind_context(*keys: str) -> None:
    """Remove keys bound with ``bind_context`` (missing keys are ignored)."""
    unbind_contextvars(*keys)


def clear_context() -> None:
    """Drop all bound context, e.g. at the start of a request on a reused worker thread."""
    clear_contextvars()


@contextlib.contextmanager
def bound_context(**kv: Any) -> Iterator[None]:
    """Fields for the duration of a block; previous values of the same keys come back afterwards."""
    with bound_contextvars(**kv):
        yield


# --- configuration -------------------------------------------------------------------------------------


class LoggingHandle:
    """What ``configure_logging`` changed; ``unconfigure`` restores stdlib logging and structlog."""

    def __init__(self, state: State, routing: RoutingState | None, structlog_configured: bool) -> None:
        self.state = state
        self.routing = routing
        self._structlog_configured = structlog_configured
        self._active = True

    @property
    def handler(self) -> logging.Handler | None:
        return self.routing.handler if self.routing is not None else None

    def adopt_server_loggers(self) -> None:
        """Take server loggers back after something re-applied their own handlers (e.g. a dictConfig)."""
        if self.routing is not None and self._active:
            self.routing.adopt_server_loggers()

    def stop_export(self, timeout: float = 5.0) -> None:
        """Stop handing events to the LoggerProvider; lines still print. Call before shutting it down,
        or every later line makes its processor log "ignoring" in turn. The records the OTLP bridge still
        queues are handed to the provider first (within ``timeout``), so its shutdown exports them."""
        if self._active and _pl.STATE is self.state and self.state.exporter is not None:
            exporter = self.state.exporter
            self.state = self.state.without_exporter()
            _pl.set_state(self.state)
            _close_exporter(exporter, timeout)

    def unconfigure(self) -> None:
        global _active
        if not self._active:
            return
        self._active = False
        try:
            if self.routing is not None:
                self.routing.uninstall()
            if self._structlog_configured and structlog.get_config().get("wrapper_class") is BoundLogger:
                structlog.reset_defaults()
        except Exception as exc:
            report_internal_error("logging: unconfigure", exc)
        if _pl.STATE is self.state:
            _pl.set_state(_pl.default_state())
        _close_exporter(self.state.exporter, 2.0)  # its worker thread ends; queued records go out first
        if _active is self:
            _active = None


def _close_exporter(exporter: _pl.Exporter | None, timeout: float) -> None:
    close = getattr(exporter, "close", None)
    if close is not None:
        with capture_internal_exceptions("logging: OTLP bridge close"):
            close(timeout)


_active: LoggingHandle | None = None


def _build_state(config: Config, logger_provider: LoggerProvider | None) -> State:
    stream = config.log_stream
    target = stream if stream is not None else sys.stdout
    tty = is_tty(target)
    fmt = config.log_format
    if fmt not in ("json", "console"):
        fmt = "console" if tty else "json"
    if fmt == "json":
        service: dict[str, str] = {"service": config.service_name}
        if config.service_version:
            service["service_version"] = config.service_version
        if config.environment:
            service["environment"] = config.environment
        render = _pl.make_json_renderer(service)
    else:
        render = _pl.make_console_renderer(colors=tty and _pl._colors_allowed())
    redactor = Redactor(config.redact, scrub_exceptions=config.redact_exceptions)
    exporter = None
    if logger_provider is not None and config.logs:
        from ._otlp import OtlpBridge  # the SDK's logs module is only needed when exporting

        exporter = OtlpBridge(logger_provider, redactor)
    return State(
        level=config.log_level,
        render=render,
        stream=stream,
        redactor=redactor,
        exporter=exporter,
        unexported=frozenset() if config.access_log_export else frozenset(_pl.ACCESS_LOGGERS),
    )


def configure_logging(config: Config, *, logger_provider: LoggerProvider | None = None) -> LoggingHandle:
    """Apply ``config`` to every obskit logger, route stdlib logging, and optionally export over OTLP.

    Calling it again first undoes the previous call, so handlers are never stacked. With ``config.logs``
    false, obskit's own loggers still follow the format and level but stdlib logging is left alone.
    """
    global _active
    if _active is not None:
        _active.unconfigure()
    try:
        state = _build_state(config, logger_provider)
    except Exception as exc:
        report_internal_error("logging: configure", exc)
        state = _pl.default_state()
    _pl.set_state(state)
    routing: RoutingState | None = None
    structlog_configured = False
    if config.logs:
        try:
            routing = RoutingState(ObskitHandler(level=config.log_level), config.log_level)
            routing.install()
        except Exception as exc:
            report_internal_error("logging: routing stdlib logging", exc)
        try:
            if not structlog.is_configured():  # an app's own structlog setup wins
                structlog.configure(
                    processors=[],
                    wrapper_class=BoundLogger,
                    context_class=dict,
                    logger_factory=_structlog_factory,
                    cache_logger_on_first_use=True,
                )
                structlog_configured = True
        except Exception as exc:
            report_internal_error("logging: configuring structlog", exc)
    _active = LoggingHandle(state, routing, structlog_configured)
    return _active


def reset() -> None:
    """Back to "never configured": stdlib logging and structlog restored, pre-init settings."""
    global _active
    if _active is not None:
        _active.unconfigure()
    _active = None
    _pl.set_state(_pl.default_state())
