"""Hooks in servers' own methods that ``init()`` installs whatever ``integrations=`` says.

They act only inside the server that declares them, so they need no opt-in, and they are what makes a
guarantee hold there:

- **stop hooks** flush when a server stops serving. uvicorn (alone, and as gunicorn's ``UvicornWorker``)
  answers SIGTERM by stopping gracefully, then restores the handler it found (the default one) and raises
  SIGTERM again: the process dies of it and ``atexit``, where obskit shuts down, never runs. Each declared
  ``(module, class, method)`` calls ``flush`` when it returns (connections are closed by then).
- **patches** replace a method by ``wrap(method)``: gunicorn's access line, written after the request's
  span ended, is logged under that span again; a Celery prefork child flushes before billiard ends it with
  ``os._exit()`` (:func:`flushing_before`).

A server imported only after ``init()`` is hooked when its module is imported. ``reset()`` puts every method
back. ``flush`` must be safe when obskit is not running (it is then a no-op).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from obskit.integrations._contract import Patch, ReconfigureHook

from obskit._runtime._post_import import AfterImport
from obskit._runtime._safe import capture_internal_exceptions

__all__ = ["flushing_before", "install", "uninstall"]

_lock = threading.Lock()
_patches: tuple[Patch, ...] = ()
_flush: Callable[[], None] | None = None
_undo: list[Callable[[], None]] = []
_finder: AfterImport | None = None


def install(stop: Iterable[ReconfigureHook], flush: Callable[[], None] | None,
            patches: Iterable[Patch] = ()) -> None:
    """Hook each target (now, or when its module is imported); idempotent. ``flush`` None keeps the one
    installed before."""
    global _patches, _flush, _finder
    wanted = [(*target, _flushing_after) for target in stop] + list(patches)
    with _lock:
        _patches = tuple(dict.fromkeys((*_patches, *wanted)))
        _flush = flush if flush is not None else _flush
        pending = {p[0] for p in _patches if p[0] not in sys.modules}
        if pending:
            if _finder is not None:
                with contextlib.suppress(ValueError):
                    sys.meta_path.remove(_finder)
            _finder = AfterImport(pending, _patch_imported, "integrations: a server's stop and patch hooks")
            sys.meta_path.insert(0, _finder)
    _patch_imported()


def uninstall() -> None:
    """Put every hooked method back and stop watching imports."""
    global _patches, _flush, _finder
    with _lock:
        if _finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(_finder)
            _finder = None
        undo, _undo[:] = list(_undo), []
        _patches, _flush = (), None
    for fn in reversed(undo):
        fn()


def _patch_imported() -> None:
    with _lock:
        for module_name, cls_name, meth_name, wrap in _patches:
            module = sys.modules.get(module_name)
            cls = getattr(module, cls_name, None) if module is not None else None
            original = cls.__dict__.get(meth_name) if isinstance(cls, type) else None
            if cls is None or original is None or wrap in getattr(original, "__obskit_hooks__", ()):
                continue
            _undo.append(_replace(cls, meth_name, original, wrap))


def _replace(cls: type, name: str, original: Callable[..., Any],
             wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[[], None]:
    wrapper: Any = wrap(original)
    wrapper.__obskit_hooks__ = (*getattr(original, "__obskit_hooks__", ()), wrap)
    wrapper.__wrapped__ = original
    wrapper.__name__ = name
    setattr(cls, name, wrapper)

    def undo() -> None:
        if cls.__dict__.get(name) is wrapper:
            setattr(cls, name, original)

    return undo


def _after() -> None:
    flush = _flush
    if flush is not None:
        with capture_internal_exceptions("flush at server stop"):
            flush()


def flushing_before(original: Callable[..., Any]) -> Callable[..., Any]:
    """A ``wrap`` for ``patches``: flush, then ``original`` (a method that ends the process, as
    ``os._exit()`` does, and so never returns)."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        _after()
        return original(self, *args, **kwargs)

    return wrapper


def _flushing_after(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (async if it is) followed by a flush, also when it raises."""
    if inspect.iscoroutinefunction(original):
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await original(self, *args, **kwargs)
            finally:
                _after()

        return async_wrapper

    def sync_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            _after()

    return sync_wrapper
