"""The guard around every telemetry path: obskit's own failures never reach the host application.

A failure inside obskit is reported once per call site on stderr (not through logging: the failing part may
be logging itself), then swallowed. ``OBSKIT_DEBUG=1`` reports every occurrence with its traceback. The
report is redacted like every other exit: an exporter's error often quotes the URL it failed to reach.

obskit's own log calls go through :class:`SafeLogger`: a handler the application put on the root logger
that raises must not turn ``obskit.init()`` or a metric call into an exception.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from . import _redact

__all__ = [
    "SafeLogger",
    "capture_internal_exceptions",
    "in_telemetry",
    "new_lock_in_child",
    "report_internal_error",
    "run_bounded",
    "telemetry_section",
    "utf8_safe",
]

_seen: set[str] = set()
_lock = threading.Lock()
_local = threading.local()


def new_lock_in_child() -> None:
    """After a fork (``_fork``): a lock another thread held at the fork would stay held in the child."""
    global _lock
    _lock = threading.Lock()


def report_internal_error(where: str, exc: BaseException) -> None:
    """Say once per ``where`` that obskit failed; never raises."""
    try:
        debug = os.environ.get("OBSKIT_DEBUG", "").lower() in ("1", "true", "yes")
        with _lock:
            first = where not in _seen
            _seen.add(where)
        if not (first or debug):
            return
        stream = sys.__stderr__ or sys.stderr
        if stream is None:
            return
        msg = f"obskit: internal error in {where}: {type(exc).__name__}: {exc}"
        if debug:
            msg += "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        elif first:
            msg += " (reported once; set OBSKIT_DEBUG=1 for every occurrence with tracebacks)"
        stream.write(utf8_safe(_redact.current().scrub_text(msg)) + "\n")
        stream.flush()
    except Exception:
        pass  # the reporter of last resort must not fail either


@contextlib.contextmanager
def capture_internal_exceptions(where: str) -> Iterator[None]:
    """Swallow and report any ``Exception`` raised in the block (``BaseException``s pass through)."""
    try:
        yield
    except Exception as exc:
        report_internal_error(where, exc)


def in_telemetry() -> bool:
    """True while this thread is inside an obskit export or emit path (the recursion guard)."""
    return bool(getattr(_local, "depth", 0))


@contextlib.contextmanager
def telemetry_section() -> Iterator[None]:
    """Mark this thread as inside telemetry code, so log records it produces are not fed back in."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def run_bounded(work: Callable[[], bool], timeout: float, what: str) -> bool:
    """Run ``work`` in a daemon thread and wait at most ``timeout`` seconds for it.

    The caller gets control back when the time is up whatever ``work`` is blocked on (a hung collector);
    the thread carries on alone and dies with the process. False if ``work`` failed or did not finish.
    """
    result: list[bool] = []

    def run() -> None:
        try:
            result.append(bool(work()))
        except Exception as exc:
            report_internal_error(what, exc)
            result.append(False)

    t = threading.Thread(target=run, name=f"obskit-{what}", daemon=True)
    t.start()
    t.join(max(0.0, timeout))
    return bool(result and result[0])


class SafeLogger:
    """A logger for obskit's own messages whose calls never raise.

    ``logging`` calls every handler up to the root; an application's handler that raises from ``emit``
    would otherwise propagate out of obskit's call (out of ``init()``, out of ``counter.inc()``).
    """

    __slots__ = ("logger",)

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def _log(self, level: int, msg: str, args: tuple[Any, ...], exc_info: Any = None) -> None:
        try:
            if self.logger.isEnabledFor(level):
                self.logger.log(level, msg, *args, exc_info=exc_info, stacklevel=3)
        except Exception as exc:
            report_internal_error(f"a logging handler, logging {self.logger.name!r}", exc)

    def debug(self, msg: str, *args: Any) -> None:
        self._log(logging.DEBUG, msg, args)

    def info(self, msg: str, *args: Any) -> None:
        self._log(logging.INFO, msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._log(logging.WARNING, msg, args)

    def error(self, msg: str, *args: Any, exc_info: Any = None) -> None:
        self._log(logging.ERROR, msg, args, exc_info)


_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_safe(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes smuggled in by ``surrogateescape``) replaced by
    U+FFFD, so it can be encoded as UTF-8: one such value must not break a line, a scrape or an export."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text
