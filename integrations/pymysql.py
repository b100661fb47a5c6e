"""``pymysql``: MySQL and MariaDB through PyMySQL. Each ``execute`` / ``executemany`` on connections opened
after ``init()`` is a CLIENT span with the query text without literal values, timed by
``db_client_operation_duration_seconds``.

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_pymysql_dbapi``, built on ``opentelemetry-instrumentation-dbapi``) is
imported on the first :func:`instrument`, so importing this module needs neither pymysql nor the hook.
"""

from __future__ import annotations

import sys

from obskit.integrations._contract import Integration, Teardown, load
from obskit.integrations._sql import set_keep_literals

from obskit._config import Config

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_HOOK = "obskit.integrations._pymysql_dbapi"


def instrument() -> bool:
    """Trace connections opened from now on; False (and nothing done) if already instrumented."""
    from obskit.integrations import _pymysql_dbapi

    return _pymysql_dbapi.instrument()


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
    load("pymysql")
    load(_HOOK)
    set_keep_literals(config.db_query_literals)
    return uninstrument if instrument() else None


INTEGRATION = Integration(
    name="pymysql",
    extra="pymysql",
    requires={"pymysql": "1.1", "opentelemetry-instrumentation-dbapi": "0.66b0"},
    setup=_setup,
)
