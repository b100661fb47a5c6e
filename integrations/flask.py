"""``flask``: every Flask app, created before or after ``init()``, is traced with no wiring.

One SERVER span per request named by its ``url_rule`` (``GET /items/<int:item_id>``), the RED metrics under
that rule, log lines correlated, Flask's and werkzeug's lines printed once. Flask is not imported by
``init()``: the hook (``integrations/_flask_hook.py``) is switched on when the application imports Flask,
or at once if it already has.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration, Teardown
from obskit.integrations._import_hook import HookWhenImported

from obskit._config import Config


def _instrument() -> bool:
    from obskit.integrations import _flask_hook

    return _flask_hook.instrument()


def _uninstrument() -> None:
    from obskit.integrations import _flask_hook

    _flask_hook.uninstrument()


_hook = HookWhenImported(("flask",), _instrument, _uninstrument)


def _setup(config: Config) -> Teardown | None:
    from obskit.integrations import _http_server

    _http_server.configure(config.excluded_paths)
    return _hook.setup()


INTEGRATION = Integration(
    name="flask",
    extra="flask",
    requires={"flask": "2.3", "opentelemetry-instrumentation-wsgi": "0.66b0"},
    loggers=("werkzeug",),
    setup=_setup,
)
