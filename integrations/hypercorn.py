"""``hypercorn``: its error and access loggers print once, through obskit, like uvicorn's.

Nothing to switch on: obskit's log router adopts the loggers declared here whenever it routes logging.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration

INTEGRATION = Integration(
    name="hypercorn",
    extra="hypercorn",
    requires={"hypercorn": "0.16"},
    loggers=("hypercorn.error", "hypercorn.access"),
)
