"""``django``: every Django project is traced by ``obskit.init()`` alone, called in ``wsgi.py``, ``asgi.py``,
``manage.py`` or the settings.

One SERVER span per request named by its route (``GET items/<int:pk>``), the RED metrics under that route,
log lines correlated. Django's own loggers go through obskit exactly once: its logging config (applied by
``django.setup()``, after ``init()`` wherever ``init()`` is called) gives ``django`` a console handler and
``django.server`` its own, without propagation; the router takes both back after
``django.utils.log.configure_logging`` runs. So a view's unhandled exception is one line from
``django.request`` with the structured exception and the request's ``trace_id``, DEBUG on or off, and
``runserver``'s access lines are obskit lines. Django is not imported by ``init()``: the hook
(``integrations/_django_hook.py``) is switched on when Django's request handlers are imported.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration, Teardown
from obskit.integrations._import_hook import HookWhenImported

from obskit._config import Config


def _instrument() -> bool:
    from obskit.integrations import _django_hook

    return _django_hook.instrument()


def _uninstrument() -> None:
    from obskit.integrations import _django_hook

    _django_hook.uninstrument()


_hook = HookWhenImported(("django.core.handlers.wsgi", "django.core.handlers.asgi"), _instrument,
                         _uninstrument)


def _setup(config: Config) -> Teardown | None:
    from obskit.integrations import _http_server

    _http_server.configure(config.excluded_paths)
    return _hook.setup()


INTEGRATION = Integration(
    name="django",
    extra="django",
    requires={"django": "4.2", "opentelemetry-instrumentation-wsgi": "0.66b0",
              "opentelemetry-instrumentation-asgi": "0.66b0"},
    loggers=("django", "django.request", "django.server"),
    reconfigure_hooks=(("django.utils.log", "", "configure_logging"),),
    setup=_setup,
)
