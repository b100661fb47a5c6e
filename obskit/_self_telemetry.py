"""PLACEHOLDER (metrics helper replaces): obskit's own health counters."""

from __future__ import annotations


def record_dropped(signal: str, count: int = 1) -> None:
    """Items of ``signal`` ("traces", "logs", "metrics") dropped because a queue was full."""


def record_export_failure(signal: str, count: int = 1) -> None:
    """One failed export call for ``signal``."""
