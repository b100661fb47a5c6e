"""``pymysql``: MySQL and MariaDB through PyMySQL. Each ``execute`` / ``executemany`` on connections opened
after ``init()`` is a CLIENT span with the query text without literal values, timed by
``db_client_operation_duration_seconds``.

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_pymysql_dbapi``, built on ``opentelemetry-instrumentation-dbapi``) is
imported on the first :func:`instrument`, so importing this module needs neither pymysql nor the hook.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration
from obskit.integrations._sql_switch import SqlSwitch

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_SWITCH = SqlSwitch("pymysql", "obskit.integrations._pymysql_dbapi")
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented


INTEGRATION = Integration(
    name="pymysql",
    module="pymysql",
    extra="pymysql",
    requires={"pymysql": "1.1", "opentelemetry-instrumentation-dbapi": "0.66b0"},
    setup=_SWITCH.setup,
)
