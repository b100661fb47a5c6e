"""``psycopg`` (3): each ``execute`` / ``executemany`` is a CLIENT span; ``obskit.init()`` switches it on.

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself. The hook (``_psycopg_dbapi``, built on ``opentelemetry-instrumentation-dbapi``) is
imported on the first :func:`instrument`, so importing this module needs neither psycopg nor the hook.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration
from obskit.integrations._sql_switch import SqlSwitch

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_SWITCH = SqlSwitch("psycopg", "obskit.integrations._psycopg_dbapi")
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented


INTEGRATION = Integration(
    name="psycopg",
    module="psycopg",
    extra="psycopg",
    requires={"psycopg": "3.1", "opentelemetry-instrumentation-dbapi": "0.66b0"},
    setup=_SWITCH.setup,
)
