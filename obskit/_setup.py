"""``init()``, ``shutdown()`` and ``force_flush()``: the one object that owns what obskit installed.

Every step of ``init()`` is guarded on its own, so a failing part (say, an exporter that cannot be built)
costs that part only. ``shutdown()`` and ``force_flush()`` run in a daemon thread and return when their
timeout is up, whatever the collector does: the host application's exit is never held hostage.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Tracer

from . import _metrics
from . import _traces as _tracing
from ._config import Config, resolve
from ._errors import ConfigError
from ._logs import _api as _logging
from ._logs import _global as _log_global
from ._logs._otlp import build_logger_provider
from ._runtime import _fork, _health, _redact
from ._runtime._redact import Redactor
from ._runtime._resource import build_resource
from ._runtime._safe import SafeLogger, capture_internal_exceptions, report_internal_error, run_bounded
from .integrations import _registry as _integrations
from .integrations import _server_hooks

__all__ = ["Telemetry", "current", "force_flush", "get_tracer", "init", "reset", "shutdown"]

_log = SafeLogger("obskit")  # an application's raising root handler must not make init() raise

#: init() keywords that are not settings (no environment variable): objects tests and embedders hand in.
SEAMS = ("env", "span_processors", "id_generator")


class Telemetry:
    """What ``obskit.init()`` set up. ``config`` is the resolved settings (secrets masked in its repr)."""

    def __init__(self, config: Config, resource: Resource) -> None:
        self.config = config
        self.resource = resource
        self._tracing: _tracing.TracingHandle | None = None
        self.logger_provider: LoggerProvider | None = None
        self._logging: Any = None
        self._metrics: Any = None
        self.integrations: list[str] = []
        #: What set obskit up before the program could (``"obskit run"``): the program's own init() is
        #: then expected, and returns this Telemetry without a second setup.
        self.started_by: str | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def tracer_provider(self) -> TracerProvider | None:
        """The SDK provider spans go to (obskit's, or the one found installed), None when tracing is off."""
        return self._tracing.provider if self._tracing else None

    def __repr__(self) -> str:
        return f"<obskit.Telemetry service={self.config.service_name!r} closed={self._closed}>"

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Export everything recorded so far; False when that did not finish within ``timeout`` seconds."""
        return run_bounded(lambda: self._flush_all(timeout), timeout, "force_flush")

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush and stop exporting; returns within ``timeout`` seconds (False if work was cut short)."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        return run_bounded(lambda: self._shutdown_all(timeout), timeout, "shutdown")

    def reset(self, timeout: float = 2.0) -> None:
        """Shut down, then put back everything obskit changed process-wide, so the next ``init()`` starts
        from nothing (tests, notebooks). Metric definitions stay, with their values zeroed."""
        self.shutdown(timeout)
        if self._tracing is not None:
            _tracing.forget(self._tracing)
        _reset_process_state()

    def _flush_all(self, deadline_budget: float) -> bool:
        ok = True
        if self._tracing is not None:
            ok &= self._tracing.force_flush(deadline_budget)
        if self.logger_provider is not None:
            ok &= bool(self.logger_provider.force_flush(int(deadline_budget * 1000)))
        if self._metrics is not None:
            ok &= bool(self._metrics.force_flush(deadline_budget))
        return ok

    def _shutdown_all(self, budget: float) -> bool:
        ok = True
        # Traces and logs first: a metric push at the end carries the counts of what they dropped.
        if self._tracing is not None:
            with capture_internal_exceptions("tracing shutdown"):
                self._tracing.shutdown()
        if self._logging is not None:
            # Detach the OTLP bridge first: lines logged after shutdown still print, and are not handed
            # to a provider that would answer each of them with a "Shutdown called" warning line.
            with capture_internal_exceptions("log export stop"):
                self._logging.stop_export()
        if self.logger_provider is not None:
            with capture_internal_exceptions("log export shutdown"):
                self.logger_provider.shutdown()
                _log_global.release(self.logger_provider)
        if self._metrics is not None:
            with capture_internal_exceptions("metrics shutdown"):
                ok &= bool(self._metrics.shutdown(budget))
        return ok


_current: Telemetry | None = None
_init_lock = threading.Lock()
_atexit_registered = False


def current() -> Telemetry | None:
    """The live ``Telemetry``, or None before ``init()`` / after ``shutdown()``."""
    return _current


def init(
    *,
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    otlp_headers: dict[str, str] | str | None = None,
    traces: bool | None = None,
    logs: bool | None = None,
    metrics: bool | None = None,
    sample_ratio: float | None = None,
    log_level: str | int | None = None,
    log_format: str | None = None,
    log_stream: IO[str] | None = None,
    metrics_port: int | None = None,
    integrations: str | list[str] | tuple[str, ...] | None = "auto",
    redact: str | list[str] | tuple[str, ...] = (),
    redact_exceptions: bool | None = None,
    access_log_export: bool | None = None,
    operation_spans: bool | None = None,
    strict: bool | None = None,
    env: Mapping[str, str] | None = None,
    span_processors: Sequence[SpanProcessor] = (),
    id_generator: IdGenerator | None = None,
) -> Telemetry:
    """Set up traces, logs and metrics in one call. Every argument also comes from the environment.

    Precedence is argument > ``OBSKIT_*`` > ``OTEL_*`` > default; ``docs/configuration.md`` lists them
    all. A bad value warns (naming the option and what it accepts) and falls back to the default, or
    raises :class:`obskit.ConfigError` under ``strict``. A second call warns and changes nothing.

    ``env`` replaces ``os.environ`` as the source of ``OBSKIT_*``/``OTEL_*`` settings (a test passes a
    filtered copy). ``span_processors`` are added beside obskit's exporter (an in-memory exporter in
    tests); ``id_generator`` fixes trace and span ids for deterministic tests.
    """
    global _current, _atexit_registered
    args: dict[str, Any] = {
        "service_name": service_name, "service_version": service_version, "environment": environment,
        "otlp_endpoint": otlp_endpoint, "otlp_protocol": otlp_protocol, "otlp_headers": otlp_headers,
        "traces": traces, "logs": logs, "metrics": metrics, "sample_ratio": sample_ratio,
        "log_level": log_level, "log_format": log_format, "log_stream": log_stream,
        "metrics_port": metrics_port,
        # "auto" is the signature's default: let OBSKIT_INTEGRATIONS decide unless the caller chose.
        "integrations": None if integrations == "auto" else integrations,
        # A string is one comma-separated list (redact="ssn" is the key ssn, not the keys s and n).
        "redact": redact or None, "redact_exceptions": redact_exceptions,
        "access_log_export": access_log_export, "operation_spans": operation_spans, "strict": strict,
    }
    with _init_lock:
        if _current is not None:
            if _current.started_by is not None:
                given = sorted(k for k, v in args.items() if v is not None)
                if given:
                    _log.warning("obskit: %s set obskit up from the environment; init() keeps that setup and "
                                 "ignores %s (set them as OBSKIT_* variables)", _current.started_by,
                                 ", ".join(given))
                return _current
            _log.warning("obskit.init() was called again; keeping the first configuration (call "
                         "obskit.shutdown() first to start over)")
            return _current
        config = resolve(args, env, integration_names=integration_names())  # ConfigError under strict
        # Before anything can print or export: every exit redacts with the keys this call configured.
        _redact.install(Redactor(config.redact, scrub_exceptions=config.redact_exceptions))
        resource = _guarded("resource", lambda: build_resource(config)) or Resource(
            {"service.name": config.service_name})
        tel = Telemetry(config, resource)
        # Logging first, so that whatever the later steps report is already rendered by obskit.
        if config.logs and not config.disabled and config.logs_exporter != "none" and (
                config.exports("logs") or config.logs_exporter == "console"):
            tel.logger_provider = _guarded("log export setup",
                                           lambda: build_logger_provider(config, resource))
        if config.logs:
            tel._logging = _guarded("logging setup", lambda: _logging.configure_logging(
                config, logger_provider=tel.logger_provider))
        tel._tracing = _guarded("tracing setup", lambda: _tracing.setup_tracing(
            config, resource, span_processors=span_processors, id_generator=id_generator))
        if config.metrics:
            tel._metrics = _or_abandon(tel, "metrics setup", lambda: _metrics.start_metrics(config, resource))
        _guarded("semantic conventions", _stable_http_semconv)
        tel.integrations = _guarded("integrations", lambda: _integrations.enable(config)) or []
        # Servers that end the process past atexit (uvicorn re-raises SIGTERM) flush as they stop; servers'
        # own methods get what makes obskit's guarantees hold there (gunicorn's access line in its span).
        _guarded("server hooks", lambda: _server_hooks.install(
            _integrations.stop_targets(), _at_stop, _integrations.patches()))
        _current = tel
        if not _atexit_registered:
            atexit.register(_at_exit)
            # multiprocessing ends its children with os._exit(), past atexit: they shut down from here.
            _fork.register("shutdown at exit", at_child_exit=_at_exit)
            _atexit_registered = True
    for message in config.warnings:
        _log.warning(message)
    return tel


def _stable_http_semconv() -> None:
    """Contrib instrumentations record the stable HTTP metric names, in seconds, unless the user chose.

    Without it they emit the old names in milliseconds, which is why public dashboards show nothing.
    ``database/dup``: the dbapi-based SQL integrations record ``db.client.operation.duration`` only under
    the database opt-in, and ``/dup`` keeps the older span attributes (``db.system``, ``db.statement``)
    beside the stable ones (``db.namespace``, ``db.query.text``), so queries written against either work.
    """
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database/dup")


def _guarded(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ConfigError:
        raise  # only raised under strict, where the caller asked for it (see init)
    except Exception as exc:
        report_internal_error(what, exc)
        return None


def _or_abandon(tel: Telemetry, what: str, fn: Callable[[], Any]) -> Any:
    """A step that may find, under strict, a setting unusable only when used (a metrics port in use): the
    ConfigError propagates after what this init() built is undone, so nothing is left half set up."""
    try:
        return _guarded(what, fn)
    except ConfigError:
        tel.shutdown(1.0)
        if tel._tracing is not None:
            _tracing.forget(tel._tracing)
        for step, undo in (("integrations reset", _integrations.disable_all),
                           ("logging reset", _logging.reset), ("tracing reset", _tracing.reset)):
            _guarded(step, undo)
        _redact.install(Redactor())
        raise


def integration_names() -> set[str] | None:
    """Names an integrations list may hold: each integration's, and the aliases it explains (``flask``)."""
    try:
        found = _integrations.integrations()
    except Exception as exc:
        report_internal_error("integrations", exc)
        return None
    return set(found) | {alias for i in found.values() for alias in i.aliases}


def shutdown(timeout: float = 5.0) -> bool:
    """Flush and stop what ``init()`` started; returns within ``timeout`` seconds. Safe to call twice."""
    global _current
    with _init_lock:
        tel, _current = _current, None
    if tel is None:
        return True
    ok = tel.shutdown(timeout)
    if tel._tracing is not None:
        _tracing.forget(tel._tracing)
    return ok


def reset(timeout: float = 2.0) -> None:
    """Shut obskit down and put back everything it changed process-wide: the next ``init()`` starts fresh.

    Works with or without a live ``Telemetry`` (see :meth:`Telemetry.reset`).
    """
    global _current
    with _init_lock:
        tel, _current = _current, None
    if tel is not None:
        tel.reset(timeout)
    else:
        _reset_process_state()


def _reset_process_state() -> None:
    """Each process-wide piece obskit installs, reset by its owner (named here, not searched for)."""
    for what, fn in (("integrations reset", _integrations.disable_all), ("logging reset", _logging.reset),
                     ("tracing reset", _tracing.reset), ("metrics reset", _metrics.reset),
                     ("health reset", _health.reset), ("server hooks", _server_hooks.uninstall)):
        _guarded(what, fn)


def force_flush(timeout: float = 5.0) -> bool:
    """Export everything recorded so far, waiting at most ``timeout`` seconds."""
    tel = _current
    return True if tel is None else tel.force_flush(timeout)


def get_tracer(name: str | None = None) -> Tracer:
    """A tracer from the global provider; before ``init()`` it becomes real once a provider is set."""
    return _tracing.get_tracer(name)


def _at_stop() -> None:
    """A server stopped serving and may end the process without atexit: export what is recorded."""
    force_flush(timeout=5.0)


def _at_exit() -> None:
    try:
        shutdown(timeout=5.0)
    except Exception as exc:
        report_internal_error("shutdown at exit", exc)
