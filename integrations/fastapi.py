"""``fastapi``: every FastAPI app gets one SERVER span per request (the Starlette hook, FastAPI's extra).

FastAPI apps are Starlette apps: this switches on the same hook as :mod:`obskit.integrations.starlette`,
which patches FastAPI too; enabling both names installs it once.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration, Teardown
from obskit.integrations.starlette import starlette_setup

from obskit._config import Config


def _setup(config: Config) -> Teardown | None:
    return starlette_setup("fastapi", config)


INTEGRATION = Integration(
    name="fastapi",
    module="fastapi",
    extra="fastapi",
    requires={"fastapi": "0.110", "opentelemetry-instrumentation-asgi": "0.66b0"},
    setup=_setup,
)
