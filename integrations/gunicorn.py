"""gunicorn hooks: multi-worker metrics with no other setup.

    gunicorn -c python:obskit.integrations.gunicorn app:app

With your own config file, import the hooks into it (importing is what prepares the directory)::

    # gunicorn.conf.py
    from obskit.integrations.gunicorn import child_exit, on_exit, when_ready  # noqa: F401

Importing this module in gunicorn's master (it loads config before any worker exists, and before the app
with ``--preload``) creates and wipes the multiprocess directory (``OBSKIT_MULTIPROC_DIR`` /
``PROMETHEUS_MULTIPROC_DIR``, else a fresh temporary one), records the master as the run's owner so
workers never wipe it, and switches prometheus-client to multiprocess mode. ``child_exit`` folds a dead
worker's files into the totals; with ``OBSKIT_METRICS_PORT`` set, ``when_ready`` serves the aggregate
``/metrics`` from the master, which outlives every worker.

Access lines carry their request's ``trace_id``/``span_id`` with no config file: gunicorn writes the line
after the WSGI app returned and the request's span ended, so ``init()`` patches gunicorn (whatever
``integrations=`` says) to note the span current when the app calls ``start_response`` on the response, and
to log the access line of that response under it again.

Imported outside gunicorn (no ``gunicorn.arbiter`` loaded) it changes nothing; call :func:`setup` yourself
if you drive gunicorn programmatically before its arbiter module is imported. The import ``obskit.init()``
makes to read ``INTEGRATION`` (gunicorn's loggers, which obskit routes) changes nothing either; if it came
before your config file imported the hooks, ``when_ready`` prepares the directory instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from obskit.integrations._contract import Integration, is_discovering

from obskit._metrics import _multiprocess
from obskit._metrics._exposition import SERVED_BY_ENV, serve

__all__ = ["INTEGRATION", "child_exit", "on_exit", "setup", "when_ready"]

_state: dict[str, Any] = {"dir": None, "temporary": False, "server": None}


def setup() -> str:
    """Prepare the directory in this (master) process; idempotent. Returns the directory."""
    if _state["dir"] is not None and _state["dir"] == _multiprocess.directory():
        return str(_state["dir"])
    path = _multiprocess.env_directory()
    if path is None:
        path = tempfile.mkdtemp(prefix="obskit-metrics-")
        _state["temporary"] = True
    path = os.path.abspath(path)
    os.environ["OBSKIT_MULTIPROC_DIR"] = path  # inherited by every worker
    _multiprocess.wipe(path, owner=os.getpid())
    _multiprocess.activate(path)
    _state["dir"] = path
    return path


def when_ready(server: Any) -> None:
    """Serve the aggregate ``/metrics`` from the master when ``OBSKIT_METRICS_PORT`` is set."""
    try:
        if _state["dir"] is None and not _multiprocess.enabled():
            setup()  # done at import, unless obskit.init() had imported this module before the config did
        from obskit._config import resolve

        config = resolve({})
        if config.metrics_port is None:
            return
        _state["server"] = serve(config.metrics_addr, config.metrics_port)
        if _state["server"] is not None:
            os.environ[SERVED_BY_ENV] = str(os.getpid())  # workers, forked later, leave the port alone
    except Exception as exc:
        from obskit._runtime._safe import report_internal_error

        report_internal_error("gunicorn when_ready", exc)


def child_exit(server: Any, worker: Any) -> None:
    """A worker died: fold its counters and histograms into the totals, drop its live gauges."""
    try:
        _multiprocess.mark_dead(int(worker.pid))
    except Exception as exc:
        from obskit._runtime._safe import report_internal_error

        report_internal_error("gunicorn child_exit", exc)


def on_exit(server: Any) -> None:
    """Stop the master's ``/metrics`` server; remove the directory if obskit made it."""
    if _state["server"] is not None:
        with contextlib.suppress(Exception):
            _state["server"].stop()
    if _state["temporary"] and _state["dir"]:
        shutil.rmtree(_state["dir"], ignore_errors=True)


_SPAN = "_obskit_span"  # the request's span, noted on gunicorn's Response object


def _noting_span(start_response: Callable[..., Any]) -> Callable[..., Any]:
    """``Response.start_response``: the app calls it inside the request's span; note that span."""

    from opentelemetry import trace

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            span = trace.get_current_span()
            if span.get_span_context().is_valid:
                setattr(self, _SPAN, span)
        except Exception as exc:
            from obskit._runtime._safe import report_internal_error

            report_internal_error("gunicorn access line", exc)
        return start_response(self, *args, **kwargs)

    return wrapper


_gunicorn: tuple[Any, str] | None = None  # (gunicorn.glogging, the default access format), once imported


def _default_format_only(logger: Any) -> bool:
    """Whether ``logger`` writes gunicorn's default access line with gunicorn's own atoms (no format,
    atoms method or atoms wrapper of the user's)."""
    global _gunicorn
    if _gunicorn is None:
        from gunicorn import glogging
        from gunicorn.config import AccessLogFormat

        _gunicorn = (glogging, AccessLogFormat.default)
    glogging, default = _gunicorn
    cls = type(logger)
    return (cls.atoms is glogging.Logger.atoms
            and logger.atoms_wrapper_class is glogging.SafeAtoms
            and isinstance(getattr(cls, "access_log_enabled", None), property)
            and logger.cfg.access_log_format == default)


def _default_access(logger: Any, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
    """gunicorn's ``Logger.access`` for its default format, with only the atoms that are not headers or
    environ entries. gunicorn adds every request header, response header and environ variable to the
    atoms (about 60 entries, each quote-escaped) for formats that name them; the default names none, and
    building them was most of the cost of an access line. The line and the atoms the format reads are
    gunicorn's own (``tests/test_integrations_servers.py`` compares them)."""
    if not logger.access_log_enabled:
        return
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    sent = getattr(resp, "sent", None)
    seconds, micros = request_time.seconds, request_time.microseconds
    atoms = {
        "h": environ.get("REMOTE_ADDR", "-"), "l": "-", "u": logger._get_user(environ) or "-",
        "t": logger.now(),
        "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
        "s": status, "m": environ.get("REQUEST_METHOD"), "U": environ.get("PATH_INFO"),
        "q": environ.get("QUERY_STRING"), "H": environ.get("SERVER_PROTOCOL"),
        "b": str(sent) if sent is not None else "-", "B": sent,
        "f": environ.get("HTTP_REFERER", "-"), "a": environ.get("HTTP_USER_AGENT", "-"),
        "T": seconds, "D": seconds * 1000000 + micros, "M": seconds * 1000 + int(micros / 1000),
        "L": f"{seconds}.{micros:06d}", "p": f"<{os.getpid()}>",
    }
    try:  # the default format (_default_format_only): the same string, without reading the config again
        logger.access_log.info(_gunicorn[1] if _gunicorn else logger.cfg.access_log_format,
                               logger.atoms_wrapper_class(atoms))
    except Exception:
        import traceback

        logger.error(traceback.format_exc())


def _access_in_span(access: Callable[..., Any]) -> Callable[..., Any]:
    """``Logger.access(resp, req, environ, request_time)``: logged under the span ``resp`` noted, through
    :func:`_default_access` when the logger writes gunicorn's default line."""

    from opentelemetry import context, trace

    def wrapper(self: Any, resp: Any, *args: Any, **kwargs: Any) -> Any:
        span = getattr(resp, _SPAN, None)
        if span is None:
            return access(self, resp, *args, **kwargs)
        token = context.attach(trace.set_span_in_context(span))
        try:
            if len(args) == 3 and not kwargs and _default_format_only(self):
                return _default_access(self, resp, *args)
            return access(self, resp, *args, **kwargs)
        finally:
            context.detach(token)

    return wrapper


INTEGRATION = Integration(
    name="gunicorn",
    extra="gunicorn",
    requires={"gunicorn": "21"},
    loggers=("gunicorn", "gunicorn.error", "gunicorn.access"),
    reconfigure_hooks=(("gunicorn.glogging", "Logger", "setup"),),
    patches=(("gunicorn.http.wsgi", "Response", "start_response", _noting_span),
             ("gunicorn.glogging", "Logger", "access", _access_in_span)),
    wiring="gunicorn -c python:obskit.integrations.gunicorn app:app",
)

# Loaded as gunicorn config: prepare the directory. A plain import, or obskit reading INTEGRATION, changes
# nothing.
if "gunicorn.arbiter" in sys.modules and not is_discovering():
    setup()
