"""The OpenTelemetry resource: who is emitting (service, version, environment, instance, host, process)."""

from __future__ import annotations

import os
import platform
import socket
import sys

from opentelemetry.sdk.resources import Resource

from .._config import Config

__all__ = ["HashedResource", "build_resource", "process_attributes"]

DISTRO_VERSION = "0.1.0"


class HashedResource(Resource):
    """A ``Resource`` that computes its hash once.

    The OTLP encoders group every span and log record by resource, hashing it once per item, and the SDK's
    ``Resource.__hash__`` JSON-dumps all attributes each time: with obskit's larger resource (host,
    runtime, process, distro) the export thread encoded more slowly than the raw SDK's, and under a burst
    its queue dropped more. The attributes are immutable, so the hash can be kept; ``merge`` (the SDK renews
    ``service.instance.id`` after a fork with it) keeps the class.
    """

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = super().__hash__()
        return self._hash

    def merge(self, other: Resource) -> Resource:
        merged = super().merge(other)
        return self if merged is self else HashedResource(merged.attributes, merged.schema_url)


def process_attributes() -> dict[str, str | int]:
    """Attributes that change in a forked or spawned worker."""
    return {"process.pid": os.getpid()}


def build_resource(config: Config) -> Resource:
    """``Resource.create`` adds the SDK attributes, ``service.instance.id`` (renewed by the SDK after a fork)
    and ``OTEL_RESOURCE_ATTRIBUTES``; obskit's resolved settings are merged last so they win."""
    attrs: dict[str, str | int] = dict(config.resource_attributes)
    attrs.pop("deployment.environment", None)
    attrs.update({
        "service.name": config.service_name,
        "host.name": socket.gethostname(),
        "host.arch": platform.machine(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": platform.python_version(),
        "process.executable.name": os.path.basename(sys.executable or "python"),
        "telemetry.distro.name": "obskit",
        "telemetry.distro.version": DISTRO_VERSION,
        **process_attributes(),
    })
    if config.service_version:
        attrs["service.version"] = config.service_version
    if config.environment:
        attrs["deployment.environment.name"] = config.environment
    created = Resource.create(attrs)
    return HashedResource(created.attributes, created.schema_url)
