"""The OpenTelemetry metrics API lands in obskit's metrics: /metrics, exemplars, OTLP, workers, names."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import metrics
from otlp_receiver import OTLPReceiver

import obskit
from obskit._metrics import _otel_api
from obskit._metrics._exposition import render
from obskit._metrics._otel_api import prometheus_name


@pytest.fixture
def meter(fresh: None) -> Iterator[metrics.Meter]:
    """obskit initialised (no export), and a meter from the global OpenTelemetry API."""
    obskit.init(service_name="api", log_stream=io.StringIO(), integrations="none", env={})
    yield metrics.get_meter("test.instrumentation")


def _text(openmetrics: bool = False) -> str:
    return render("application/openmetrics-text; version=1.0.0" if openmetrics else "")[0].decode()


@pytest.mark.parametrize(("name", "unit", "kind", "expected"), [
    ("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"),
    ("http.server.active_requests", "{request}", "gauge", "http_server_active_requests"),
    ("http.client.request.body.size", "By", "histogram", "http_client_request_body_size_bytes"),
    ("db.client.operation.duration", "ms", "histogram", "db_client_operation_duration_milliseconds"),
    ("messaging.client.sent.messages", "{message}", "counter", "messaging_client_sent_messages_total"),
    ("system.network.io", "By/s", "gauge", "system_network_io_bytes_per_second"),
    ("jobs_seconds", "s", "counter", "jobs_seconds_total"),
    ("cpu.utilization", "1", "gauge", "cpu_utilization"),
])
def test_prometheus_names(name: str, unit: str, kind: str, expected: str) -> None:
    """Dots to underscores, the unit as a word suffix (once), ``_total`` on counters."""
    assert prometheus_name(name, unit, kind) == expected


def test_api_histogram_on_metrics_with_exemplar(meter: metrics.Meter) -> None:
    """A histogram recorded through the API is on /metrics by OTel→Prometheus names, with an exemplar."""
    hist = meter.create_histogram("http.server.request.duration", unit="s")
    with obskit.span("GET /items/{item_id}") as sp:
        hist.record(0.02, {"http.request.method": "GET", "http.route": "/items/{item_id}",
                           "http.response.status_code": 200})
    hist.record(0.3, {"http.request.method": "GET", "http.response.status_code": 500, "error.type": "500"})
    text = _text(openmetrics=True)
    trace_id = format(sp.get_span_context().trace_id, "032x")
    line = next(ln for ln in text.splitlines() if ln.startswith("http_server_request_duration_seconds_bucket")
                and 'le="0.025"' in ln and 'http_route="/items/{item_id}"' in ln)
    assert line.split(" ")[1] == "1.0" and f'trace_id="{trace_id}"' in line
    assert 'error_type="500"' in text
    # HTTP buckets by the semantic conventions' advice: 5 ms to 10 s
    assert 'le="0.005"' in text and 'le="10.0"' in text


def test_every_series_once(meter: metrics.Meter) -> None:
    """Each family appears once on /metrics, whatever attribute keys its recordings carried."""
    c = meter.create_counter("orders.placed", unit="{order}")
    c.add(1, {"region": "eu"})
    c.add(2, {"region": "us", "tier": "gold"})
    meter.create_counter("orders.placed", unit="{order}").add(3, {"region": "eu"})  # same instrument
    meter.create_up_down_counter("api.queue.depth").add(5)
    meter.create_gauge("temperature", unit="Cel").set(21.5, {"room": "a"})
    meter.create_observable_gauge("pool.size", [lambda _o: [metrics.Observation(4, {"pool": "db"})]])
    text = _text()
    types = re.findall(r"^# TYPE (\S+) ", text, re.M)
    assert len(types) == len(set(types)), [t for t in types if types.count(t) > 1]
    assert 'orders_placed_total{region="eu"} 4.0' in text
    assert 'orders_placed_total{region="us",tier="gold"} 2.0' in text
    assert "api_queue_depth 5.0" in text and 'temperature_celsius{room="a"} 21.5' in text
    assert 'pool_size{pool="db"} 4.0' in text


def test_api_metrics_pushed_over_otlp_once(receiver: OTLPReceiver) -> None:
    """The OTLP push carries an API instrument once, under its OpenTelemetry name, unit and attribute keys."""
    from conftest import protocol_of

    obskit.testing.reset()
    try:
        tel = obskit.init(service_name="api", otlp_endpoint=receiver.endpoint,
                          otlp_protocol=protocol_of(receiver), log_stream=io.StringIO(), integrations="none",
                          env={})
        metrics.get_meter("t").create_histogram("http.client.request.duration", unit="s").record(
            0.1, {"http.request.method": "POST", "server.address": "pay"})
        assert tel.force_flush(10)
        found = [m for req in receiver.metrics_requests() for rm in req.resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics if m.name == "http.client.request.duration"]
        assert found, [m.name for req in receiver.metrics_requests() for rm in req.resource_metrics
                       for sm in rm.scope_metrics for m in sm.metrics]
        latest = found[-1]
        assert latest.unit == "s" and len(latest.histogram.data_points) == 1
        point = latest.histogram.data_points[0]
        assert point.count == 1
        assert {a.key for a in point.attributes} == {"http.request.method", "server.address"}
        names = [m.name for m in found[-1:]]
        assert names.count("http.client.request.duration") == 1
    finally:
        obskit.testing.reset()


WORKER = textwrap.dedent("""
    import sys, io, obskit
    from opentelemetry import metrics
    obskit.init(service_name="w", log_stream=io.StringIO(), integrations="none")
    h = metrics.get_meter("w").create_histogram("http.server.request.duration", unit="s")
    for _ in range(int(sys.argv[1])):
        h.record(0.01, {"http.route": "/a", "http.request.method": "GET"})
    metrics.get_meter("w").create_counter("jobs.done").add(int(sys.argv[1]))
    print("done", flush=True)
""")


def test_api_metrics_aggregate_across_workers(tmp_path: Path) -> None:
    """Workers record through the API; the multiprocess /metrics shows their sum, each series once."""
    env = {**os.environ, "OBSKIT_MULTIPROC_DIR": str(tmp_path / "mp")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # An owner that stays alive keeps the run's files (a new run would wipe them).
    owner = subprocess.Popen([sys.executable, "-c", WORKER + "sys.stdin.read()\n", "3"], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "done"
        subprocess.run([sys.executable, "-c", WORKER, "4"], env=env, check=True, timeout=60,
                       capture_output=True)
        # The scraping process records too (as a worker serving /metrics does): counted once, not twice.
        serve = "from obskit._metrics._exposition import render\nsys.stdout.write(render()[0].decode())\n"
        scrape = subprocess.run([sys.executable, "-c", WORKER + serve, "1"],
                                env=env, check=True, timeout=60, capture_output=True, text=True).stdout
    finally:
        assert owner.stdin is not None
        owner.stdin.close()
        owner.wait(20)
    count = next(ln for ln in scrape.splitlines()
                 if ln.startswith("http_server_request_duration_seconds_count") and 'http_route="/a"' in ln)
    assert float(count.rsplit(" ", 1)[1]) == 8.0, count
    total = next(ln for ln in scrape.splitlines() if ln.startswith("jobs_done_total"))
    assert float(total.rsplit(" ", 1)[1]) == 8.0
    assert scrape.count("# TYPE http_server_request_duration_seconds histogram") == 1


def test_init_opts_into_stable_http_semconv(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """init() sets OTEL_SEMCONV_STABILITY_OPT_IN=http, unless the user set it."""
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    obskit.init(service_name="s", log_stream=io.StringIO(), integrations="none", env={})
    assert os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] == "http,database/dup"
    obskit.testing.reset()
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup")
    obskit.init(service_name="s", log_stream=io.StringIO(), integrations="none", env={})
    assert os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] == "http/dup"


def test_a_raising_callback_costs_only_itself(meter: metrics.Meter) -> None:
    """An observable callback that raises never breaks the scrape; the other series still show."""
    def broken(_options: metrics.CallbackOptions) -> list[metrics.Observation]:
        raise RuntimeError("callback failed")

    meter.create_observable_gauge("broken.gauge", [broken])
    meter.create_counter("still.here").add(1)
    assert "still_here_total 1.0" in _text()


def test_reset_zeroes_api_values(meter: metrics.Meter) -> None:
    """obskit.testing.reset() zeroes what the API recorded, like obskit's own metrics."""
    meter.create_counter("zeroed").add(5)
    assert "zeroed_total 5.0" in _text()
    _otel_api.reset()
    assert "zeroed_total 5.0" not in _text()


def test_name_taken_by_an_obskit_metric_is_not_exposed_twice(meter: metrics.Meter) -> None:
    """An API instrument whose exposed name an obskit metric already has is dropped with a warning."""
    obskit.gauge("shared_depth", "obskit's").set(1)
    meter.create_up_down_counter("shared.depth").add(5)
    text = _text()
    assert text.count("# TYPE shared_depth gauge") == 1 and "shared_depth 1.0" in text


def test_instrument_created_before_the_first_init_does_not_deadlock_it() -> None:
    """An instrument made through the API before ``init()`` (a contrib instrumentor switched on early):
    ``init()`` completes, and the instrument then records into obskit's store."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        from opentelemetry import metrics
        h = metrics.get_meter("early").create_histogram("early.wait", unit="s")
        import obskit
        obskit.init(service_name="early", otlp_endpoint=None, metrics_port=None)
        h.record(0.2)
        from obskit._metrics._exposition import render
        print("early_wait_seconds_count 1.0" in render("text/plain")[0].decode())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "True", proc.stdout + proc.stderr
