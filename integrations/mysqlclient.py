"""``mysqlclient``: MySQL and MariaDB through mysqlclient (the ``MySQLdb`` module). Each ``execute`` /
``executemany`` on connections opened after ``init()`` is a CLIENT span with ``db.system`` ``mysql``,
``db.namespace``, ``db.operation.name`` and the query text without literal values, timed by
``db_client_operation_duration_seconds``.

mysqlclient itself is not in the extra: it compiles against the MySQL or MariaDB client headers
(``libmariadb-dev`` or ``libmysqlclient-dev`` on Debian), so the user installs it, as with psycopg2.
:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_mysqlclient_dbapi``, built on ``opentelemetry-instrumentation-dbapi``)
is imported on the first :func:`instrument`, so importing this module needs neither mysqlclient nor the hook.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration
from obskit.integrations._sql_switch import SqlSwitch

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

# Not in ``requires``: the extra leaves the build to the user; the import decides.
_SWITCH = SqlSwitch("MySQLdb", "obskit.integrations._mysqlclient_dbapi",
                    missing="mysqlclient is not installed: install the MySQL or MariaDB client headers "
                            "(Debian: libmariadb-dev, pkg-config), then pip install mysqlclient")
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented


INTEGRATION = Integration(
    name="mysqlclient",
    module="MySQLdb",
    extra="mysqlclient",
    requires={"opentelemetry-instrumentation-dbapi": "0.66b0"},
    setup=_SWITCH.setup,
)
