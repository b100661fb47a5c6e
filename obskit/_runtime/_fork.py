"""The one after-fork registry: every component that holds a thread, a lock or a connection registers here.

Threads do not survive ``fork()``, a lock held by another thread at the fork stays held in the child, and a
gRPC channel or HTTP session made before the fork is broken after it (gunicorn ``--preload``,
``multiprocessing``, Celery prefork). One registry, rather than an ``os.register_at_fork`` call per
module, gives one order (registration order in the child and the parent, the reverse before the fork, as
``os.register_at_fork`` does), one error guard, and one place to see what a fork touches.

Bound methods are held weakly, so an exporter or pusher that is gone is not kept alive by its hook. The
process-wide ``os.register_at_fork`` hook is installed by the first registration, never at import.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Literal

from ._safe import report_internal_error

__all__ = ["Phase", "register", "registered", "unregister"]

Phase = Literal["before", "after_in_parent", "after_in_child"]
_Ref = Callable[[], Callable[[], None] | None]

_lock = threading.Lock()
_hooks: dict[Phase, list[tuple[str, _Ref]]] = {"before": [], "after_in_parent": [], "after_in_child": []}
_installed = False


def _ref(fn: Callable[[], None]) -> _Ref:
    if getattr(fn, "__self__", None) is not None and hasattr(fn, "__func__"):
        return weakref.WeakMethod(fn)  # type: ignore[arg-type]
    return lambda: fn


def register(name: str, *, after_in_child: Callable[[], None] | None = None,
             before: Callable[[], None] | None = None,
             after_in_parent: Callable[[], None] | None = None) -> None:
    """Run the callbacks around every later ``fork()``, replacing any registered under ``name`` before.

    ``name`` identifies the component (registering again is idempotent) and labels its errors.
    """
    global _installed
    with _lock:
        for phase in _hooks:
            _hooks[phase] = [(n, r) for n, r in _hooks[phase] if n != name]
        for phase, fn in (("before", before), ("after_in_parent", after_in_parent),
                          ("after_in_child", after_in_child)):
            if fn is not None:
                _hooks[phase].append((name, _ref(fn)))  # type: ignore[index]
        if not _installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(before=_run_before, after_in_parent=_run_parent, after_in_child=_run_child)
            _installed = True


def unregister(name: str) -> None:
    """Forget every callback registered under ``name``."""
    with _lock:
        for phase in _hooks:
            _hooks[phase] = [(n, r) for n, r in _hooks[phase] if n != name]


def registered() -> list[tuple[Phase, str]]:
    """What runs at a fork, in order per phase (for docs, ``obskit doctor`` and tests)."""
    with _lock:
        return [(phase, name) for phase, hooks in _hooks.items() for name, ref in hooks if ref() is not None]


def _run(phase: Phase, reverse: bool = False) -> None:
    hooks = list(_hooks[phase])  # no lock: in the child the lock may be held by a thread that is gone
    if reverse:
        hooks.reverse()
    dead = False
    for name, ref in hooks:
        fn = ref()
        if fn is None:
            dead = True
            continue
        try:
            fn()
        except Exception as exc:
            report_internal_error(f"{name} ({phase.replace('_', ' ')} fork)", exc)
    if dead:
        _hooks[phase] = [(n, r) for n, r in _hooks[phase] if r() is not None]


def _run_before() -> None:
    _run("before", reverse=True)


def _run_parent() -> None:
    _run("after_in_parent")


def _run_child() -> None:
    global _lock
    _lock = threading.Lock()
    _run("after_in_child")
