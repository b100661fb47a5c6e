"""``requests``: every call is a CLIENT span and sends ``traceparent`` (OpenTelemetry's instrumentor)."""

from __future__ import annotations

from obskit.integrations._contract import Integration, otel_instrumentor

INTEGRATION = Integration(
    name="requests",
    module="requests",
    extra="requests",
    requires={"requests": "2.31", "opentelemetry-instrumentation-requests": "0.66b0"},
    setup=otel_instrumentor("requests", "opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
)
