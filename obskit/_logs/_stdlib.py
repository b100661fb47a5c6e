"""Routing of stdlib ``logging`` records (the app's, uvicorn's, gunicorn's, urllib3's) into obskit's pipeline.

One handler on the root logger; servers' own console handlers are removed and their loggers made to
propagate, so each record is printed exactly once, in the same format as structlog events. Servers that
re-apply their logging config after ``init()`` (``uvicorn.run()`` does, by default) are repaired by wrapping
the method that does it, when that server is already imported.

Which loggers and which methods is not known here: each integration declares the loggers it owns and its
server's re-configure method, and the integrations' registry hands those declarations in with
:func:`read_declarations_from` (this layer never imports the integrations).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._runtime._post_import import AfterImport
from .._runtime._safe import capture_internal_exceptions, report_internal_error
from ._pipeline import context_fields, normalize_exc_info, process, safe_str

__all__ = ["AccessLogger", "Declarations", "ObskitHandler", "RoutingState", "read_declarations_from",
           "record_to_event"]

Target = tuple[str, str, str]  # (module, class, method) a server calls to re-apply its logging config
# () -> (loggers that servers and libraries give their own console handlers and ``propagate=False``,
#        the re-configure targets after which those loggers must be adopted again)
Declarations = Callable[[], tuple[Iterable[str], Iterable[Target]]]


def _none_declared() -> tuple[Iterable[str], Iterable[Target]]:
    return (), ()


_declarations: Declarations = _none_declared


def read_declarations_from(source: Declarations) -> None:
    """Where routing finds the loggers to adopt and the methods to repair: read when routing is installed."""
    global _declarations
    _declarations = source


_BLANK = logging.LogRecord("", 0, "", 0, "", (), None)
_CORE = frozenset(vars(_BLANK))
_STANDARD = _CORE | {"message", "asctime", "taskName"}
# Presentation-only or duplicate data: uvicorn's ANSI copy of the message, structlog's wrapper markers,
# and the trace fields of opentelemetry-instrumentation-logging (obskit adds its own).
_DROPPED = frozenset(
    {
        "color_message",
        "_logger",
        "_name",
        "_from_structlog",
        "_record",
        "otelSpanID",
        "otelTraceID",
        "otelTraceSampled",
        "otelServiceName",
    }
)
_NOT_FIELDS = _STANDARD | _DROPPED
_ACCESS_FIELDS = ("client_addr", "method", "path", "http_version", "status_code")
# Servers' access loggers written to once per request, with plain ``info(msg, *args)`` calls.
_FAST_ACCESS = frozenset({"uvicorn.access", "gunicorn.access", "hypercorn.access"})


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string in a third-party call must not lose the record
        return f"{safe_str(record.msg)} {safe_str(record.args)}"


def _access_fields(name: str, args: Any, fields: dict[str, Any]) -> None:
    """uvicorn's access line as fields too (its five arguments), so that they can be queried."""
    if name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        fields.update(zip(_ACCESS_FIELDS, args, strict=True))


def record_to_event(record: logging.LogRecord) -> tuple[Any, dict[str, Any], object]:
    """(event, fields, exc_info) for one record; ``extra={...}`` keys become fields."""
    fields = context_fields()
    exc_info: object = record.exc_info
    msg = record.msg
    if isinstance(msg, dict) and not record.args and "_logger" in record.__dict__:
        # An event dict that a structlog.stdlib logger wrapped for ProcessorFormatter.
        ed = dict(msg)
        event = ed.pop("event", "")
        exc_info = ed.pop("exc_info", None) or exc_info
        fields.update(ed)
    else:
        event = _message(record)
    attrs = record.__dict__
    # Extras are set after LogRecord.__init__'s own attributes, so they sit at the end of __dict__: walk
    # back to the first of those instead of over all ~25 (formatters may append message/asctime later).
    extra: list[str] = []
    for key in reversed(attrs):
        if key in _CORE:
            break
        if key not in _NOT_FIELDS:
            extra.append(key)
    for key in reversed(extra):
        fields[key] = attrs[key]
    _access_fields(record.name, record.args, fields)
    if record.stack_info:
        fields["stack"] = record.stack_info
    return event, fields, exc_info


class ObskitHandler(logging.Handler):
    """The root handler: hands each record to the shared pipeline."""

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        """Like ``Handler.handle`` without the handler lock: the pipeline is thread-safe, so threads
        logging at once are not serialised here (only the final write is)."""
        rv = self.filter(record)
        if rv:
            self.emit(rv if isinstance(rv, logging.LogRecord) else record)  # 3.12 filters may return one
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event, fields, exc_info = record_to_event(record)
            process(
                record.levelno,
                record.name,
                event,
                fields,
                normalize_exc_info(exc_info),
                record.created,
                record,
            )
        except Exception as exc:  # never logging.Handler.handleError: it prints to stderr per record
            report_internal_error("logging: stdlib handler", exc)


class AccessLogger(logging.Logger):
    """A server's access logger (uvicorn's, gunicorn's), while obskit routes logging.

    A server writes one access line per request with ``logger.info(msg, *args)``. When that line would reach
    obskit's root handler alone, it is handed to the pipeline directly: the same line, without the stdlib's
    ``LogRecord``, the caller lookup (``findCaller`` walks the stack) and the walk to the handler, which
    together cost more than rendering and writing the line. Anything else (keyword arguments, another
    handler on the way, a filter that cannot decide from the arguments, a message that does not format)
    takes the stdlib path unchanged.
    """

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        if kwargs or not self.isEnabledFor(logging.INFO) or not self._direct(msg, args):
            super().info(msg, *args, **kwargs)

    def _direct(self, msg: object, args: tuple[object, ...]) -> bool:
        """Write the line straight to the pipeline, or say False (nothing was written)."""
        if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:  # gunicorn's atoms, as LogRecord
            args = args[0]  # type: ignore[assignment]  # takes them: the format's mapping
        for f in self.filters:  # the logger's own filters, which the stdlib would run on a record
            keeps = getattr(f, "keeps_info", None)
            if keeps is None or not keeps(msg, args):
                return False
        handler: ObskitHandler | None = None
        logger: logging.Logger | None = self
        while logger is not None:
            for h in logger.handlers:
                if h.level <= logging.INFO:
                    if type(h) is not ObskitHandler or h.filters or handler is not None:
                        return False
                    handler = h
            logger = logger.parent if logger.propagate else None
        if handler is None or type(msg) is not str:
            return False
        try:
            event = msg % args if args else msg
        except Exception:  # the stdlib path reports it as it always has
            return False
        fields = context_fields()
        _access_fields(self.name, args, fields)
        process(logging.INFO, self.name, event, fields, None, time.time(), None)
        return True


def _is_console(handler: logging.Handler) -> bool:
    """Console handlers duplicate obskit's lines; file, socket and test-capture handlers are kept."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = getattr(handler, "stream", None)
    return stream is not None and any(
        stream is s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    )


class _PrintedByObskit(logging.Filter):
    """Put on a library's own console handler: drops the records obskit's root handler prints anyway.

    Decided per record, from where the record goes now: a logger that stops propagating (``propagate =
    False``, set before or after its handler was added) keeps printing through its own handler, once.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(isinstance(h, ObskitHandler) for h in logger.handlers):
                return False
            if not logger.propagate:
                return True
            logger = logger.parent
        return True


_PRINTED_BY_OBSKIT = _PrintedByObskit()


class RoutingState:
    """What obskit changed in stdlib logging, so that ``unconfigure`` can put it back."""

    def __init__(
        self,
        handler: ObskitHandler,
        level: int,
        loggers: Iterable[str] | None = None,
        targets: Iterable[Target] | None = None,
    ) -> None:
        """``loggers`` / ``targets`` default to what integrations declare (:func:`read_declarations_from`)."""
        self.handler = handler
        self.level = level
        if loggers is None or targets is None:
            declared_loggers: Iterable[str] = ()
            declared_targets: Iterable[Target] = ()
            with capture_internal_exceptions("logging: reading the loggers integrations declare"):
                declared_loggers, declared_targets = _declarations()
            loggers = declared_loggers if loggers is None else loggers
            targets = declared_targets if targets is None else targets
        self.server_loggers: tuple[str, ...] = tuple(loggers)
        self.targets: tuple[Target, ...] = tuple(targets)
        self.root_level: int | None = None
        self.root_removed: list[logging.Handler] = []
        self.loggers: dict[str, tuple[list[logging.Handler], bool]] = {}
        self._undo: list[Callable[[], None]] = []
        self._finder: AfterImport | None = None
        self.quieted: list[logging.Handler] = []  # libraries' console handlers given _PRINTED_BY_OBSKIT

    def install(self) -> None:
        root = logging.getLogger()
        self.root_level = root.level
        for h in list(root.handlers):
            if isinstance(h, ObskitHandler) or _is_console(h):  # ObskitHandler: a handle never unconfigured
                root.removeHandler(h)
                if not isinstance(h, ObskitHandler):
                    self.root_removed.append(h)
        root.addHandler(self.handler)
        root.setLevel(self.level)
        self.adopt_server_loggers()
        self._quiet_library_consoles()
        self._patch_servers()

    def _quiet_library_consoles(self) -> None:
        """A library's own console handler (``getLogger("lib").addHandler(StreamHandler())``), now or
        added later, prints only what does not reach obskit's root handler: its lines print once."""
        for logger in list(logging.Logger.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger):
                for h in list(logger.handlers):
                    self._quiet(h)
        original = logging.Logger.addHandler
        if getattr(original, "__obskit_wrapped__", False):
            return
        quiet = self._quiet

        def add_handler(logger: logging.Logger, hdlr: logging.Handler) -> None:
            original(logger, hdlr)
            with capture_internal_exceptions("logging: a library's console handler"):
                if logger is not logging.getLogger():
                    quiet(hdlr)

        add_handler.__obskit_wrapped__ = True  # type: ignore[attr-defined]
        logging.Logger.addHandler = add_handler  # type: ignore[method-assign, assignment]

        def undo() -> None:
            if logging.Logger.__dict__.get("addHandler") is add_handler:
                logging.Logger.addHandler = original  # type: ignore[method-assign]

        self._undo.append(undo)

    def _quiet(self, handler: logging.Handler) -> None:
        if _is_console(handler) and _PRINTED_BY_OBSKIT not in handler.filters:
            handler.addFilter(_PRINTED_BY_OBSKIT)
            self.quieted.append(handler)

    def adopt_server_loggers(self) -> None:
        """Strip servers' console handlers and let their records reach the root handler."""
        for name in self.server_loggers:
            lg = logging.getLogger(name)
            if name not in self.loggers:
                self.loggers[name] = (list(lg.handlers), lg.propagate)
            for h in list(lg.handlers):
                if _is_console(h) or isinstance(h, ObskitHandler):
                    lg.removeHandler(h)
            lg.propagate = True
            if name in _FAST_ACCESS and type(lg) is logging.Logger:
                lg.__class__ = AccessLogger

    def _patch_servers(self) -> None:
        """Re-adopt after a declared re-configure method runs (``uvicorn.Config.configure_logging``, ...).

        A server imported only after ``init()`` (a gunicorn config file calling it, ``uvicorn.run`` imported
        late) is patched when its module finishes importing, by a finder that sees only the declared names.
        """
        pending = [t for t in self.targets if t[0] not in sys.modules]
        if pending and self._finder is None:
            self._finder = AfterImport({t[0] for t in pending}, self._patch_imported,
                                       "logging: patching a server's logging setup")
            sys.meta_path.insert(0, self._finder)
        self._patch_imported()

    def _patch_imported(self) -> None:
        for module_name, cls_name, meth_name in self.targets:
            module = sys.modules.get(module_name)
            cls: Any = None
            if module is not None:  # an empty class name: a module-level function (django configure_logging)
                cls = module if not cls_name else getattr(module, cls_name, None)
            original = cls.__dict__.get(meth_name) if cls is not None else None
            if cls is None or original is None or getattr(original, "__obskit_wrapped__", False):
                continue
            self._undo.append(_wrap(cls, meth_name, original, self._readopt))

    def _readopt(self) -> None:
        with capture_internal_exceptions("logging: re-adopting server loggers"):
            self.adopt_server_loggers()

    def uninstall(self) -> None:
        if self._finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self._finder)
            self._finder = None
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        for h in self.quieted:
            h.removeFilter(_PRINTED_BY_OBSKIT)
        self.quieted.clear()
        root = logging.getLogger()
        root.removeHandler(self.handler)
        for h in self.root_removed:
            if h not in root.handlers:
                root.addHandler(h)
        if self.root_level is not None:
            root.setLevel(self.root_level)
        for name, (handlers, propagate) in self.loggers.items():
            lg = logging.getLogger(name)
            for h in handlers:
                if h not in lg.handlers:
                    lg.addHandler(h)
            lg.propagate = propagate
            if type(lg) is AccessLogger:
                lg.__class__ = logging.Logger  # type: ignore[assignment]
        self.loggers.clear()
        self.root_removed.clear()


def _wrap(
    cls: type, name: str, original: Callable[..., Any], after: Callable[[], None]
) -> Callable[[], None]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        after()
        return result

    wrapper.__obskit_wrapped__ = True  # type: ignore[attr-defined]
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    wrapper.__name__ = name
    setattr(cls, name, wrapper)

    def undo() -> None:
        if cls.__dict__.get(name) is wrapper:
            setattr(cls, name, original)

    return undo
