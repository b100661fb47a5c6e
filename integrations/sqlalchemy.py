"""``sqlalchemy``: each statement of every engine, sync or asyncio, created before or after ``init()``, is a
CLIENT span with ``db.system``, ``db.namespace``, ``db.operation.name`` and the query text without literal
values; ``db_client_operation_duration_seconds`` times them and ``db_client_connection_count`` shows each
pool's idle and used connections. ``obskit.init()`` switches it on.

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_sqlalchemy_hook``) is imported on the first :func:`instrument`, so
importing this module needs neither SQLAlchemy nor the hook.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration
from obskit.integrations._sql_switch import SqlSwitch

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_SWITCH = SqlSwitch("sqlalchemy", "obskit.integrations._sqlalchemy_hook")
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented


INTEGRATION = Integration(
    name="sqlalchemy",
    module="sqlalchemy",
    extra="sqlalchemy",
    requires={"sqlalchemy": "2.0"},
    setup=_SWITCH.setup,
)
