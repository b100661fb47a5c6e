"""Integrations: hooks into libraries, each enabled only when the library (and its hook) can be imported.

``integrations="auto"`` enables every known integration whose imports succeed; a list names them; "none"
enables nothing. A named integration that cannot be enabled is reported once with the extra to install.

Enabling is idempotent: a library already instrumented (by an earlier ``init()``, or by the application
itself before ``init()``) is left alone, and only what obskit switched on is switched off again by
:func:`disable_all`, so the application's own instrumentation survives obskit's shutdown in tests.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from obskit._config import Config

__all__ = ["KNOWN", "DidNotEnable", "Integration", "disable_all", "enable", "enabled"]

_log = logging.getLogger("obskit")

Teardown = Callable[[], None]


class DidNotEnable(Exception):
    """An integration's library or hook is not importable: skip it (and say so if it was asked for)."""


@dataclass(frozen=True)
class Integration:
    """One hook: ``name`` (what users list), the extra that installs it, and how to switch it on.

    ``setup`` returns how to switch it off again, or None when it was already on and is not obskit's to undo.
    """

    name: str
    extra: str
    setup: Callable[[Config], Teardown | None]


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DidNotEnable(str(exc)) from None


def _otel_contrib(library: str, module: str, cls: str, **kwargs: Any) -> Callable[[Config], Teardown | None]:
    """An OpenTelemetry contrib instrumentor for ``library`` (its instrumentor is a per-class singleton)."""

    def setup(config: Config) -> Teardown | None:
        _import(library)
        instrumentor = getattr(_import(module), cls)()
        if instrumentor.is_instrumented_by_opentelemetry:
            return None
        from opentelemetry.instrumentation.dependencies import DependencyConflictError

        try:
            # Without raise_exception_on_conflict a version mismatch logs an error and silently does nothing.
            instrumentor.instrument(raise_exception_on_conflict=True, **kwargs)
        except DependencyConflictError as exc:
            raise DidNotEnable(str(exc)) from None
        return lambda: instrumentor.uninstrument()

    return setup


def _psycopg(config: Config) -> Teardown | None:
    _import("psycopg")
    hook = _import("obskit.integrations.psycopg")
    return hook.uninstrument if hook.instrument() else None


def _starlette_hook(library: str) -> Callable[[Config], Teardown | None]:
    """ObskitASGIMiddleware outermost in every Starlette app (FastAPI included), created before or after."""

    def setup(config: Config) -> Teardown | None:
        _import(library)
        hook = _import("obskit.integrations.asgi")
        return hook.uninstrument_starlette if hook.instrument_starlette() else None

    return setup


KNOWN: dict[str, Integration] = {
    i.name: i
    for i in (
        Integration("requests", "requests", _otel_contrib(
            "requests", "opentelemetry.instrumentation.requests", "RequestsInstrumentor")),
        Integration("httpx", "httpx",
                    _otel_contrib("httpx", "opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor")),
        Integration("redis", "redis",
                    _otel_contrib("redis", "opentelemetry.instrumentation.redis", "RedisInstrumentor")),
        Integration("psycopg", "psycopg", _psycopg),
        # FastAPI apps are Starlette apps: both names install the same hook, under the user's extra.
        Integration("starlette", "starlette", _starlette_hook("starlette")),
        Integration("fastapi", "fastapi", _starlette_hook("fastapi")),
    )
}

# Names people try that are not switched on by init(): say what to do instead of "unknown".
_WRAPPERS = {
    "asgi": "wrap the app: obskit.integrations.asgi.ObskitASGIMiddleware(app)",
    "wsgi": "wrap the app: obskit.integrations.wsgi.ObskitWSGIMiddleware(app)",
    "flask": "app.wsgi_app = obskit.integrations.wsgi.ObskitWSGIMiddleware(app.wsgi_app)",
    "django": "wrap get_wsgi_application() / get_asgi_application() in obskit.integrations.wsgi / .asgi",
    "gunicorn": "gunicorn -c python:obskit.integrations.gunicorn app:app",
}

_lock = threading.Lock()
_enabled: dict[str, Teardown | None] = {}
# The global tracer provider when the integrations above were enabled: instrumentors keep the tracer they
# took from it, so if it has been replaced since (tests resetting obskit), they must be enabled afresh.
_provider: object | None = None


def enable(config: Config) -> list[str]:
    """Switch on the integrations ``config.integrations`` selects; returns the names enabled."""
    global _provider
    provider = trace.get_tracer_provider()
    if _enabled and provider is not _provider:
        disable_all()  # stale: bound to a provider that is gone, whatever this init() asks for
    choice = config.integrations
    if choice == "none" or config.disabled:
        return []
    explicit = choice != "auto"
    names = list(KNOWN) if choice == "auto" else list(dict.fromkeys(n.strip().lower() for n in choice))
    enabled: list[str] = []
    with _lock:
        _provider = provider
        for name in names:
            integration = KNOWN.get(name)
            if integration is None and name in _WRAPPERS:
                _log.warning("obskit: %r is not enabled by init(); %s", name, _WRAPPERS[name])
                continue
            if integration is None:
                _log.warning("obskit: unknown integration %r in OBSKIT_INTEGRATIONS/integrations=; known: %s",
                             name, ", ".join(sorted(KNOWN)))
                continue
            if name in _enabled:
                enabled.append(name)
                continue
            try:
                _enabled[name] = integration.setup(config)
            except DidNotEnable as exc:
                if explicit:
                    _log.warning("obskit: integration %r is not available (%s); install it with "
                                 "pip install 'obskit[%s]'", name, exc, integration.extra)
                else:
                    _log.debug("obskit: integration %r skipped: %s", name, exc)
                continue
            except Exception as exc:
                _log.warning("obskit: integration %r failed to enable: %s: %s", name, type(exc).__name__, exc)
                continue
            enabled.append(name)
    return enabled


def enabled() -> list[str]:
    """Names of the integrations switched on so far (including ones that were already on)."""
    with _lock:
        return list(_enabled)


def disable_all() -> None:
    """Undo what :func:`enable` instrumented, newest first; never raises."""
    with _lock:
        undo = list(_enabled.items())
        _enabled.clear()
    for name, teardown in reversed(undo):
        if teardown is None:
            continue
        try:
            teardown()
        except Exception as exc:
            _log.warning("obskit: integration %r failed to disable: %s: %s", name, type(exc).__name__, exc)


def _reset_for_tests() -> None:
    """Tests get a fresh provider per test: instrumentation bound to the old one must go with it."""
    disable_all()
