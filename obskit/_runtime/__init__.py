"""What every signal shares: the internal-error guard, the after-fork registry, self-telemetry, exporters.

- ``_safe``: no exception from a telemetry path reaches the application; bounded waits.
- ``_fork``: the one after-fork registry; components register a callback, nobody else calls
  ``os.register_at_fork``.
- ``_health``: obskit's own counts (dropped items, failed exports).
- ``_batching``: the SDK batch processors for spans and log records, with their drops counted.
- ``_exporters``: the guarded OTLP exporter factory for all three signals (``_bounds``: size bounds on
  what one export carries).
- ``_otlp_build``: the OpenTelemetry OTLP exporters, configured by obskit's settings and nothing else.
- ``_redact``: the one redaction mechanism used at every exit (``_urls``: secrets inside text and URLs).
- ``_resource``: the OpenTelemetry resource describing this process.

May import: ``obskit._config``, ``obskit._errors``, OpenTelemetry. Never a signal package: signals import
the runtime, not the other way round (``_health`` is handed its metric sink by the metrics package).
"""
