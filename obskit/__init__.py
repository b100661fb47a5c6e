"""obskit: one call at start-up for correlated traces, logs and metrics.

    import obskit
    obskit.init(service_name="checkout")
    log = obskit.get_logger(__name__)
    with obskit.span("charge", order_id=42):
        log.info("charging")          # carries trace_id and span_id

Everything here is the public surface; modules prefixed ``_`` are private.
"""

from __future__ import annotations

from ._config import Config
from ._errors import (
    BulkheadFullError,
    CallTimeoutError,
    CircuitOpenError,
    ConfigError,
    MetricError,
    ObskitError,
    ResilienceError,
)
from ._logs._api import bind_context, bound_context, clear_context, get_logger, unbind_context
from ._metrics import (
    Counter,
    Gauge,
    Histogram,
    counter,
    gauge,
    histogram,
    metrics_asgi_app,
    metrics_wsgi_app,
)
from ._resilience import CircuitBreaker, CircuitState, bulkhead, circuit_breaker, retry, timeout
from ._setup import Telemetry, force_flush, get_tracer, init, shutdown
from ._traces import span, traced

__version__ = "0.1.0"

__all__ = [
    "BulkheadFullError",
    "CallTimeoutError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Config",
    "ConfigError",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricError",
    "ObskitError",
    "ResilienceError",
    "Telemetry",
    "__version__",
    "bind_context",
    "bound_context",
    "bulkhead",
    "circuit_breaker",
    "clear_context",
    "counter",
    "force_flush",
    "gauge",
    "get_logger",
    "get_tracer",
    "histogram",
    "init",
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "retry",
    "shutdown",
    "span",
    "timeout",
    "traced",
    "unbind_context",
]
