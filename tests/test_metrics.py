"""The metrics API against the real prometheus-client registry: definitions, names, labels, guards."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from prometheus_client import REGISTRY

from obskit import MetricError
from obskit._metrics import _instruments as _metrics
from obskit._metrics import _self
from obskit._metrics._exposition import render
from obskit._metrics._instruments import counter, gauge, histogram, set_strict_labels
from obskit._runtime import _health as _self_telemetry


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    _metrics.reset()
    yield
    _metrics.reset()


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_issue_example_counter_histogram_gauge() -> None:
    """The issue's example records what it says, under Prometheus names."""
    orders = counter("orders_processed", "Orders processed", labels=["status"])
    orders.inc(status="ok")
    orders.inc(3, status="failed")
    latency = histogram("payment_latency", "Payment call latency", unit="seconds", labels=["provider"],
                        buckets=None)
    latency.observe(0.25, provider="acme")
    with latency.time(provider="acme"):
        pass
    depth = gauge("queue_depth", "Items waiting", labels=["queue"])
    depth.set(3, queue="payments")
    depth.inc(queue="payments")
    depth.dec(queue="payments")
    assert value("orders_processed_total", status="ok") == 1
    assert value("orders_processed_total", status="failed") == 3
    assert value("payment_latency_seconds_count", provider="acme") == 2
    assert value("payment_latency_seconds_bucket", provider="acme", le="0.25") == 2
    assert value("queue_depth", queue="payments") == 3


def test_same_definition_returns_same_instrument() -> None:
    """Defining a metric twice returns the first object instead of a duplicated-timeseries error."""
    a = counter("t_same", "x", labels=["k"])
    assert counter("t_same", "x", labels=["k"]) is a
    assert counter("t_same_total", labels=["k"]) is a


@pytest.mark.parametrize(("make", "message"), [
    (lambda: gauge("t_clash", labels=["k"]), "it is a counter, not a gauge"),
    (lambda: counter("t_clash", labels=["other"]), "its labels are ['k']"),
    (lambda: counter("t_clash", labels=["k"], unit="bytes"), "its unit is ''"),
])
def test_conflicting_definition_is_a_clear_error(make: object, message: str) -> None:
    """A name reused with another type, label set or unit fails at creation, saying what differs."""
    counter("t_clash", labels=["k"])
    with pytest.raises(MetricError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()  # type: ignore[operator]


def test_histogram_bucket_conflict_and_bad_buckets() -> None:
    """Different buckets for one histogram, and unsorted buckets, are definition errors."""
    histogram("t_hb", buckets=[1, 2])
    with pytest.raises(MetricError, match="buckets"):
        histogram("t_hb", buckets=[1, 3])
    with pytest.raises(MetricError, match="strictly increasing"):
        histogram("t_hb2", buckets=[2, 1])


def test_names_follow_prometheus_conventions() -> None:
    """Counters end in _total; a unit becomes a suffix unless the name already has it."""
    counter("t_sent", unit="bytes").inc(5)
    counter("t_size_bytes", unit="bytes").inc(2)
    histogram("t_wait_seconds", unit="seconds").observe(1)
    counter("t_jobs").inc()
    text = render()[0].decode()
    assert "t_sent_bytes_total 5.0" in text
    assert "t_size_bytes_total 2.0" in text and "t_size_bytes_bytes" not in text
    assert "t_wait_seconds_count 1.0" in text
    assert "t_jobs_total 1.0" in text


@pytest.mark.parametrize("bad", ["http-requests", "1st_metric", "", "a b", "ünïcode"])
def test_invalid_names_rejected_with_a_fix(bad: str) -> None:
    """Invalid metric names fail at creation and the message says what is allowed."""
    with pytest.raises(MetricError, match="letters, digits and underscores"):
        counter(bad)


def test_invalid_name_message_suggests_a_name() -> None:
    """The error for a dashed name proposes the underscored one."""
    with pytest.raises(MetricError, match="'http_requests'"):
        counter("http-requests")


@pytest.mark.parametrize("labels", [["bad-label"], ["__reserved"], ["a", "a"]])
def test_invalid_label_names_rejected(labels: list[str]) -> None:
    """Label names that Prometheus would reject fail at creation."""
    with pytest.raises(MetricError):
        counter("t_badlabels", labels=labels)


def test_le_label_reserved_on_histograms() -> None:
    """``le`` is the bucket label, so a histogram cannot declare it."""
    with pytest.raises(MetricError, match="'le'"):
        histogram("t_le", labels=["le"])


def test_wrong_labels_strict_raise_valueerror_naming_expected() -> None:
    """In strict mode a wrong or missing label raises a ValueError listing the expected labels."""
    c = counter("t_strict", labels=["status", "region"])
    set_strict_labels(True)
    with pytest.raises(ValueError, match=r"expects labels \['status', 'region'\]"):
        c.inc(status="ok")
    with pytest.raises(MetricError, match="expects labels"):
        c.inc(status="ok", region="eu", extra="x")
    h = histogram("t_strict_h")
    with pytest.raises(MetricError, match="declared without labels"):
        h.observe(1, provider="x")


def test_wrong_labels_lenient_logs_once_and_drops(caplog: pytest.LogCaptureFixture) -> None:
    """Outside strict mode a wrong label logs one error per metric and drops the observation."""
    c = counter("t_lenient", labels=["status"])
    with caplog.at_level(logging.ERROR, logger="obskit.metrics"):
        c.inc(stat="ok")
        c.inc(stat="ok")
        c.inc()
    errors = [r for r in caplog.records if "t_lenient" in r.getMessage()]
    assert len(errors) == 1 and "['status']" in errors[0].getMessage()
    assert value("t_lenient_total", stat="ok") is None
    c.inc(status="ok")
    assert value("t_lenient_total", status="ok") == 1


def test_metric_calls_never_raise_outside_strict() -> None:
    """Negative counter increments and NaN observations are dropped, not raised."""
    c = counter("t_noraise")
    c.inc(-1)
    histogram("t_noraise_h").observe(float("nan"))
    assert value("t_noraise_total") == 0


def test_negative_counter_raises_in_strict() -> None:
    """In strict mode a negative increment is an error."""
    set_strict_labels(True)
    with pytest.raises(ValueError, match="only increase"):
        counter("t_neg").inc(-1)


def test_label_values_are_stringified_and_order_free() -> None:
    """Label order at the call does not matter and non-string values are converted."""
    c = counter("t_order", labels=["a", "b"])
    c.inc(a=1, b="x")
    c.inc(b="x", a="1")
    c.inc(a=["unhashable"], b="x")
    assert value("t_order_total", a="1", b="x") == 2
    assert value("t_order_total", a="['unhashable']", b="x") == 1


def test_timer_as_decorator_sync_and_async() -> None:
    """``time()`` works as a decorator on plain and async functions."""
    h = histogram("t_timer", labels=["fn"])

    @h.time(fn="sync")
    def work() -> int:
        return 1

    @h.time(fn="async")
    async def awork() -> int:
        return 2

    assert work() == 1 and asyncio.run(awork()) == 2
    assert value("t_timer_count", fn="sync") == 1
    assert value("t_timer_count", fn="async") == 1


def test_millisecond_histogram_scales_buckets_and_timer() -> None:
    """With unit milliseconds the default buckets and ``time()`` are in milliseconds."""
    h = histogram("t_ms", unit="milliseconds")
    with h.time():
        pass
    assert value("t_ms_milliseconds_bucket", le="5.0") == 1
    assert value("t_ms_milliseconds_bucket", le="10000.0") == 1


def test_cardinality_overflow_folds_into_other() -> None:
    """Past the limit new label sets go to one `_other` series, with a counter and one warning."""
    _metrics._settings["max_label_sets"] = 3
    c = counter("t_card", labels=["user"])
    for i in range(10):
        c.inc(user=f"u{i}")
    assert value("t_card_total", user="u2") == 1
    assert value("t_card_total", user="u3") is None
    assert value("t_card_total", user="_other") == 7
    assert value("obskit_metric_overflow_total", metric="t_card") == 7
    c.inc(user="u0")
    assert value("t_card_total", user="u0") == 2


def test_cardinality_warning_once(caplog: pytest.LogCaptureFixture) -> None:
    """The overflow warning is logged once per metric."""
    _metrics._settings["max_label_sets"] = 1
    g = gauge("t_card_warn", labels=["k"])
    with caplog.at_level(logging.WARNING, logger="obskit.metrics"):
        for i in range(5):
            g.set(i, k=str(i))
    assert len([r for r in caplog.records if "t_card_warn" in r.getMessage()]) == 1


def test_memory_bounded_under_100k_label_values() -> None:
    """100k distinct label values keep the default 2,000 series and bounded memory."""
    c = counter("t_mem", labels=["id"])
    for i in range(2000):
        c.inc(id=str(i))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(2000, 102_000):
        c.inc(id=str(i))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert len(c._children) == 2000
    assert value("t_mem_total", id="_other") == 100_000
    assert grown < 2_000_000, grown


def test_exemplar_from_sampled_span_in_openmetrics() -> None:
    """Inside a sampled span, counter and histogram samples carry trace_id and span_id exemplars."""
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("t")
    c = counter("t_ex", labels=["k"])
    h = histogram("t_ex_h", unit="seconds")
    with tracer.start_as_current_span("s") as span:
        c.inc(k="v")
        h.observe(0.3)
        ctx = span.get_span_context()
    trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    om = render("application/openmetrics-text; version=1.0.0")[0].decode()
    expected = f'# {{span_id="{span_id}",trace_id="{trace_id}"}}'
    assert f't_ex_total{{k="v"}} 1.0 {expected} 1.0' in om
    assert f't_ex_h_seconds_bucket{{le="0.5"}} 1.0 {expected} 0.3' in om
    assert "trace_id" not in render("text/plain")[0].decode()


def test_no_exemplar_outside_span_or_unsampled() -> None:
    """No span, or a span that is not sampled, gives no exemplar."""
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("t")
    c = counter("t_noex")
    c.inc()
    with tracer.start_as_current_span("s"):
        c.inc()
    assert "trace_id" not in render("application/openmetrics-text")[0].decode()


def test_exemplar_follows_the_current_span() -> None:
    """The cached span ids change when the current span changes."""
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("t")
    c = counter("t_exfollow")
    with tracer.start_as_current_span("a"):
        c.inc()
    with tracer.start_as_current_span("b") as b:
        c.inc()
        sid = format(b.get_span_context().span_id, "016x")
    assert f'span_id="{sid}"' in render("application/openmetrics-text")[0].decode()


def test_self_telemetry_counters() -> None:
    """Drops and export failures are counted per signal, with zero series from the start."""
    _self.install()
    assert value("obskit_telemetry_dropped_total", signal="metrics") == 0
    # An export an earlier test left running may still fail and count its spans: compare with before.
    before = value("obskit_telemetry_dropped_total", signal="traces") or 0
    _self_telemetry.record_dropped("traces", 5)
    _self_telemetry.record_export_failure("metrics")
    assert value("obskit_telemetry_dropped_total", signal="traces") == before + 5
    assert value("obskit_export_failures_total", signal="metrics") == 1


def test_reset_keeps_module_level_instruments_working() -> None:
    """After a test reset, an instrument created earlier records again from zero and stays visible."""
    c = counter("t_reset", labels=["k"])
    c.inc(k="a")
    plain = counter("t_reset_plain")
    plain.inc(2)
    _metrics.reset()
    assert value("t_reset_total", k="a") is None
    c.inc(k="a")
    plain.inc()
    assert value("t_reset_total", k="a") == 1
    assert value("t_reset_plain_total") == 1


def test_metrics_work_without_init() -> None:
    """Recording needs no init(): values show in the exposition straight away."""
    counter("t_noinit").inc(4)
    assert "t_noinit_total 4.0" in render()[0].decode()


def test_concurrent_calls_are_exact_and_respect_the_limit() -> None:
    """Threads incrementing shared and new label sets lose no update and never pass the limit."""
    import threading

    _metrics._settings["max_label_sets"] = 50
    c = counter("t_threads", labels=["k"])

    def work(t: int) -> None:
        for i in range(2000):
            c.inc(k="shared")
            c.inc(k=f"{t}-{i % 40}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert value("t_threads_total", k="shared") == 16_000
    assert len(c._children) == 50
    total = sum(s.value for m in c._prom.collect() for s in m.samples if s.name == "t_threads_total")
    assert total == 32_000
