"""Flush when a server stops serving, for servers that end the process past ``atexit``.

uvicorn (alone, and as gunicorn's ``UvicornWorker``) answers SIGTERM by stopping gracefully, then restores
the handler it found (the default one) and raises SIGTERM again: the process dies of it and ``atexit``,
where obskit shuts down, never runs. Every finished request's spans and log lines would be lost. So each
``(module, class, method)`` an integration declares in ``stop_hooks`` is wrapped to call ``flush`` when it
returns (the server has closed its connections by then). A server imported only after ``init()`` is wrapped
when its module is imported. ``flush`` must be safe when obskit is not running (it is then a no-op).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from obskit._logs._stdlib import _PatchOnImport
from obskit._runtime._safe import capture_internal_exceptions

__all__ = ["install", "uninstall"]

Target = tuple[str, str, str]

_lock = threading.Lock()
_targets: tuple[Target, ...] = ()
_flush: Callable[[], None] | None = None
_undo: list[Callable[[], None]] = []
_finder: _PatchOnImport | None = None


def install(targets: Iterable[Target], flush: Callable[[], None]) -> None:
    """Wrap each target (now, or when its module is imported) to call ``flush`` after it; idempotent."""
    global _targets, _flush, _finder
    with _lock:
        _targets = tuple(dict.fromkeys((*_targets, *targets)))
        _flush = flush
        pending = {t[0] for t in _targets if t[0] not in sys.modules}
        if pending and _finder is None:
            _finder = _PatchOnImport(pending, _wrap_imported)
            sys.meta_path.insert(0, _finder)
    _wrap_imported()


def uninstall() -> None:
    """Put every wrapped method back and stop watching imports."""
    global _targets, _flush, _finder
    with _lock:
        if _finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(_finder)
            _finder = None
        undo, _undo[:] = list(_undo), []
        _targets, _flush = (), None
    for fn in reversed(undo):
        fn()


def _wrap_imported() -> None:
    with _lock:
        for module_name, cls_name, meth_name in _targets:
            module = sys.modules.get(module_name)
            cls = getattr(module, cls_name, None) if module is not None else None
            original = cls.__dict__.get(meth_name) if isinstance(cls, type) else None
            if cls is None or original is None or getattr(original, "__obskit_stop__", False):
                continue
            _undo.append(_wrap(cls, meth_name, original))


def _after() -> None:
    flush = _flush
    if flush is not None:
        with capture_internal_exceptions("flush at server stop"):
            flush()


def _wrap(cls: type, name: str, original: Callable[..., Any]) -> Callable[[], None]:
    """Replace ``cls.name`` by a wrapper (async if the method is) that flushes after it, even on error."""
    wrapper: Any
    if inspect.iscoroutinefunction(original):
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await original(self, *args, **kwargs)
            finally:
                _after()

        wrapper = async_wrapper
    else:
        def sync_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, *args, **kwargs)
            finally:
                _after()

        wrapper = sync_wrapper
    wrapper.__obskit_stop__ = True
    wrapper.__wrapped__ = original
    wrapper.__name__ = name
    setattr(cls, name, wrapper)

    def undo() -> None:
        if cls.__dict__.get(name) is wrapper:
            setattr(cls, name, original)

    return undo
