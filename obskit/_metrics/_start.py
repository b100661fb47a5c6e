"""Starting, stopping and resetting metrics: the ``/metrics`` server, the OTLP push, the API provider."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.sdk.resources import Resource

from .._config import Config
from .._runtime._safe import SafeLogger, report_internal_error
from . import _fork_locks, _instruments, _multiprocess, _otel_api, _self, _threads
from ._exposition import serve
from ._instruments import _settings, set_strict_labels
from ._otlp import Pusher

__all__ = ["MetricsHandle", "reset", "start_metrics"]

_log = SafeLogger("obskit.metrics")


class MetricsHandle:
    """What ``start_metrics`` started: the ``/metrics`` server and the OTLP push. Stops them, bounded."""

    def __init__(self, server: Any = None, pusher: Any = None) -> None:
        self.server = server
        self.pusher = pusher

    @property
    def port(self) -> int | None:
        """The port ``/metrics`` is served on (useful with ``metrics_port=0``)."""
        return None if self.server is None else int(self.server.port)

    def force_flush(self, timeout: float) -> bool:
        """Push the current values over OTLP now; False if that failed or took longer than ``timeout``."""
        try:
            return True if self.pusher is None else bool(self.pusher.force_flush(timeout))
        except Exception as exc:
            report_internal_error("metrics force_flush", exc)
            return False

    def shutdown(self, timeout: float) -> bool:
        """Stop the server, push a last time and stop the pusher, all within ``timeout`` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        ok = True
        try:
            if self.server is not None:
                self.server.stop()
                self.server = None
            if self.pusher is not None:
                ok = bool(self.pusher.shutdown(max(deadline - time.monotonic(), 0.0)))
                self.pusher = None
        except Exception as exc:
            report_internal_error("metrics shutdown", exc)
            return False
        return ok


def start_metrics(config: Config, resource: Resource) -> MetricsHandle | None:
    """Called once by ``obskit.init()``: apply settings, serve ``/metrics``, start the OTLP push."""
    _multiprocess.ensure_prepared()
    _settings["max_label_sets"] = config.metrics_max_label_sets
    if config.strict:
        set_strict_labels(True)
    if not config.metrics:
        return None
    if config.multiproc_dir and not _multiprocess.enabled():
        _log.warning("obskit: the multiprocess directory %s was configured after obskit was imported; "
                     "set OBSKIT_MULTIPROC_DIR in the environment before start-up (see docs/metrics.md).",
                     config.multiproc_dir)
    _multiprocess.explain_once()

    _self.install()
    _fork_locks.install()
    _otel_api.install()
    _threads.install()
    server = None
    if config.metrics_port is not None:
        server = serve(config.metrics_addr, config.metrics_port, strict=config.strict)
    pusher = None
    if config.exports("metrics"):
        pusher = Pusher(config, resource)
        pusher.start()
    return MetricsHandle(server, pusher)


def reset() -> None:
    """Every metric value zeroed, obskit's and the OpenTelemetry API's; definitions and settings' defaults."""
    _instruments.reset()
    _otel_api.reset()
