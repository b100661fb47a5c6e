"""``urllib``: every request ``urllib.request`` sends (``urlopen()``, any opener), before or after
``init()``, is a CLIENT span named by its method, sends ``traceparent``, and is timed by
``http_client_request_duration_seconds`` (method, status and server; never the path). A redirect followed is
two requests, so two spans; a status >= 400 is on its span before urllib raises ``HTTPError``.

The standard library: nothing to install. ``urllib.request`` is in every process that runs obskit
(prometheus-client imports it), so its import says nothing about the application using it: the hook
(``integrations/_urllib_hook.py``) is not imported before the first request. Once ``urllib.request`` is
imported, a trampoline in place of ``AbstractHTTPHandler.do_open`` switches the hook on at the first request
and forwards it, traced. :func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code
that manages the instrumentation itself (the trampoline waiting counts as instrumented).
"""

from __future__ import annotations

from obskit.integrations._contract import Integration
from obskit.integrations._import_switch import SwitchOnImport

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

_SWITCH = SwitchOnImport("urllib.request", "obskit.integrations._urllib_hook",
                         first_call=("AbstractHTTPHandler", "do_open"))
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented

# The standard library: no distribution to require, and the extra installs nothing.
INTEGRATION = Integration(
    name="urllib",
    module="urllib.request",
    extra="urllib",
    requires={},
    setup=_SWITCH.setup,
)
