"""``psycopg2``: PostgreSQL through psycopg2. Each ``execute`` / ``executemany`` on connections opened after
``init()`` is a CLIENT span with the query text without literal values, timed by
``db_client_operation_duration_seconds``.

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_psycopg2_dbapi``, built on ``opentelemetry-instrumentation-dbapi``) is
imported on the first :func:`instrument`, so importing this module needs neither psycopg2 nor the hook.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration
from obskit.integrations._sql_switch import SqlSwitch

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

# Not in ``requires``: it installs as psycopg2 (from source) or psycopg2-binary; the import decides.
_SWITCH = SqlSwitch("psycopg2", "obskit.integrations._psycopg2_dbapi",
                    missing="psycopg2 is not installed: pip install psycopg2-binary (or psycopg2)")
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented


INTEGRATION = Integration(
    name="psycopg2",
    module="psycopg2",
    extra="psycopg2",
    requires={"opentelemetry-instrumentation-dbapi": "0.66b0"},
    setup=_SWITCH.setup,
)
