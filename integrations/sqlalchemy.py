"""``sqlalchemy``: each statement of every engine, sync or asyncio, created before or after ``init()``, is a
CLIENT span with ``db.system``, ``db.namespace``, ``db.operation.name`` and the query text without literal
values; ``db_client_operation_duration_seconds`` times them and ``db_client_connection_count`` shows each
pool's idle and used connections. ``obskit.init()`` switches it on.

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_sqlalchemy_hook``) is imported on the first :func:`instrument`, so
importing this module needs neither SQLAlchemy nor the hook.
"""

from __future__ import annotations

import sys

from obskit.integrations._contract import Integration, Teardown, load
from obskit.integrations._sql import set_keep_literals

from obskit._config import Config

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_HOOK = "obskit.integrations._sqlalchemy_hook"


def instrument() -> bool:
    """Trace every engine from now on; False (and nothing done) if already instrumented."""
    from obskit.integrations import _sqlalchemy_hook

    return _sqlalchemy_hook.instrument()


def uninstrument() -> None:
    """Stop tracing (engines keep working)."""
    hook = sys.modules.get(_HOOK)
    if hook is not None:
        hook.uninstrument()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    hook = sys.modules.get(_HOOK)
    return hook is not None and bool(hook.is_instrumented())


def _setup(config: Config) -> Teardown | None:
    load("sqlalchemy")
    load(_HOOK)
    set_keep_literals(config.db_query_literals)
    return uninstrument if instrument() else None


INTEGRATION = Integration(
    name="sqlalchemy",
    extra="sqlalchemy",
    requires={"sqlalchemy": "2.0"},
    setup=_setup,
)
