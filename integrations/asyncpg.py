"""``asyncpg``: each ``execute`` / ``executemany`` / ``fetch*`` of every asyncpg connection (pools' too),
opened before or after ``init()``, is a CLIENT span with ``db.system``, ``db.namespace``,
``db.operation.name`` and the query text without literal values, timed by
``db_client_operation_duration_seconds``. ``obskit.init()`` switches it on. Prepared statements and cursors
are not (SQLAlchemy's asyncpg dialect uses those: its ``sqlalchemy`` spans cover it).

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_asyncpg_hook``) is imported on the first :func:`instrument`, so
importing this module needs neither asyncpg nor the hook.
"""

from __future__ import annotations

import sys

from obskit.integrations._contract import Integration, Teardown, load
from obskit.integrations._sql import set_keep_literals

from obskit._config import Config

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_HOOK = "obskit.integrations._asyncpg_hook"


def instrument() -> bool:
    """Trace every connection from now on; False (and nothing done) if already instrumented."""
    from obskit.integrations import _asyncpg_hook

    return _asyncpg_hook.instrument()


def uninstrument() -> None:
    """Stop tracing (connections keep working)."""
    hook = sys.modules.get(_HOOK)
    if hook is not None:
        hook.uninstrument()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    hook = sys.modules.get(_HOOK)
    return hook is not None and bool(hook.is_instrumented())


def _setup(config: Config) -> Teardown | None:
    load("asyncpg")
    load(_HOOK)
    set_keep_literals(config.db_query_literals)
    return uninstrument if instrument() else None


INTEGRATION = Integration(
    name="asyncpg",
    extra="asyncpg",
    requires={"asyncpg": "0.29"},
    setup=_setup,
)
