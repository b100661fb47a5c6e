"""Integrations: hooks into libraries, each enabled only when the library (and its hook) can be imported.

``integrations="auto"`` enables every known integration whose imports succeed; a list names them; "none"
enables nothing. A named integration that cannot be enabled is reported once with the extra to install.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ._config import Config

__all__ = ["KNOWN", "DidNotEnable", "Integration", "enable"]

_log = logging.getLogger("obskit")


class DidNotEnable(Exception):
    """An integration's library or hook is not importable: skip it (and say so if it was asked for)."""


@dataclass(frozen=True)
class Integration:
    """One hook: ``name`` (what users list), the extra that installs it, and how to switch it on."""

    name: str
    extra: str
    setup: Callable[[Config], None]


def _otel_contrib(library: str, module: str, cls: str) -> Callable[[Config], None]:
    """An OpenTelemetry contrib instrumentor (idempotent instrument) for ``library``."""

    def setup(config: Config) -> None:
        try:
            importlib.import_module(library)
            instrumentor = getattr(importlib.import_module(module), cls)()
        except ImportError as exc:
            raise DidNotEnable(str(exc)) from None
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()

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
        Integration("psycopg", "psycopg",
                    _otel_contrib("psycopg", "opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor")),
    )
}


def enable(config: Config) -> list[str]:
    """Switch on the integrations ``config.integrations`` selects; returns the names enabled."""
    choice = config.integrations
    if choice == "none" or config.disabled:
        return []
    explicit = choice != "auto"
    names = list(KNOWN) if choice == "auto" else list(choice)
    enabled: list[str] = []
    for name in names:
        integration = KNOWN.get(name)
        if integration is None:
            _log.warning("obskit: unknown integration %r in OBSKIT_INTEGRATIONS/integrations=; known: %s",
                         name, ", ".join(sorted(KNOWN)))
            continue
        try:
            integration.setup(config)
        except DidNotEnable as exc:
            if explicit:
                _log.warning("obskit: integration %r is not available (%s); install it with "
                             "pip install 'obskit[%s]'", name, exc, integration.extra)
            continue
        except Exception as exc:
            _log.warning("obskit: integration %r failed to enable: %s: %s", name, type(exc).__name__, exc)
            continue
        enabled.append(name)
    return enabled
