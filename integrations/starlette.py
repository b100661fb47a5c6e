"""``starlette``: every Starlette app, created before or after ``init()``, gets one SERVER span per request.

The hook is :func:`obskit.integrations.asgi.instrument_starlette`: :class:`~obskit.integrations.asgi.
ObskitASGIMiddleware` outermost in every app (FastAPI's included), named by route.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration, Teardown, load

from obskit._config import Config


def starlette_setup(library: str, config: Config) -> Teardown | None:
    """Switch the Starlette hook on once ``library`` (starlette or fastapi) imports; shared with fastapi."""
    load(library)
    load("opentelemetry.instrumentation.asgi")
    from obskit.integrations import _http_server, asgi

    _http_server.configure(config.excluded_paths)
    return asgi.uninstrument_starlette if asgi.instrument_starlette(config.operation_spans) else None


def _setup(config: Config) -> Teardown | None:
    return starlette_setup("starlette", config)


INTEGRATION = Integration(
    name="starlette",
    module="starlette",
    extra="starlette",
    requires={"starlette": "0.37", "opentelemetry-instrumentation-asgi": "0.66b0"},
    setup=_setup,
)
