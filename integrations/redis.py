"""``redis``: each command of ``redis.Redis`` (sync and asyncio) is a CLIENT span; values are not recorded."""

from __future__ import annotations

from obskit.integrations._contract import Integration, otel_instrumentor

INTEGRATION = Integration(
    name="redis",
    module="redis",
    extra="redis",
    requires={"redis": "5", "opentelemetry-instrumentation-redis": "0.66b0"},
    setup=otel_instrumentor("redis", "opentelemetry.instrumentation.redis", "RedisInstrumentor"),
)
