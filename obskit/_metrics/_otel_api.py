"""The OpenTelemetry metrics API, implemented on prometheus-client: what instrumentations record lands on
``/metrics`` and in the OTLP push, once each, aggregated across workers like obskit's own metrics.

Why not the OpenTelemetry SDK's MeterProvider beside prometheus-client: its aggregation costs about ten
times a prometheus-client observation, and a second store of the same series would need its own
multiprocess story and could disagree with ``/metrics``. Here a recording goes straight into a
prometheus-client value (mmap files under multiple workers), and both outputs read that.

Names follow the OpenTelemetry-to-Prometheus compatibility rules: ``http.server.request.duration`` with
unit ``s`` is exposed as ``http_server_request_duration_seconds``; counters get ``_total``; attribute keys
become label names with dots replaced. OpenTelemetry lets each recording carry its own attribute keys (an
``error.type`` only on failures), which a prometheus-client metric cannot (its label names are fixed), so
each instrument keeps one unregistered prometheus-client metric per set of keys and exposes them merged
as one family.
"""

from __future__ import annotations

import logging
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Observation
from prometheus_client import Counter as _PCounter
from prometheus_client import Gauge as _PGauge
from prometheus_client import Histogram as _PHistogram
from prometheus_client.metrics_core import Metric

from .._runtime._safe import report_internal_error
from . import _multiprocess
from ._exemplar import current_exemplar
from ._exposition import add_collector
from ._instruments import DEFAULT_BUCKETS, add_source, exposed_names, max_label_sets

__all__ = ["ObskitMeterProvider", "api_instruments", "install", "prometheus_name", "reset"]

_log = logging.getLogger("obskit.metrics")

#: The SDK's default explicit buckets, for histograms that are not durations in seconds.
OTEL_DEFAULT_BUCKETS: tuple[float, ...] = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0,
                                           1000.0, 2500.0, 5000.0, 7500.0, 10000.0)
_UNIT_WORDS = {
    "s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds", "min": "minutes",
    "h": "hours", "d": "days", "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes",
    "GiBy": "gibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "m": "meters",
    "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius",
    "Hz": "hertz", "%": "percent",
}
_PER = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}
_INVALID = re.compile(r"[^a-zA-Z0-9_]+")


def _sanitize(name: str) -> str:
    out = _INVALID.sub("_", name).strip("_") or "_"
    return "_" + out if out[0].isdigit() else out


def unit_word(unit: str) -> str:
    """The Prometheus suffix for an OpenTelemetry unit (``s`` -> ``seconds``; ``{request}`` -> none)."""
    unit = re.sub(r"\{[^}]*\}", "", unit or "").strip()
    if not unit or unit == "1":
        return ""
    if "/" in unit:
        num, _, den = unit.partition("/")
        left = _UNIT_WORDS.get(num, num)
        right = _PER.get(den, _UNIT_WORDS.get(den, den))
        return _sanitize(f"{left}_per_{right}") if left else _sanitize(f"per_{right}")
    return _sanitize(_UNIT_WORDS.get(unit, unit))


def prometheus_name(name: str, unit: str, kind: str) -> str:
    """Exposed name: ``http.server.request.duration`` + ``s`` -> ``http_server_request_duration_seconds``."""
    base = _sanitize(name)
    word = unit_word(unit)
    if word and not base.endswith("_" + word):
        base += "_" + word
    if kind == "counter" and not base.endswith("_total"):
        base += "_total"
    return base


def _label_value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, Sequence):
        return "[" + ",".join(_label_value(x) for x in v) + "]"
    return str(v)


class _Merged:
    """What the OTLP push and the exposition read: one family per instrument, over every key set."""

    def __init__(self, owner: ApiInstrument) -> None:
        self._owner = owner

    def collect(self) -> list[Metric]:
        return self._owner.families()


class ApiInstrument:
    """One OpenTelemetry instrument, stored as prometheus-client metrics (one per set of attribute keys).

    Shaped like obskit's own instruments where the OTLP push reads them (``kind``, ``name``, ``unit``,
    ``documentation``, ``_prom.collect()``).
    """

    def __init__(self, kind: str, otel_name: str, unit: str, description: str,
                 buckets: tuple[float, ...] | None = None) -> None:
        self.kind = kind  # counter | gauge | histogram (up-down counters are gauges)
        self.otel_name = otel_name
        self.unit = unit_word(unit)
        self.otel_unit = unit
        self.exposed_name = prometheus_name(otel_name, unit, kind)
        # prometheus-client appends ``_total`` (counters) and the unit itself: give it the bare base.
        base = self.exposed_name[: -len("_total")] if kind == "counter" else self.exposed_name
        self.name = base[: -len("_" + self.unit)] if self.unit and base.endswith("_" + self.unit) else base
        self.documentation = description or otel_name
        self.buckets = buckets
        self._variants: dict[tuple[str, ...], Any] = {}
        self._cache: dict[Any, Any] = {}
        self._keyed: dict[Any, Any] = {}  # a caller's own key -> series (see keyed())
        self._children = 0
        self._lock = threading.Lock()
        self._exemplars = not _multiprocess.enabled()
        self._warned = False
        self._prom = _Merged(self)
        self._keys: dict[str, str] = {}  # label name -> the attribute key it came from (for OTLP)

    @property
    def otlp_name(self) -> str:
        return self.otel_name

    @property
    def otlp_unit(self) -> str:
        return self.otel_unit

    @property
    def otlp_keys(self) -> dict[str, str]:
        return self._keys

    # --- the hot path -----------------------------------------------------------------------------------

    def _lookup(self, attributes: Mapping[str, Any] | None) -> Any:
        if not attributes:
            key: Any = ()
        else:
            key = tuple(attributes.items())
        try:
            return self._cache[key]
        except KeyError:
            return self._child(attributes or {}, key)
        except TypeError:  # an unhashable value (a list): no cache for this call
            return self._child(attributes or {}, None)

    def keyed(self, key: Any, attributes: Callable[[], Mapping[str, Any]]) -> Any:
        """The series (None: dropped by the label-set limit) for the attributes that ``key`` stands for:
        a caller that records the same few attribute sets on every request (the HTTP server's RED
        metrics) keys them by a tuple of its own values, cheaper than the attributes' items; on a miss
        ``attributes()`` builds them and they are looked up as any recording's."""
        try:
            return self._keyed[key]
        except KeyError:
            pass
        try:
            child = self._lookup(attributes())
        except Exception as exc:
            report_internal_error(f"metric {self.exposed_name}", exc)
            return None
        if child is not None and len(self._keyed) < 4 * max_label_sets():
            self._keyed[key] = child
        return child

    def _child(self, attributes: Mapping[str, Any], key: Any) -> Any:
        values = {_sanitize(k): _label_value(v) for k, v in attributes.items()}
        names = tuple(sorted(values))
        for k in attributes:
            self._keys.setdefault(_sanitize(k), k)
        with self._lock:
            metric = self._variants.get(names)
            if metric is None:
                metric = self._variants[names] = self._new_metric(names)
            if names and self._children >= max_label_sets():
                if not self._warned:
                    self._warned = True
                    _log.warning("obskit: metric %r reached %d label sets; further ones are dropped "
                                 "(warned once per metric)", self.exposed_name, max_label_sets())
                return None
            child = metric.labels(*(values[n] for n in names)) if names else metric
            if key is not None and len(self._cache) < 4 * max_label_sets():
                if key not in self._cache:
                    self._children += 1
                self._cache[key] = child
            return child

    def _new_metric(self, names: tuple[str, ...]) -> Any:
        doc, unit = self.documentation, self.unit
        if self.kind == "counter":
            return _PCounter(self.name, doc, names, unit=unit, registry=None)
        if self.kind == "gauge":
            return _PGauge(self.name, doc, names, unit=unit, registry=None, multiprocess_mode="livesum")
        return _PHistogram(self.name, doc, names, unit=unit, registry=None, buckets=self.buckets or ())

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        try:
            child = self._lookup(attributes)
            if child is not None:
                self.add_to(child, amount)
        except Exception as exc:
            report_internal_error(f"metric {self.exposed_name}", exc)

    def add_to(self, child: Any, amount: float) -> None:
        """``add`` into a series already looked up (``keyed``)."""
        try:
            if self.kind == "counter":
                if not amount >= 0:
                    return  # a counter never goes down; NaN would poison it for good
                child._value.inc(amount)
                if self._exemplars:
                    ex = current_exemplar(amount)
                    if ex is not None:
                        child._value.set_exemplar(ex)
            else:
                child.inc(amount)
        except Exception as exc:
            report_internal_error(f"metric {self.exposed_name}", exc)

    def set(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        try:
            child = self._lookup(attributes)
            if child is not None:
                child.set(amount)
        except Exception as exc:
            report_internal_error(f"metric {self.exposed_name}", exc)

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        try:
            child = self._lookup(attributes)
            if child is not None:
                self.record_in(child, amount)
        except Exception as exc:
            report_internal_error(f"metric {self.exposed_name}", exc)

    def record_in(self, child: Any, amount: float) -> None:
        """``record`` into a histogram series already looked up (``keyed``)."""
        try:
            if amount != amount:
                return
            bucket = child._buckets[bisect_left(child._upper_bounds, amount)]
            child._sum.inc(amount)
            bucket.inc(1)
            if self._exemplars:
                ex = current_exemplar(amount)
                if ex is not None:
                    bucket.set_exemplar(ex)
        except Exception as exc:
            report_internal_error(f"metric {self.exposed_name}", exc)

    # --- reading ----------------------------------------------------------------------------------------

    def families(self) -> list[Metric]:
        """One family holding the samples of every key set (prometheus-client's own families merged)."""
        with self._lock:
            variants = list(self._variants.values())
        merged: Metric | None = None
        for metric in variants:
            for fam in metric.collect():
                if merged is None:
                    merged = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                merged.samples.extend(fam.samples)
        return [merged] if merged is not None else []

    def zero(self) -> None:
        with self._lock:
            self._variants.clear()
            self._cache.clear()
            self._keyed.clear()
            self._children = 0
            self._warned = False
            self._exemplars = not _multiprocess.enabled()


class ObservableInstrument:
    """An observable counter, up-down counter or gauge: its callbacks run when the values are read."""

    def __init__(self, kind: str, otel_name: str, unit: str, description: str,
                 callbacks: Sequence[Callable[[CallbackOptions], Iterable[Observation]]] | None) -> None:
        self.kind = kind
        self.otel_name = otel_name
        self.unit = unit_word(unit)
        self.exposed_name = prometheus_name(otel_name, unit, kind)
        self.name = self.exposed_name[: -len("_total")] if kind == "counter" else self.exposed_name
        self.documentation = description or otel_name
        self._callbacks = list(callbacks or ())
        self._prom = _Merged(self)  # type: ignore[arg-type]

    def families(self) -> list[Metric]:
        typ = "counter" if self.kind == "counter" else "gauge"
        fam = Metric(self.name, self.documentation, typ, self.unit)
        sample_name = self.exposed_name
        for cb in self._callbacks:
            try:
                for obs in cb(CallbackOptions()):
                    labels = {_sanitize(k): _label_value(v) for k, v in (obs.attributes or {}).items()}
                    fam.add_sample(sample_name, labels, float(obs.value))
            except Exception as exc:
                report_internal_error(f"observable metric {self.exposed_name}", exc)
        return [fam] if fam.samples else []

    def zero(self) -> None:
        pass


# --- the API objects ------------------------------------------------------------------------------------

_lock = threading.RLock()  # install() holds it while set_meter_provider() calls back into _get()
_registry: dict[str, ApiInstrument | ObservableInstrument] = {}


def _taken_by_obskit(exposed: str) -> bool:
    """An obskit instrument is exposed under this name (its counters' names carry no ``_total``)."""
    return bool({exposed, exposed.removesuffix("_total")} & exposed_names())


def _get(kind: str, name: str, unit: str, description: str, **kwargs: Any) -> Any:
    exposed = prometheus_name(name, unit, kind)
    with _lock:
        inst = _registry.get(exposed)
        if inst is None and _taken_by_obskit(exposed):
            # Two stores for one series would show it twice on /metrics: the first definition wins.
            _log.warning("obskit: %r (OpenTelemetry API) is exposed as %r, the name of a metric defined with "
                         "obskit.%s(); its recordings are dropped. Rename one of them.", name, exposed, kind)
            return None
        if inst is None:
            if "callbacks" in kwargs:
                inst = ObservableInstrument(kind, name, unit, description, kwargs["callbacks"])
            else:
                inst = ApiInstrument(kind, name, unit, description, kwargs.get("buckets"))
            _registry[exposed] = inst
        elif isinstance(inst, ObservableInstrument) and "callbacks" in kwargs:
            inst._callbacks.extend(kwargs["callbacks"] or ())
        return inst


class _Counter(otel_metrics.Counter):
    def __init__(self, inst: ApiInstrument) -> None:
        self._inst = inst

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._inst.add(amount, attributes)


class _UpDownCounter(otel_metrics.UpDownCounter):
    def __init__(self, inst: ApiInstrument) -> None:
        self._inst = inst

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._inst.add(amount, attributes)


class _Histogram(otel_metrics.Histogram):
    def __init__(self, inst: ApiInstrument) -> None:
        self._inst = inst

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._inst.record(amount, attributes)


class _Gauge(otel_metrics._Gauge):
    def __init__(self, inst: ApiInstrument) -> None:
        self._inst = inst

    def set(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._inst.set(amount, attributes)


class _Observable(otel_metrics.ObservableGauge, otel_metrics.ObservableCounter,
                  otel_metrics.ObservableUpDownCounter):
    def __init__(self, inst: ObservableInstrument) -> None:
        self._inst = inst


def _buckets(unit: str, advisory: Sequence[float] | None) -> tuple[float, ...]:
    if advisory:
        return tuple(float(b) for b in advisory)
    # The semantic conventions' advice for durations in seconds (HTTP, RPC, DB): 5 ms to 10 s.
    return DEFAULT_BUCKETS if unit == "s" else OTEL_DEFAULT_BUCKETS


class ObskitMeter(otel_metrics.Meter):
    """Hands out instruments backed by prometheus-client; the same name twice gives the same series."""

    def create_counter(self, name: str, unit: str = "", description: str = "") -> otel_metrics.Counter:
        inst = _get("counter", name, unit, description)
        return otel_metrics.NoOpCounter(name) if inst is None else _Counter(inst)

    def create_up_down_counter(self, name: str, unit: str = "",
                               description: str = "") -> otel_metrics.UpDownCounter:
        inst = _get("gauge", name, unit, description)
        return otel_metrics.NoOpUpDownCounter(name) if inst is None else _UpDownCounter(inst)

    def create_histogram(self, name: str, unit: str = "", description: str = "", *,
                         explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
                         ) -> otel_metrics.Histogram:
        inst = _get("histogram", name, unit, description,
                    buckets=_buckets(unit, explicit_bucket_boundaries_advisory))
        return otel_metrics.NoOpHistogram(name) if inst is None else _Histogram(inst)

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> otel_metrics._Gauge:
        inst = _get("gauge", name, unit, description)
        return otel_metrics._NoOpGauge(name) if inst is None else _Gauge(inst)

    def create_observable_counter(self, name: str, callbacks: Any = None, unit: str = "",
                                  description: str = "") -> otel_metrics.ObservableCounter:
        inst = _get("counter", name, unit, description, callbacks=callbacks)
        return otel_metrics.NoOpObservableCounter(name) if inst is None else _Observable(inst)

    def create_observable_gauge(self, name: str, callbacks: Any = None, unit: str = "",
                                description: str = "") -> otel_metrics.ObservableGauge:
        inst = _get("gauge", name, unit, description, callbacks=callbacks)
        return otel_metrics.NoOpObservableGauge(name) if inst is None else _Observable(inst)

    def create_observable_up_down_counter(self, name: str, callbacks: Any = None, unit: str = "",
                                          description: str = "") -> otel_metrics.ObservableUpDownCounter:
        inst = _get("gauge", name, unit, description, callbacks=callbacks)
        return otel_metrics.NoOpObservableUpDownCounter(name) if inst is None else _Observable(inst)


class ObskitMeterProvider(otel_metrics.MeterProvider):
    """The global MeterProvider ``init()`` installs: every meter records into the same store."""

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Any = None) -> otel_metrics.Meter:
        return ObskitMeter(name, version, schema_url)


def api_instruments() -> list[ApiInstrument | ObservableInstrument]:
    """Every instrument created through the OpenTelemetry API so far (exposition and OTLP read them)."""
    with _lock:
        return list(_registry.values())


class ApiCollector:
    """Registered once with prometheus-client's registry: serves the API instruments in single-process mode
    (under multiple workers the values are in the shared files and the aggregate serves them)."""

    def collect(self) -> list[Metric]:
        out: list[Metric] = []
        for inst in api_instruments():
            if _multiprocess.enabled() and not isinstance(inst, ObservableInstrument):
                continue
            try:
                out.extend(inst.families())
            except Exception as exc:
                report_internal_error("metrics collect", exc)
        return out


_installed: dict[str, Any] = {}


def install() -> bool:
    """Make obskit's MeterProvider the global one (once per process); False if another one is installed."""
    with _lock:
        if "provider" in _installed:
            return True
        current = otel_metrics.get_meter_provider()
        if not isinstance(current, otel_metrics._internal._ProxyMeterProvider):
            _log.warning("obskit: a MeterProvider is already installed (%s); metrics recorded through the "
                         "OpenTelemetry API go there, not to /metrics", type(current).__name__)
            return False
        provider = ObskitMeterProvider()
        otel_metrics.set_meter_provider(provider)
        _installed["provider"] = provider
    add_collector(ApiCollector())
    add_source(api_instruments)
    return True


def reset() -> None:
    """Zero every API instrument's values (definitions and the installed provider stay, like obskit's)."""
    for inst in api_instruments():
        inst.zero()
