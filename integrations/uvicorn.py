"""``uvicorn``: its loggers print once, through obskit, even after ``uvicorn.run()`` re-applies its config.

Nothing to switch on: obskit's log router adopts the loggers declared here whenever it routes logging
(``logs=True``), takes them back after ``uvicorn.config.Config.configure_logging`` runs, and the ASGI
middleware (:mod:`obskit.integrations.asgi`) gives the access line the request's ``trace_id``.

On SIGTERM uvicorn stops gracefully, then raises SIGTERM again with the default handler, so the process
ends past ``atexit``: obskit flushes when ``Server.shutdown`` returns (``stop_hooks``), after the last
connection closed and the lifespan ended, so every finished request's spans and lines are exported.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration

INTEGRATION = Integration(
    name="uvicorn",
    extra="uvicorn",
    requires={"uvicorn": "0.29"},
    loggers=("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"),
    reconfigure_hooks=(("uvicorn.config", "Config", "configure_logging"),),
    stop_hooks=(("uvicorn.server", "Server", "shutdown"),),
)
