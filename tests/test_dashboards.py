"""The Grafana dashboards in docs/deploy/grafana/dashboards: built by their script, valid against a JSON
schema, provisioned by the compose stack, and every panel query run against a real Prometheus (Debian
package) scraping a real obskit service (`obskit demo --serve`) under load, with 5xx and an open breaker."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import require
from otlp_receiver import OTLPReceiver

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "docs" / "deploy"
BOARDS = DEPLOY / "grafana" / "dashboards"
SCHEMA = json.loads((Path(__file__).parent / "grafana_dashboard.schema.json").read_text())
# What Grafana puts in for the variables when every value is selected, and a rate window a 1 s scrape fills.
SUBSTITUTE = {"$service": "checkout-demo", "$instance": ".*", "$route": ".*", "$__rate_interval": "15s"}


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(BOARDS.glob("*.json"))}


def prometheus_targets() -> list[tuple[str, str, str, str]]:
    """(dashboard file, panel title, PromQL, legend) for every Prometheus query of every panel."""
    return [(name, panel["title"], t["expr"], t.get("legendFormat", ""))
            for name, board in dashboards().items() for panel in board["panels"] for t in panel["targets"]
            if t["datasource"]["type"] == "prometheus"]


def test_dashboards_are_what_the_script_builds() -> None:
    """The JSON files are the output of build_dashboards.py, the one source of truth (none edited by hand)."""
    proc = subprocess.run([sys.executable, str(DEPLOY / "grafana" / "build_dashboards.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert set(dashboards()) == {"obskit-service.json", "obskit-dependencies.json", "obskit-resilience.json",
                                 "obskit-health.json", "obskit-runtime.json"}


def test_every_dashboard_matches_the_schema_and_lays_out() -> None:
    """Each dashboard validates against the JSON schema, has the service/instance/route variables, unique
    panel ids, no overlapping panels, and uses only provisioned data sources."""
    sources = yaml.safe_load((DEPLOY / "grafana" / "datasources.yaml").read_text())["datasources"]
    uids = {s["uid"] for s in sources}
    for name, board in dashboards().items():
        jsonschema.validate(board, SCHEMA)
        assert [v["name"] for v in board["templating"]["list"]] == ["service", "instance", "route"], name
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, (name, panel["title"])
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{name}: {panel['title']} overlaps another panel"
            cells |= mine
            assert panel["datasource"]["uid"] in uids
            assert all(t["datasource"]["uid"] in uids for t in panel["targets"])


def test_schema_rejects_a_broken_dashboard() -> None:
    """The schema has teeth: a panel without a query, or wider than the grid, is rejected."""
    board = dashboards()["obskit-service.json"]
    broken = json.loads(json.dumps(board))
    del broken["panels"][0]["targets"][0]["expr"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    wide = json.loads(json.dumps(board))
    wide["panels"][0]["gridPos"]["w"] = 30
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wide, SCHEMA)


def test_exemplar_links_use_the_label_obskit_writes() -> None:
    """The data source's exemplarTraceIdDestinations name is the label obskit's exemplars carry the trace
    id in, and every latency panel over the RED histogram asks for exemplars."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from obskit._metrics._exemplar import current_exemplar, reset

    reset()
    with TracerProvider(sampler=ALWAYS_ON).get_tracer("t").start_as_current_span("s") as span:
        exemplar = current_exemplar(0.1)
    assert exemplar is not None
    trace_label = next(k for k, v in exemplar.labels.items()
                       if v == format(span.get_span_context().trace_id, "032x"))
    sources = yaml.safe_load((DEPLOY / "grafana" / "datasources.yaml").read_text())["datasources"]
    prometheus = next(s for s in sources if s["type"] == "prometheus")
    assert [d["name"] for d in prometheus["jsonData"]["exemplarTraceIdDestinations"]] == [trace_label]
    latency = [p for p in dashboards()["obskit-service.json"]["panels"] if p["title"].startswith("Latency")]
    assert len(latency) == 3 and all(t.get("exemplar") is True for p in latency for t in p["targets"])


def test_compose_provisions_the_dashboards() -> None:
    """docker-compose mounts the provider file where Grafana reads it, the JSON where the provider looks."""
    grafana = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./grafana/dashboards.yaml"].startswith("/etc/grafana/provisioning/dashboards/")
    provider = yaml.safe_load((DEPLOY / "grafana" / "dashboards.yaml").read_text())["providers"][0]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]


def test_logs_panel_queries_loki_by_service() -> None:
    """The logs panel reads Loki, selecting the service's stream, whose trace_id field links to Jaeger."""
    panel = next(p for p in dashboards()["obskit-service.json"]["panels"] if p["type"] == "logs")
    assert panel["datasource"]["type"] == "loki"
    assert panel["targets"][0]["expr"] == '{service_name=~"$service"}'
    sources = yaml.safe_load((DEPLOY / "grafana" / "datasources.yaml").read_text())["datasources"]
    loki = next(s for s in sources if s["type"] == "loki")
    assert loki["jsonData"]["derivedFields"][0]["matcherRegex"] == "trace_id"


# --- against a real Prometheus ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(base: str, path: str, params: list[tuple[str, str]]) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # a query Prometheus rejects answers 400 with a JSON error
        payload = json.loads(exc.read())
    except OSError as exc:  # not listening yet
        payload = {"status": "unreachable", "error": str(exc)}
    return payload


def substitute(expr: str) -> str:
    for var, value in SUBSTITUTE.items():
        expr = expr.replace(var, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metrics a query reads: every name directly followed by a selector."""
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))


@pytest.fixture
def scraped_demo(tmp_path: Path) -> Iterator[str]:
    """`obskit demo --serve` (outage every 6 s, pushing metrics over OTLP too, so the push age exists) and
    a Prometheus scraping it every second with docs/deploy/prometheus.yml's job; yields Prometheus' URL."""
    binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
    require(binary is not None and promtool is not None, "prometheus (Debian package 'prometheus')")
    assert binary is not None and promtool is not None
    metrics_port, prom_port = free_port(), free_port()
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    assert config["scrape_configs"][0]["job_name"] == SUBSTITUTE["$service"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    with OTLPReceiver("http") as rx, open(tmp_path / "demo.log", "w") as demo_log, \
            open(tmp_path / "prometheus.log", "wb") as prom_log:
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_METRIC_EXPORT_INTERVAL": "1000"})
        demo = subprocess.Popen([sys.executable, "-m", "obskit._cli", "demo", "--serve", "--port", "0",
                                 "--metrics-port", str(metrics_port), "--outage-every", "6",
                                 "--duration", "170", "--format", "json"],
                                stdout=subprocess.DEVNULL, stderr=demo_log, env=env)
        prom = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", f"--storage.tsdb.path={tmp_path / 'data'}",
             "--enable-feature=exemplar-storage", "--log.level=warn"],
            stdout=prom_log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield f"http://127.0.0.1:{prom_port}"
        finally:
            for proc in (prom, demo):
                proc.send_signal(signal.SIGTERM if proc is prom else signal.SIGINT)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def query(base: str, expr: str) -> tuple[bool, list[Any], str]:
    """(accepted, result, error) of an instant query."""
    payload = api(base, "query", [("query", expr)])
    data = payload.get("data", {})
    return payload.get("status") == "success", data.get("result", []), payload.get("error", "")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_panel_query_runs_and_returns_series(scraped_demo: str) -> None:
    """Every Prometheus query of every panel is accepted; every query over metrics the service exposes
    returns series; the variables list the service and its routes; the latency exemplars carry trace_id."""
    base = scraped_demo
    deadline = time.monotonic() + 150
    ready = ['max_over_time(obskit_circuit_breaker_state{job="checkout-demo", state="open"}[5m]) == 1',
             'sum(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}) > 0',
             "obskit_metrics_last_push_timestamp_seconds"]
    while time.monotonic() < deadline and not all(query(base, q)[1] for q in ready):
        time.sleep(1)
    assert all(query(base, q)[1] for q in ready), "the demo never had an open breaker, a 5xx and a push"

    queries = prometheus_targets()
    assert len(queries) >= 25
    missing: list[str] = []
    while time.monotonic() < deadline:
        names = set(api(base, "label/__name__/values", [])["data"])
        missing = []
        for board, title, expr, legend in queries:
            ok, result, error = query(base, substitute(expr))
            assert ok, f"{board} / {title}: Prometheus rejected {substitute(expr)}: {error}"
            if metric_names(expr) <= names and not result:
                missing.append(f"{board} / {title}: {substitute(expr)}")
            # A legend label the series lack means a grouping by a label the metric does not have.
            for label in re.findall(r"\{\{(\w+)\}\}", legend):
                if result and not any(series["metric"].get(label) for series in result):
                    missing.append(f"{board} / {title}: no series has the label {label!r}")
        if not missing:
            break
        time.sleep(2)
    assert not missing, "queries over exposed metrics with no series:\n" + "\n".join(missing)
    exposed_by_queries = {m for _, _, expr, _ in queries for m in metric_names(expr)} & names
    assert {"http_server_request_duration_seconds_bucket", "obskit_circuit_breaker_state",
            "db_client_operation_duration_seconds_bucket", "process_thread_count",
            "obskit_metrics_last_push_timestamp_seconds"} <= exposed_by_queries

    jobs = api(base, "label/job/values", [("match[]", "obskit_telemetry_dropped_total")])["data"]
    assert jobs == ["checkout-demo"]
    routes = api(base, "label/http_route/values",
                 [("match[]", 'http_server_request_duration_seconds_count{job=~"checkout-demo"}')])["data"]
    assert {"/orders", "/orders/{id}"} <= set(routes)

    now = time.time()
    exemplars = api(base, "query_exemplars", [("query", "http_server_request_duration_seconds_bucket"),
                                              ("start", str(now - 600)), ("end", str(now + 60))])["data"]
    labels = [e["labels"] for series in exemplars for e in series["exemplars"]]
    assert labels and all(re.fullmatch(r"[0-9a-f]{32}", lab["trace_id"]) for lab in labels)
