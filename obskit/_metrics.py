"""PLACEHOLDER (metrics helper replaces this file; keep these names importable from here)."""

from __future__ import annotations

from typing import Any


def counter(name: str, documentation: str = "", *, labels: Any = (), unit: str = "") -> Any:
    raise NotImplementedError


def histogram(name: str, documentation: str = "", *, labels: Any = (), unit: str = "",
              buckets: Any = None) -> Any:
    raise NotImplementedError


def gauge(name: str, documentation: str = "", *, labels: Any = (), unit: str = "") -> Any:
    raise NotImplementedError


def metrics_asgi_app() -> Any:
    raise NotImplementedError


def metrics_wsgi_app() -> Any:
    raise NotImplementedError


def start_metrics(config: Any, resource: Any) -> Any:
    """Called by init(): start /metrics server and OTLP push. Returns an object with
    shutdown(timeout: float) -> bool and force_flush(timeout: float) -> bool, or None."""
    return None
