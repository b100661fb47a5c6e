"""Named breakers: one name, one state machine, however many places construct or decorate with it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ._state import BreakerCore

__all__ = ["all_cores", "clear", "get_or_create"]

_cores: dict[str, BreakerCore] = {}
_lock = threading.Lock()


def get_or_create(name: str, make: Callable[[], BreakerCore]) -> tuple[BreakerCore, bool]:
    """The core registered under ``name``, creating it with ``make()`` first; also says if it was new."""
    core = _cores.get(name)
    if core is not None:
        return core, False
    with _lock:
        core = _cores.get(name)
        if core is not None:
            return core, False
        core = make()
        _cores[name] = core
        return core, True


def all_cores() -> list[BreakerCore]:
    """Every registered breaker (a copy: scrapes never block registration)."""
    return list(_cores.values())


def clear() -> None:
    """Forget every breaker; for tests, since a process normally keeps its breakers for its lifetime."""
    with _lock:
        _cores.clear()
