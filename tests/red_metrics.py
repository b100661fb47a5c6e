"""Reading RED series from an OpenMetrics scrape: the helpers the server-metrics tests share."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
DURATION = "http_server_request_duration_seconds"


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    exemplar: Any


def samples(text: str) -> list[Sample]:
    """Every sample of an OpenMetrics exposition, with its exemplar (or None)."""
    return [Sample(s.name, dict(s.labels), float(s.value), s.exemplar)
            for fam in text_string_to_metric_families(text) for s in fam.samples]


def scrape(port: int, path: str = "/metrics") -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": OPENMETRICS})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.read().decode())


def count(found: list[Sample], name: str = DURATION, **labels: str) -> float:
    """The ``_count`` summed over every series whose labels include ``labels``."""
    return sum(s.value for s in found if s.name == f"{name}_count"
               and all(s.labels.get(k) == v for k, v in labels.items()))


def series_labels(found: list[Sample], name: str = DURATION) -> list[dict[str, str]]:
    return [s.labels for s in found if s.name == f"{name}_count"]


def exemplar_trace_ids(found: list[Sample], name: str = DURATION) -> set[str]:
    return {s.exemplar.labels["trace_id"] for s in found
            if s.name == f"{name}_bucket" and s.exemplar is not None}
