"""Logs: one pipeline for structlog and stdlib ``logging``, renderers, stdlib routing, the OTLP bridge.

- ``_pipeline``: processors, context, redaction and rendering of one line (JSON or console).
- ``_api``: ``get_logger``, context binding and ``configure_logging``.
- ``_stdlib``: routing stdlib records (servers, libraries) through the pipeline exactly once.
- ``_otlp``: the OTLP log bridge and the LoggerProvider it writes to.
- ``_global``: the process-wide OpenTelemetry LoggerProvider obskit installs once and re-points.

May import: ``obskit._config``, ``obskit._errors``, ``obskit._runtime``. Never the other signal packages.
"""

from ._api import configure_logging, get_logger, reset

__all__ = ["configure_logging", "get_logger", "reset"]
