"""``psycopg`` (3): each ``execute`` / ``executemany`` is a CLIENT span; ``obskit.init()`` switches it on.

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_psycopg_dbapi``, built on ``opentelemetry-instrumentation-dbapi``) is
imported on the first :func:`instrument`, so importing this module needs neither psycopg nor the hook.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from obskit.integrations._contract import Integration, Teardown, load
from obskit.integrations._sql import set_keep_literals

from obskit._config import Config

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_HOOK = "obskit.integrations._psycopg_dbapi"


def instrument(tracer_provider: TracerProvider | None = None) -> bool:
    """Trace connections opened from now on; False (and nothing done) if already instrumented."""
    from obskit.integrations import _psycopg_dbapi

    return _psycopg_dbapi.instrument(tracer_provider)


def uninstrument() -> None:
    """Stop tracing new connections (open ones keep their traced cursors until closed)."""
    hook = sys.modules.get(_HOOK)
    if hook is not None:
        hook.uninstrument()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    hook = sys.modules.get(_HOOK)
    return hook is not None and bool(hook.is_instrumented())


def _setup(config: Config) -> Teardown | None:
    load("psycopg")
    load(_HOOK)
    set_keep_literals(config.db_query_literals)
    return uninstrument if instrument() else None


INTEGRATION = Integration(
    name="psycopg",
    extra="psycopg",
    requires={"psycopg": "3.1", "opentelemetry-instrumentation-dbapi": "0.66b0"},
    setup=_setup,
)
