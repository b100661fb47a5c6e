"""PLACEHOLDER (logging helper replaces)."""

from __future__ import annotations

from typing import Any


def get_logger(name: str | None = None, **context: Any) -> Any:
    raise NotImplementedError


def configure_logging(config: Any, *, logger_provider: Any = None) -> Any:
    return None
