"""The one source of the Grafana dashboards in ``dashboards/``: run it after changing a query.

    python docs/deploy/grafana/build_dashboards.py           # write dashboards/*.json
    python docs/deploy/grafana/build_dashboards.py --check   # exit 1 if a file differs (the tests run this)

Plain dictionaries in Grafana's dashboard JSON model, no dependency: the panels are few and their queries are
what matters, and ``tests/test_dashboards.py`` runs every query against a real Prometheus scraping a real
obskit service. Every dashboard has the ``service`` (the Prometheus ``job``: the scrape job's name, or
``service.name`` for metrics pushed over OTLP), ``instance`` and ``route`` variables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
PROM = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}
SEL = 'job=~"$service", instance=~"$instance"'
HTTP_SEL = SEL + ', http_route=~"$route"'
RATE = "[$__rate_interval]"


def variables() -> dict[str, Any]:
    def var(name: str, query: str) -> dict[str, Any]:
        return {"name": name, "label": name, "type": "query", "datasource": PROM, "query": query,
                "definition": query, "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
                "current": {"text": "All", "value": "$__all"}, "sort": 1}

    return {"list": [
        var("service", "label_values(obskit_telemetry_dropped_total, job)"),
        var("instance", 'label_values(obskit_telemetry_dropped_total{job=~"$service"}, instance)'),
        var("route", 'label_values(http_server_request_duration_seconds_count{job=~"$service"}, http_route)'),
    ]}


def ratio(metric: str, by: str, bad: str, sel: str = SEL) -> str:
    """Bad over all per ``by``; 0 rather than no data while nothing is bad."""
    total = f"sum by ({by}) (rate({metric}{{{sel}}}{RATE}))"
    return f"(sum by ({by}) (rate({metric}{{{sel}, {bad}}}{RATE})) or {total} * 0) / {total}"


def quantile(q: float, metric: str, by: str, sel: str = SEL) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}{RATE})))"


def target(expr: str, legend: str, *, exemplar: bool = False, ref: str = "A") -> dict[str, Any]:
    out: dict[str, Any] = {"refId": ref, "datasource": PROM, "expr": expr, "legendFormat": legend,
                           "range": True}
    if exemplar:
        out["exemplar"] = True
    return out


class Layout:
    """Panels placed left to right, two per row of height 8 (or one full-width)."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = 0

    def add(self, title: str, targets: list[dict[str, Any]], *, unit: str = "short", kind: str = "timeseries",
            width: int = 12, description: str = "", **extra: Any) -> None:
        if self._x + width > 24:
            self._x, self._y = 0, self._y + 8
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "datasource": targets[0]["datasource"],
            "gridPos": {"h": 8, "w": width, "x": self._x, "y": self._y},
            "targets": targets, "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "options": {},
        }
        panel.update(extra)
        self.panels.append(panel)
        self._x += width


def dashboard(uid: str, title: str, description: str, layout: Layout) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["obskit"], "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-30m", "to": "now"},
        "timezone": "browser", "graphTooltip": 1, "annotations": {"list": []}, "templating": variables(),
        "links": [{"title": "obskit", "type": "dashboards", "tags": ["obskit"], "asDropdown": True}],
        "panels": layout.panels,
    }


def service_overview() -> dict[str, Any]:
    duration = "http_server_request_duration_seconds"
    p = Layout()
    p.add("Request rate by route",
          [target(f"sum by (http_route) (rate({duration}_count{{{HTTP_SEL}}}{RATE}))", "{{http_route}}")],
          unit="reqps")
    p.add("Error ratio (5xx) by route",
          [target(ratio(f"{duration}_count", "http_route", 'http_response_status_code=~"5.."', HTTP_SEL),
                  "{{http_route}}")], unit="percentunit")
    for q, width in ((0.5, 8), (0.95, 8), (0.99, 8)):
        p.add(f"Latency p{round(q * 100)} by route", [target(quantile(q, duration, "http_route", HTTP_SEL),
                                                             "{{http_route}}", exemplar=True)],
              unit="s", width=width, description="Dots are exemplars: click one to open its trace in Jaeger.")
    p.add("Active requests", [target(f"sum by (instance) (http_server_active_requests{{{SEL}}})",
                                     "{{instance}}")], width=24)
    p.add("Logs", [{"refId": "A", "datasource": LOKI, "expr": '{service_name=~"$service"}',
                    "queryType": "range"}],
          kind="logs", width=24, description="Lines of the service; a trace_id opens the trace in Jaeger.",
          options={"showTime": True, "wrapLogMessage": True, "enableLogDetails": True,
                   "sortOrder": "Descending"})
    return dashboard("obskit-service", "obskit / Service overview (RED)",
                     "Rate, errors and duration per route from http_server_request_duration_seconds.", p)


def dependencies() -> dict[str, Any]:
    p = Layout()
    deps = (("Outgoing HTTP", "http_client_request_duration_seconds", "server_address"),
            ("Database", "db_client_operation_duration_seconds", "db_system_name, db_namespace"),
            ("RPC", "rpc_client_call_duration_seconds", "rpc_method, server_address"))
    for title, metric, by in deps:
        legend = " ".join("{{" + label.strip() + "}}" for label in by.split(","))
        p.add(f"{title}: p95 duration by peer", [target(quantile(0.95, metric, by), legend, exemplar=True)],
              unit="s")
        p.add(f"{title}: error ratio by peer",
              [target(ratio(f"{metric}_count", by, 'error_type!=""'), legend)], unit="percentunit")
    return dashboard("obskit-dependencies", "obskit / Dependencies",
                     "What the service calls: outgoing HTTP, databases and RPC, by peer.", p)


def resilience() -> dict[str, Any]:
    state = "obskit_circuit_breaker_state"
    p = Layout()
    p.add("Circuit breaker state",
          [target(f'max by (name) ({state}{{{SEL}, state=~"open|forced_open"}}) * 2 '
                  f'+ max by (name) ({state}{{{SEL}, state="half_open"}})', "{{name}}")],
          kind="state-timeline", width=24,
          fieldConfig={"defaults": {"unit": "short", "mappings": [{"type": "value", "options": {
              "0": {"text": "closed", "color": "green"}, "1": {"text": "half-open", "color": "yellow"},
              "2": {"text": "open", "color": "red"}}}]}, "overrides": []})
    p.add("Breaker calls by outcome",
          [target(f"sum by (name, outcome) (rate(obskit_circuit_breaker_calls_total{{{SEL}}}{RATE}))",
                  "{{name}} {{outcome}}")], unit="reqps")
    p.add("Breaker rejections",
          [target("sum by (name) (rate(obskit_circuit_breaker_calls_total"
                  f'{{{SEL}, outcome="rejected"}}{RATE}))', "{{name}}")], unit="reqps")
    p.add("Fallbacks by reason",
          [target(f"sum by (name, reason) (rate(obskit_fallback_calls_total{{{SEL}}}{RATE}))",
                  "{{name}} {{reason}}")], unit="reqps")
    p.add("Retries by outcome",
          [target(f"sum by (name, outcome) (rate(obskit_retry_calls_total{{{SEL}}}{RATE}))",
                  "{{name}} {{outcome}}"),
           target(f"sum by (name) (rate(obskit_retry_attempts_total{{{SEL}}}{RATE})) "
                  f"/ sum by (name) (rate(obskit_retry_calls_total{{{SEL}}}{RATE}))",
                  "{{name}} attempts per call", ref="B")], unit="short")
    p.add("Bulkhead saturation",
          [target(f"sum by (name) (obskit_bulkhead_active{{{SEL}}}) "
                  f"/ sum by (name) (obskit_bulkhead_limit{{{SEL}}})", "{{name}}")], unit="percentunit")
    p.add("Bulkhead rejections",
          [target(f"sum by (name) (rate(obskit_bulkhead_rejected_total{{{SEL}}}{RATE}))", "{{name}}")],
          unit="reqps")
    return dashboard("obskit-resilience", "obskit / Resilience",
                     "Circuit breakers, fallbacks, retries and bulkheads.", p)


def health() -> dict[str, Any]:
    p = Layout()
    p.add("Dropped spans and log records",
          [target(f"sum by (signal) (rate(obskit_telemetry_dropped_total{{{SEL}}}{RATE}))", "{{signal}}")],
          unit="short", description="Refused by a full queue or lost in a failed export.")
    p.add("OTLP export failures",
          [target(f"sum by (signal) (rate(obskit_export_failures_total{{{SEL}}}{RATE}))", "{{signal}}")],
          unit="short")
    p.add("Cardinality overflow",
          [target(f"sum by (metric) (rate(obskit_metric_overflow_total{{{SEL}}}{RATE}))", "{{metric}}")],
          unit="short", description="Observations folded into the _other series of a metric.")
    p.add("Metrics push age",
          [target(f"time() - min by (instance) (obskit_metrics_last_push_timestamp_seconds{{{SEL}}})",
                  "{{instance}}")],
          unit="s", description="Seconds since the oldest worker's last successful OTLP metrics push.")
    return dashboard("obskit-health", "obskit / Telemetry health",
                     "Whether obskit delivers: drops, export failures, cardinality overflow, push age.", p)


def runtime() -> dict[str, Any]:
    p = Layout()
    p.add("CPU", [target(f"sum by (instance) (rate(process_cpu_seconds_total{{{SEL}}}{RATE}))",
                         "{{instance}}")], unit="percentunit")
    p.add("Resident memory", [target(f"sum by (instance) (process_resident_memory_bytes{{{SEL}}})",
                                     "{{instance}}")], unit="bytes")
    p.add("GC collections by generation",
          [target(f"sum by (instance, generation) (rate(python_gc_collections_total{{{SEL}}}{RATE}))",
                  "{{instance}} gen {{generation}}")], unit="short")
    p.add("Threads", [target(f"sum by (instance) (process_thread_count{{{SEL}}})", "{{instance}}")])
    p.add("Open file descriptors", [target(f"sum by (instance) (process_open_fds{{{SEL}}})", "{{instance}}")],
          width=24)
    return dashboard("obskit-runtime", "obskit / Runtime", "Process CPU, memory, GC, threads, open fds.", p)


def build() -> dict[str, dict[str, Any]]:
    """File name -> dashboard."""
    return {f"{d['uid']}.json": d for d in (service_overview(), dependencies(), resilience(), health(),
                                            runtime())}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2) + "\n"


def main(argv: list[str]) -> int:
    boards = build()
    if "--check" in argv:
        stale = [name for name, board in boards.items()
                 if not (OUT / name).exists() or (OUT / name).read_text() != render(board)]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in boards)
        for name in stale + extra:
            print(f"{OUT / name} is not what build_dashboards.py makes: run it", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(exist_ok=True)
    for name, board in boards.items():
        (OUT / name).write_text(render(board))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
