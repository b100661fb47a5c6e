"""Metrics: one API recording into prometheus-client, exposed on ``/metrics`` and pushed over OTLP.

Recording goes only into prometheus-client (about ten times cheaper per call than the OTel SDK); the OTLP
push reads the same objects, so both outputs agree by construction. A call caches the prometheus child
per label tuple and checks labels only on a cache miss, which keeps the hot path a dict lookup. An
observation made inside a sampled span carries its trace and span id as an OpenMetrics exemplar: the
link from a latency spike in Grafana to the trace in Jaeger.

A metric call never raises into the application, except that wrong labels raise ``MetricError`` (a
``ValueError``) in strict mode, because there the caller asked for it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from prometheus_client import Counter as _PCounter
from prometheus_client import Gauge as _PGauge
from prometheus_client import Histogram as _PHistogram

from .._errors import MetricError
from .._runtime import _redact
from .._runtime._safe import SafeLogger, utf8_safe
from . import _multiprocess
from ._exemplar import current_exemplar

__all__ = [
    "DEFAULT_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "counter",
    "gauge",
    "histogram",
    "set_strict_labels",
]

_log = SafeLogger("obskit.metrics")  # a raising handler on the root logger must not make a metric call raise
F = TypeVar("F", bound=Callable[..., Any])

#: Latency buckets in seconds: 5 ms to 10 s, dense where web requests live.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                                      7.5, 10.0)
OVERFLOW_VALUE = "_other"
_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MS_UNITS = ("milliseconds", "ms")

_lock = threading.RLock()
_instruments: dict[str, _Instrument] = {}
# Bumped whenever every instrument's children are discarded (test resets): code that caches children
# (the resilience hot path) compares it to know its children are no longer the registry's.
generation = 0
_settings: dict[str, Any] = {"strict": False, "max_label_sets": None}


def set_strict_labels(enabled: bool) -> None:
    """Raise ``MetricError`` on wrong labels instead of logging once and dropping (tests, strict mode)."""
    _settings["strict"] = bool(enabled)


def _max_label_sets() -> int:
    value = _settings["max_label_sets"]
    if value is None:
        from .._config import resolve

        value = _settings["max_label_sets"] = resolve({}).metrics_max_label_sets
    return int(value)


def _suggest(name: str) -> str:
    fixed = re.sub(r"[^a-zA-Z0-9_]", "_", name.strip())
    if not fixed or fixed[0].isdigit():
        fixed = "_" + fixed
    return fixed


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        hint = f" such as {_suggest(name)!r}" if isinstance(name, str) and name.strip() else ""
        raise MetricError(f"invalid {what} {name!r}: use only letters, digits and underscores, not starting "
                          f"with a digit{hint}")
    return name


def _check_labels(name: str, kind: str, labels: Any) -> tuple[str, ...]:
    if isinstance(labels, str):
        labels = [labels]
    out = tuple(labels or ())
    for label in out:
        _check_name(f"label name for metric {name!r}:", label)
        if label.startswith("__"):
            raise MetricError(f"label {label!r} of metric {name!r}: names starting with '__' are reserved "
                              "by Prometheus; rename it")
        if kind == "histogram" and label == "le":
            raise MetricError(f"label 'le' of histogram {name!r} is reserved for bucket bounds; rename it")
    if len(set(out)) != len(out):
        raise MetricError(f"metric {name!r} declares a label twice: {list(out)}")
    return out


class _Instrument:
    """What the three kinds share: identity, the label cache, the cardinality guard, error reporting."""

    kind = ""
    __slots__ = (
        "__weakref__",
        "_cache",
        "_children",
        "_exemplars",
        "_label_set",
        "_lock",
        "_overflow",
        "_prom",
        "_warned",
        "documentation",
        "exposed_name",
        "labelnames",
        "name",
        "unit",
    )

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], unit: str,
                 prom: Any) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.unit = unit
        self.exposed_name: str = prom._name
        self._prom = prom
        self._label_set = frozenset(labelnames)
        self._lock = threading.Lock()
        # label items as passed -> prometheus child; a cache only (bounded), may hold several keys per child
        self._cache: dict[Any, Any] = {}
        self._children: dict[tuple[str, ...], Any] = {}  # canonical label values -> child
        self._overflow: Any = None
        self._warned: set[str] = set()
        self._exemplars = not _multiprocess.enabled()
        if not labelnames:
            self._cache[()] = prom
            self._children[()] = prom

    def _child(self, labels: dict[str, Any]) -> Any:
        """Cache miss: check the labels, apply the cardinality guard, return the child or None (dropped)."""
        if labels.keys() != self._label_set:
            return self._label_error(labels)
        values = _label_values(self.labelnames, labels)
        limit = _max_label_sets()
        with self._lock:
            child = self._children.get(values)
            if child is None and len(self._children) >= limit:
                if self._overflow is None:
                    self._overflow = self._prom.labels(*([OVERFLOW_VALUE] * len(self.labelnames)))
                child = self._overflow
            else:
                if child is None:
                    child = self._children[values] = self._prom.labels(*values)
                if len(self._cache) >= 4 * limit:
                    self._cache.clear()
                # Only str values are cached as given: 1, 1.0 and True are equal dict keys but print as
                # different label values, so caching them would send one to another's series.
                if all(type(v) is str for v in labels.values()):
                    self._cache[tuple(labels.items())] = child
                return child
        self._overflowed(limit)  # outside our lock: it takes the definitions lock (no lock-order inversion)
        return child

    def _overflowed(self, limit: int) -> None:
        if "overflow" not in self._warned:
            self._warned.add("overflow")
            _log.warning("obskit: metric %r reached %d label sets; further label sets are counted in one "
                         "series with every label set to %r (warned once per metric). Use fewer distinct "
                         "label values, or raise OBSKIT_METRICS_MAX_LABEL_SETS.", self.name, limit,
                         OVERFLOW_VALUE)
        overflow_counter = _overflow_counter()
        if self is not overflow_counter:
            overflow_counter.inc(metric=self.name)

    def _label_error(self, labels: dict[str, Any]) -> None:
        expected = list(self.labelnames)
        msg = (f"metric {self.name!r} expects labels {expected}, got {sorted(labels)}"
               + ("" if expected else " (it was declared without labels)"))
        if _settings["strict"]:
            raise MetricError(msg)
        if "labels" not in self._warned:
            self._warned.add("labels")
            _log.error("obskit: %s; the observation was dropped (logged once per metric).", msg)
        return None

    def _failed(self, exc: BaseException) -> None:
        if _settings["strict"] and isinstance(exc, (MetricError, ValueError)):
            raise exc
        if "call" not in self._warned:
            self._warned.add("call")
            _log.error("obskit: metric %r: %s; the observation was dropped (logged once per metric).",
                       self.name, exc)

    def _lookup(self, labels: dict[str, Any]) -> Any:
        try:
            return self._cache[tuple(labels.items())]
        except (KeyError, TypeError):
            return self._child(labels)

    def _same(self, kind: str, labelnames: tuple[str, ...], unit: str, extra: Any) -> None:
        problems = []
        if kind != self.kind:
            problems.append(f"it is a {self.kind}, not a {kind}")
        if labelnames != self.labelnames:
            problems.append(f"its labels are {list(self.labelnames)}, not {list(labelnames)}")
        if unit != self.unit:
            problems.append(f"its unit is {self.unit!r}, not {unit!r}")
        if extra is not None and extra != self._extra():
            problems.append(f"its buckets are {list(self._extra())}, not {list(extra)}")
        if problems:
            raise MetricError(f"metric {self.name!r} already exists and " + "; ".join(problems)
                              + ". Use one definition (or a different name).")

    def _extra(self) -> Any:
        return None

    def __repr__(self) -> str:
        return f"<obskit {self.kind} {self.exposed_name} labels={list(self.labelnames)}>"


class Counter(_Instrument):
    """A value that only goes up (requests, errors). Exposed as ``<name>_total``."""

    kind = "counter"
    __slots__ = ()

    def inc(self, amount: float = 1, /, **labels: Any) -> None:
        """Add ``amount`` (>= 0) to the series selected by ``labels``."""
        try:
            child = self._lookup(labels)
            if child is None:
                return
            if not amount >= 0:  # also rejects NaN, which would turn the counter into NaN for good
                raise MetricError(f"counter {self.name!r} can only increase by a number >= 0; got {amount!r} "
                                  "(use a gauge for values that go down)")
            child._value.inc(amount)
            if self._exemplars:
                ex = current_exemplar(amount)
                if ex is not None:
                    child._value.set_exemplar(ex)
        except Exception as exc:
            self._failed(exc)


class Gauge(_Instrument):
    """A value that goes up and down (queue depth, in-flight requests)."""

    kind = "gauge"
    __slots__ = ()

    def set(self, value: float, /, **labels: Any) -> None:
        """Set the series selected by ``labels`` to ``value``."""
        try:
            child = self._lookup(labels)
            if child is not None:
                child.set(value)
        except Exception as exc:
            self._failed(exc)

    def inc(self, amount: float = 1, /, **labels: Any) -> None:
        """Add ``amount`` to the series selected by ``labels``."""
        try:
            child = self._lookup(labels)
            if child is not None:
                child.inc(amount)
        except Exception as exc:
            self._failed(exc)

    def dec(self, amount: float = 1, /, **labels: Any) -> None:
        """Subtract ``amount`` from the series selected by ``labels``."""
        try:
            negative = -amount
        except Exception as exc:
            self._failed(exc)
            return
        self.inc(negative, **labels)


class Histogram(_Instrument):
    """A distribution (latencies, sizes): bucket counts, sum and count, with exemplars per bucket."""

    kind = "histogram"
    __slots__ = ("_bounds", "_scale")

    def __init__(self, *args: Any, bounds: tuple[float, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bounds = bounds
        self._scale = 1000.0 if self.unit in _MS_UNITS else 1.0

    def _extra(self) -> Any:
        return self._bounds

    def observe(self, value: float, /, **labels: Any) -> None:
        """Record one observation in the series selected by ``labels``."""
        try:
            child = self._lookup(labels)
            if child is None:
                return
            if value != value:
                raise MetricError(f"histogram {self.name!r} got NaN")
            # prometheus-client's own observe(), minus a linear bucket scan and per-call exemplar checks
            bucket = child._buckets[bisect_left(child._upper_bounds, value)]
            child._sum.inc(value)
            bucket.inc(1)
            if self._exemplars:
                ex = current_exemplar(value)
                if ex is not None:
                    bucket.set_exemplar(ex)
        except Exception as exc:
            self._failed(exc)

    def time(self, /, **labels: Any) -> _Timer:
        """Observe the duration of a ``with`` block or of each call of a decorated function.

        Durations are in seconds, or in milliseconds when the histogram's unit is milliseconds.
        """
        return _Timer(self, labels)


class _Timer:
    """Context manager and decorator (sync and async functions) timing into a histogram."""

    __slots__ = ("_hist", "_labels", "_starts")

    def __init__(self, hist: Histogram, labels: dict[str, Any]) -> None:
        self._hist = hist
        self._labels = labels
        # Start times per (thread, task), each a stack: one timer object may be shared by concurrent tasks
        # and threads, and re-entered, without one exit taking another's start.
        self._starts: dict[tuple[int, int], list[float]] = {}

    @staticmethod
    def _who() -> tuple[int, int]:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop in this thread
            task = None
        return threading.get_ident(), id(task)

    def __enter__(self) -> _Timer:
        self._starts.setdefault(self._who(), []).append(time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        who = self._who()
        stack = self._starts.get(who)
        start = stack.pop() if stack else time.perf_counter()
        if not stack:
            self._starts.pop(who, None)
        self._hist.observe((time.perf_counter() - start) * self._hist._scale, **self._labels)

    def __call__(self, func: F) -> F:
        hist, labels = self._hist, self._labels
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    hist.observe((time.perf_counter() - start) * hist._scale, **labels)
            return cast(F, awrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                hist.observe((time.perf_counter() - start) * hist._scale, **labels)
        return cast(F, wrapper)


def _label_values(names: tuple[str, ...], labels: dict[str, Any]) -> tuple[str, ...]:
    """Label values as exposed (once per new label set, on a cache miss): a label named like a secret has
    its value redacted, every value is scrubbed like any text obskit emits, and undecodable text (lone
    surrogates) is repaired, since one such value would fail every later scrape and OTLP push."""
    red = _redact.current()
    return tuple(_redact.REDACTED if red.is_sensitive(n) else utf8_safe(red.scrub_text(str(labels[n])))
                 for n in names)


def _define(kind: str, name: str, documentation: str, labels: Any, unit: str,
            buckets: Sequence[float] | None = None) -> Any:
    _check_name("metric name", name)
    if unit:
        _check_name("unit", unit)
    base = name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name
    labelnames = _check_labels(base, kind, labels)
    bounds: tuple[float, ...] | None = None
    if kind == "histogram":
        scale = 1000.0 if unit in _MS_UNITS else 1.0
        raw = [b * scale for b in DEFAULT_BUCKETS] if buckets is None else list(buckets)
        try:
            bounds = tuple(float(b) for b in raw if float(b) != float("inf"))
        except (TypeError, ValueError):
            raise MetricError(f"histogram {base!r}: buckets must be numbers") from None
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise MetricError(f"histogram {base!r}: buckets must be a non-empty, strictly increasing list "
                              f"of numbers, got {raw!r}")
    with _lock:
        existing = _instruments.get(base)
        if existing is not None:
            existing._same(kind, labelnames, unit, bounds)
            return existing
        _multiprocess.ensure_prepared()  # decide the mode before the first metric value is constructed
        doc = utf8_safe(documentation or base.replace("_", " "))
        try:
            if kind == "counter":
                inst: _Instrument = Counter(base, doc, labelnames, unit, _PCounter(base, doc, labelnames,
                                                                                   unit=unit))
            elif kind == "gauge":
                inst = Gauge(base, doc, labelnames, unit,
                             _PGauge(base, doc, labelnames, unit=unit, multiprocess_mode="livesum"))
            else:
                assert bounds is not None
                inst = Histogram(base, doc, labelnames, unit,
                                 _PHistogram(base, doc, labelnames, unit=unit, buckets=bounds), bounds=bounds)
        except ValueError as exc:  # e.g. the name is taken by a metric registered with prometheus-client
            raise MetricError(f"cannot create metric {base!r}: {exc}") from None
        _instruments[base] = inst
        return inst


def counter(name: str, documentation: str = "", *, labels: Iterable[str] = (), unit: str = "") -> Counter:
    """A counter exposed as ``<name>[_<unit>]_total``. Same definition twice returns the same object."""
    return cast(Counter, _define("counter", name, documentation, labels, unit))


def histogram(name: str, documentation: str = "", *, labels: Iterable[str] = (), unit: str = "",
              buckets: Sequence[float] | None = None) -> Histogram:
    """A histogram; ``buckets=None`` gives latency buckets from 5 ms to 10 s (scaled for milliseconds)."""
    return cast(Histogram, _define("histogram", name, documentation, labels, unit, buckets))


def gauge(name: str, documentation: str = "", *, labels: Iterable[str] = (), unit: str = "") -> Gauge:
    """A gauge. Under multiple workers the exposed value is the sum over live workers."""
    return cast(Gauge, _define("gauge", name, documentation, labels, unit))


# Other stores of metric values shaped like instruments (the OpenTelemetry API's), read with ours.
_sources: list[Callable[[], Iterable[Any]]] = []


def add_source(source: Callable[[], Iterable[Any]]) -> None:
    """Have :func:`instruments` also return what ``source()`` returns (once per source)."""
    with _lock:
        if source not in _sources:
            _sources.append(source)


def instruments() -> list[Any]:
    """Every instrument defined so far, obskit's and those of added sources (the OTLP push reads them)."""
    with _lock:
        own: list[Any] = list(_instruments.values())
        sources = list(_sources)
    for source in sources:
        own.extend(source())
    return own


def exposed_names() -> set[str]:
    """The names obskit's own instruments are exposed under (counters without ``_total``)."""
    with _lock:
        return {i.exposed_name for i in _instruments.values()}


def max_label_sets() -> int:
    """Label sets one metric may hold (``metrics_max_label_sets``)."""
    return _max_label_sets()


_overflow_inst: list[Counter] = []


def _overflow_counter() -> Counter:
    """``obskit_metric_overflow_total{metric}``, defined once (definitions outlive test resets)."""
    if not _overflow_inst:
        _overflow_inst.append(counter("obskit_metric_overflow", "Observations folded into the _other series "
                                      "because a metric reached its label-set limit", labels=["metric"]))
    return _overflow_inst[0]


def _zero_all() -> None:
    """Give every instrument fresh values built by the current value class; definitions stay."""
    global generation
    with _lock:
        generation += 1
        for inst in _instruments.values():
            with inst._lock:
                inst._cache.clear()
                inst._children.clear()
                inst._overflow = None
                inst._warned.clear()
                inst._exemplars = not _multiprocess.enabled()
                if inst.labelnames:
                    inst._prom.clear()
                else:
                    inst._prom._metric_init()
                    inst._cache[()] = inst._children[()] = inst._prom


def reset() -> None:
    """Zero every instrument and forget settings and warnings.

    Definitions stay registered, so instruments an application created at import keep working (and stay
    visible) across tests.
    """
    _zero_all()
    _settings.update(strict=False, max_label_sets=None)
    from . import _exemplar as _metrics_exemplar

    _metrics_exemplar.reset()
