"""obskit: one call at start-up for correlated traces, logs and metrics.

    import obskit
    obskit.init(service_name="checkout")
    log = obskit.get_logger(__name__)
    with obskit.span("charge", order_id=42):
        log.info("charging")          # carries trace_id and span_id

Everything here is the public surface; modules prefixed ``_`` are private. Each name is imported from its
module when first used (``obskit.init``, ``from obskit import span``), so ``import obskit`` costs nothing and
an application that never uses, say, the resilience guards never imports them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported by __getattr__ below
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

# The same names by module, for __getattr__ (tests/test_startup.py checks it against __all__ and the
# TYPE_CHECKING imports above).
_PUBLIC = {
    "._config": ("Config",),
    "._errors": ("BulkheadFullError", "CallTimeoutError", "CircuitOpenError", "ConfigError", "MetricError",
                 "ObskitError", "ResilienceError"),
    "._logs._api": ("bind_context", "bound_context", "clear_context", "get_logger", "unbind_context"),
    "._metrics": ("Counter", "Gauge", "Histogram", "counter", "gauge", "histogram", "metrics_asgi_app",
                  "metrics_wsgi_app"),
    "._resilience": ("CircuitBreaker", "CircuitState", "bulkhead", "circuit_breaker", "retry", "timeout"),
    "._setup": ("Telemetry", "force_flush", "get_tracer", "init", "shutdown"),
    "._traces": ("span", "traced"),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}

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


if not TYPE_CHECKING:  # type checkers resolve the names from the imports above, and flag unknown ones

    def __getattr__(name: str) -> object:
        """A public name, imported from its module on first use, then kept here."""
        module = _MODULE_OF.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
