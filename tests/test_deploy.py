"""The deploy files in docs/deploy are consistent: they parse, reference what exists, and promtool accepts
the Prometheus config. (No container runs here; this checks what can be checked without one.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from conftest import require

DEPLOY = Path(__file__).parent.parent / "docs" / "deploy"


def _load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_prometheus_config_passes_promtool() -> None:
    """promtool check config accepts prometheus.yml."""
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool (Debian package prometheus) is not installed")
    proc = subprocess.run([str(promtool), "check", "config", str(DEPLOY / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_collector_pipelines_reference_defined_components() -> None:
    """Every receiver, processor and exporter a pipeline names is defined, and every signal has a pipeline."""
    cfg = _load("otel-collector.yaml")
    pipelines = cfg["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline.get(kind, []):
                assert name in cfg[kind], f"{name} is not defined under {kind}"
    grpc = cfg["receivers"]["otlp"]["protocols"]
    assert grpc["grpc"]["endpoint"].endswith(":4317") and grpc["http"]["endpoint"].endswith(":4318")


def test_compose_mounts_exist_and_ports_match_obskit_defaults() -> None:
    """docker-compose mounts files that exist and publishes the OTLP ports obskit's docs use."""
    compose = _load("docker-compose.yml")
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source[2:]).exists(), source
    ports = compose["services"]["otel-collector"]["ports"]
    assert "4317:4317" in ports and "4318:4318" in ports
    assert any("exemplar-storage" in a for a in compose["services"]["prometheus"]["command"])


def test_grafana_links_point_at_provisioned_datasources() -> None:
    """Exemplar, trace-to-logs and derived-field links name data sources that are provisioned."""
    sources = _load("grafana/datasources.yaml")["datasources"]
    uids = {s["uid"] for s in sources}
    by_type = {s["type"]: s for s in sources}
    exemplar = by_type["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]
    assert exemplar["name"] == "trace_id" and exemplar["datasourceUid"] in uids
    assert by_type["jaeger"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] in uids
    assert by_type["loki"]["jsonData"]["derivedFields"][0]["datasourceUid"] in uids
