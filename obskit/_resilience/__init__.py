"""PLACEHOLDER (resilience helper replaces)."""

from __future__ import annotations

import enum
from typing import Any


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, name: str, **kwargs: Any) -> None:
        raise NotImplementedError


def circuit_breaker(name: str, **kwargs: Any) -> Any:
    raise NotImplementedError


def retry(**kwargs: Any) -> Any:
    raise NotImplementedError


def timeout(seconds: float, **kwargs: Any) -> Any:
    raise NotImplementedError


def bulkhead(**kwargs: Any) -> Any:
    raise NotImplementedError
