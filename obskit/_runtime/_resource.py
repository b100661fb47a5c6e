"""The OpenTelemetry resource: who is emitting (service, version, environment, instance, host, process).

Built from obskit's resolved settings only, never by ``Resource.create``: that one reads
``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` itself, so a variable obskit rejected would still be
applied in part (its well-formed entries), and its malformed entries echoed in a warning. The attributes
are redacted like every other exit: ``auth_token=...`` in the resource attributes is a secret too.
"""

from __future__ import annotations

import os
import platform
import socket
import sys

from opentelemetry.sdk.resources import (
    TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME,
    TELEMETRY_SDK_VERSION,
    Resource,
    ServiceInstanceIdResourceDetector,
)

from .._config import Config
from ._redact import Redactor

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
    """The SDK attributes, ``service.instance.id`` (the SDK's detector, which the SDK renews after a fork),
    the resource attributes obskit resolved, then obskit's own settings, which win; redacted."""
    from opentelemetry.sdk import version

    attrs: dict[str, str | int] = {
        TELEMETRY_SDK_LANGUAGE: "python", TELEMETRY_SDK_NAME: "opentelemetry",
        TELEMETRY_SDK_VERSION: version.__version__,
        **{k: str(v) for k, v in ServiceInstanceIdResourceDetector().detect().attributes.items()},
    }
    attrs.update(config.resource_attributes)
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
    return HashedResource(Redactor(config.redact).redact(attrs))
