"""Metrics: instruments on prometheus-client, ``/metrics`` exposition, exemplars, multiprocess, OTLP push.

Owns every metric value in the process. Recording goes only into prometheus-client; the ``/metrics``
endpoint and the OTLP push both read those same objects, so the two outputs agree by construction.

May import: ``obskit._config``, ``obskit._errors``, ``obskit._runtime``. Never the other signal packages.
"""

from ._exposition import metrics_asgi_app, metrics_wsgi_app
from ._instruments import (
    DEFAULT_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    counter,
    gauge,
    histogram,
    set_strict_labels,
)
from ._start import MetricsHandle, reset, start_metrics

__all__ = [
    "DEFAULT_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsHandle",
    "counter",
    "gauge",
    "histogram",
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "reset",
    "set_strict_labels",
    "start_metrics",
]
