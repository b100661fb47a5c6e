"""PLACEHOLDER (core: me)."""

from __future__ import annotations

from typing import Any


class Telemetry:
    pass


def init(**kwargs: Any) -> Telemetry:
    raise NotImplementedError


def shutdown(timeout: float = 5.0) -> bool:
    return True


def force_flush(timeout: float = 5.0) -> bool:
    return True


def get_tracer(name: str | None = None) -> Any:
    raise NotImplementedError
