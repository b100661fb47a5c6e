"""``httpx``: every ``Client`` / ``AsyncClient`` call is a CLIENT span and sends ``traceparent``."""

from __future__ import annotations

from obskit.integrations._contract import Integration, otel_instrumentor

INTEGRATION = Integration(
    name="httpx",
    module="httpx",
    extra="httpx",
    requires={"httpx": "0.27", "opentelemetry-instrumentation-httpx": "0.66b0"},
    setup=otel_instrumentor("httpx", "opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
)
