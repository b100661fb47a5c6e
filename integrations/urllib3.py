"""``urllib3``: every request of every pool (``PoolManager``, ``urllib3.request()``, connection pools), made
before or after ``init()``, is a CLIENT span named by its method, sends ``traceparent``, and is timed by
``http_client_request_duration_seconds`` (method, status and server; never the path).

OTLP/HTTP exports (obskit's own, through requests and urllib3) are never traced, nor is the urllib3 call
inside a ``requests`` call the ``requests`` integration traces already: one request, one span. urllib3 is
not imported by ``init()``: the hook (``integrations/_urllib3_hook.py``) is switched on when the
application imports urllib3, or at once if it already has. :func:`instrument`, :func:`uninstrument` and
:func:`is_instrumented` are for code that manages the instrumentation itself.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration
from obskit.integrations._import_switch import SwitchOnImport

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_SWITCH = SwitchOnImport("urllib3", "obskit.integrations._urllib3_hook")
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented

INTEGRATION = Integration(
    name="urllib3",
    module="urllib3",
    extra="urllib3",
    requires={"urllib3": "2"},
    setup=_SWITCH.setup,
)
