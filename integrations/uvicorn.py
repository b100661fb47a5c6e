"""``uvicorn``: its loggers print once, through obskit, even after ``uvicorn.run()`` re-applies its config.

Nothing to switch on: obskit's log router adopts the loggers declared here whenever it routes logging
(``logs=True``), takes them back after ``uvicorn.config.Config.configure_logging`` runs, and the ASGI
middleware (:mod:`obskit.integrations.asgi`) gives the access line the request's ``trace_id``.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration

INTEGRATION = Integration(
    name="uvicorn",
    extra="uvicorn",
    requires={"uvicorn": "0.29"},
    loggers=("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"),
    reconfigure_hooks=(("uvicorn.config", "Config", "configure_logging"),),
)
