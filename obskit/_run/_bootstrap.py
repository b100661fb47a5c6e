"""What ``obskit run`` does in each interpreter it starts, before the program: ``obskit.init()`` from the
environment, plus what a server would otherwise need a config file or a code change for.

- **Every process**: ``init()`` (integrations ``auto``, settings from ``OBSKIT_*``/``OTEL_*``). A program
  that calls ``obskit.init()`` itself gets this same ``Telemetry`` back, set up once.
- **Servers' apps** get one server span per request without a code change: the app gunicorn's worker loads
  is wrapped in ``obskit.integrations.wsgi.ObskitWSGIMiddleware`` (or the ASGI one for an async app, as
  under ``UvicornWorker``), and the app uvicorn loads in ``obskit.integrations.asgi.ObskitASGIMiddleware``.
  The middlewares never double a layer an app already has.
- **gunicorn's master** prepares the shared metrics directory before ``init()`` (so one scrape sums every
  worker), and gets the hooks of :mod:`obskit.integrations.gunicorn` (``child_exit``, ``when_ready``,
  ``on_exit``) beside any from the user's own config. ``init()`` ran before the fork: each worker rebuilds
  its exporters, threads and ``service.instance.id`` after it, as with ``--preload``.
- **celery**: the main process prepares the directory its prefork children write (``celery`` integration).
- **uvicorn with several workers** (``--workers N``, ``WEB_CONCURRENCY``): the supervisor prepares the
  directory, which the workers (fresh interpreters, also started through obskit's ``sitecustomize``) join.
  A worker calls ``init()`` when it loads the app, not at start-up: its supervisor kills a worker that
  does not answer its health check within 5 seconds, and the thread answering it starts only then.
"""

from __future__ import annotations

import atexit
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .._runtime._safe import capture_internal_exceptions, report_internal_error

__all__ = ["program", "start", "uvicorn_workers"]

_WRAPPED = "__obskit_run_wrapped__"


def program(argv: Sequence[str], orig_argv: Sequence[str]) -> str:
    """What is starting: ``gunicorn``, ``uvicorn``, ``celery``, or the script or module name."""
    if argv and argv[0] == "-m" and "-m" in orig_argv:
        index = list(orig_argv).index("-m")
        if index + 1 < len(orig_argv):
            return orig_argv[index + 1].split(".")[0]
    name = os.path.basename(argv[0]) if argv else ""
    return name[:-3] if name.endswith(".py") else name


def uvicorn_workers(argv: Sequence[str], environ: dict[str, str] | os._Environ[str]) -> int:
    """The number of worker processes a uvicorn command line asks for (1 when it asks for none)."""
    value = environ.get("WEB_CONCURRENCY", "1")
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--workers" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
    try:
        return int(value)
    except ValueError:
        return 1


#: Set by a uvicorn supervisor to its pid: its workers set obskit up when they load the app, not at start-up.
WORKERS_OF_ENV = "OBSKIT_RUN_WORKERS_OF"
_deferred = {"init": False}


def start() -> None:
    """Set obskit up for the program about to run; never raises (the program must start regardless)."""
    try:
        name = program(sys.argv, getattr(sys, "orig_argv", sys.argv))
        workers = uvicorn_workers(sys.argv, os.environ) if name == "uvicorn" else 1
        if name in ("gunicorn", "celery") or workers > 1:
            _prepare_shared_metrics(remove_at_exit=name != "gunicorn")  # gunicorn's on_exit hook removes it
        if name == "uvicorn":
            os.environ[WORKERS_OF_ENV] = str(os.getpid())
        elif os.environ.get(WORKERS_OF_ENV) == str(os.getppid()):
            # A uvicorn worker: its supervisor kills it unless it answers a health check within 5 s of
            # starting, and its answering thread starts only after this. init() waits for Config.load.
            _deferred["init"] = True
            _install_patches()
            return
        _init()
    except Exception as exc:
        report_internal_error("obskit run", exc)


def _init() -> None:
    import obskit

    tel = obskit.init()
    tel.started_by = "obskit run"
    _install_patches()


def _install_patches() -> None:
    with capture_internal_exceptions("obskit run: server hooks"):
        from obskit.integrations import _server_hooks

        _server_hooks.install((), None, _SERVER_PATCHES)


def _prepare_shared_metrics(*, remove_at_exit: bool) -> None:
    """In the process that starts the workers, before any metric exists: the directory they all write."""
    from obskit.integrations import gunicorn as hooks

    hooks.setup()
    if remove_at_exit:
        atexit.register(hooks.on_exit, None)  # removes the directory if obskit made it


# --- the servers' apps -----------------------------------------------------------------------------------


def _is_asgi(app: Any) -> bool:
    call = type(app).__call__ if not inspect.isroutine(app) else None  # an ASGI app object's async __call__
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)


def _traced(app: Any) -> Any:
    """``app`` in obskit's server middleware (ASGI for an async app, else WSGI), once."""
    if app is None or getattr(app, _WRAPPED, False):
        return app
    try:
        if _is_asgi(app):
            from obskit.integrations.asgi import ObskitASGIMiddleware

            wrapped: Any = ObskitASGIMiddleware(app)
        else:
            from obskit.integrations.wsgi import ObskitWSGIMiddleware

            wrapped = ObskitWSGIMiddleware(app)
        setattr(wrapped, _WRAPPED, True)
        return wrapped
    except Exception as exc:
        report_internal_error("obskit run: tracing the server's app", exc)
        return app


def _gunicorn_load_wsgi(load_wsgi: Callable[..., Any]) -> Callable[..., Any]:
    """``Worker.load_wsgi``: the app the worker serves is traced."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = load_wsgi(self, *args, **kwargs)
        self.wsgi = _traced(self.wsgi)
        return result

    return wrapper


def _uvicorn_load(load: Callable[..., Any]) -> Callable[..., Any]:
    """``uvicorn.Config.load``: the app uvicorn serves is traced."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _deferred["init"]:
            _deferred["init"] = False
            with capture_internal_exceptions("obskit run"):
                _init()
        result = load(self, *args, **kwargs)
        self.loaded_app = _traced(self.loaded_app)
        return result

    return wrapper


# --- gunicorn's master hooks, without a config file --------------------------------------------------------


def _gunicorn_arbiter_setup(setup: Callable[..., Any]) -> Callable[..., Any]:
    """``Arbiter.setup`` (start, and every reload): obskit's master hooks run beside the configured ones."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = setup(self, *args, **kwargs)
        with capture_internal_exceptions("obskit run: gunicorn hooks"):
            from obskit.integrations import gunicorn as hooks

            for name, ours in (("child_exit", hooks.child_exit), ("when_ready", hooks.when_ready),
                               ("on_exit", hooks.on_exit)):
                setting = self.cfg.settings[name]
                setting.value = _both(ours, setting.get())
        return result

    return wrapper


def _both(ours: Callable[..., None], theirs: Callable[..., Any]) -> Callable[..., Any]:
    """Ours, then theirs (gunicorn's default is a no-op); ours once, also when theirs is ours already."""
    if theirs is ours or getattr(theirs, _WRAPPED, None) is ours:
        return theirs

    def hook(*args: Any) -> Any:
        ours(*args)
        return theirs(*args)

    setattr(hook, _WRAPPED, ours)
    return hook


_SERVER_PATCHES = (
    ("gunicorn.workers.base", "Worker", "load_wsgi", _gunicorn_load_wsgi),
    ("gunicorn.arbiter", "Arbiter", "setup", _gunicorn_arbiter_setup),
    ("uvicorn.config", "Config", "load", _uvicorn_load),
)
