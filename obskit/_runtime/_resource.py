"""The OpenTelemetry resource: who is emitting (service, version, environment, instance, host, process)."""

from __future__ import annotations

import os
import platform
import socket
import sys

from opentelemetry.sdk.resources import Resource

from .._config import Config

__all__ = ["build_resource", "process_attributes"]

DISTRO_VERSION = "0.1.0"


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
    return Resource.create(attrs)
