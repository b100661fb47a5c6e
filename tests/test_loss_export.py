"""Nothing lost on the export path: bursts, counted drops, oversized records, obskit's own exports.

Everything runs against the loopback collector (real gRPC and HTTP, real protobuf); nothing here mocks an
exporter.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource

import obskit


def _init(endpoint: str, protocol: str, **kw: Any) -> obskit.Telemetry:
    kw.setdefault("log_stream", io.StringIO())
    kw.setdefault("log_format", "json")
    kw.setdefault("metrics", False)
    return obskit.init(service_name="loss-test", otlp_endpoint=endpoint, otlp_protocol=protocol,
                       integrations="none", **kw)


def test_resource_hash_is_computed_once(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoders hash the resource per span; obskit's computes it once, also after a fork's merge."""
    tel = obskit.init(service_name="hash", log_stream=io.StringIO(), integrations="none", metrics=False)
    assert tel.tracer_provider is not None
    calls: list[int] = []
    original = Resource.__hash__
    monkeypatch.setattr(Resource, "__hash__", lambda self: calls.append(1) or original(self))
    resource = tel.tracer_provider.resource
    merged = resource.merge(Resource({"process.pid": 1}))  # what the SDK does in a forked child
    for _ in range(100):
        hash(resource)
        hash(merged)
    assert len(calls) == 2
