"""``psycopg2``: PostgreSQL through psycopg2. Each ``execute`` / ``executemany`` on connections opened after
``init()`` is a CLIENT span with the query text without literal values, timed by
``db_client_operation_duration_seconds``.

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_psycopg2_dbapi``, built on ``opentelemetry-instrumentation-dbapi``) is
imported on the first :func:`instrument`, so importing this module needs neither psycopg2 nor the hook.
"""

from __future__ import annotations

import sys

from obskit.integrations._contract import DidNotEnable, Integration, Teardown, load
from obskit.integrations._sql import set_keep_literals

from obskit._config import Config

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_HOOK = "obskit.integrations._psycopg2_dbapi"


def instrument() -> bool:
    """Trace connections opened from now on; False (and nothing done) if already instrumented."""
    from obskit.integrations import _psycopg2_dbapi

    return _psycopg2_dbapi.instrument()


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
    try:
        load("psycopg2")
    except DidNotEnable:
        # Not in ``requires``: it is installed as psycopg2 (built from source, usual in production) or as
        # psycopg2-binary, two distributions of one module, so the import decides.
        raise DidNotEnable("psycopg2 is not installed: pip install psycopg2-binary (or psycopg2)") from None
    load(_HOOK)
    set_keep_literals(config.db_query_literals)
    return uninstrument if instrument() else None


INTEGRATION = Integration(
    name="psycopg2",
    extra="psycopg2",
    requires={"opentelemetry-instrumentation-dbapi": "0.66b0"},
    setup=_setup,
)
