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

from obskit.integrations._contract import Integration
from obskit.integrations._sql_switch import SqlSwitch

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_SWITCH = SqlSwitch("asyncpg", "obskit.integrations._asyncpg_hook")
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented


INTEGRATION = Integration(
    name="asyncpg",
    module="asyncpg",
    extra="asyncpg",
    requires={"asyncpg": "0.29"},
    setup=_SWITCH.setup,
)
