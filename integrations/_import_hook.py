"""Switch a framework hook on when the framework is imported, so ``init()`` never imports it itself.

``init()`` under ``"auto"`` enables every integration whose packages are installed; importing Django or
Flask there would cost every service that merely has them installed (and import Django before its settings
exist). Instead :class:`HookWhenImported` patches a framework already imported at once, and otherwise waits
for its import with a finder on ``sys.meta_path`` that sees only that module's name, runs the hook when the
module has finished executing, and then steps aside.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from obskit._runtime._safe import capture_internal_exceptions

__all__ = ["HookWhenImported"]


class _Finder(importlib.abc.MetaPathFinder):
    """Runs ``after`` each time one of ``names`` has been imported (executed)."""

    def __init__(self, names: frozenset[str], after: Callable[[], None]) -> None:
        self._names = names
        self._after = after
        self._local = threading.local()

    def find_spec(self, fullname: str, path: Any = None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._names or getattr(self._local, "busy", False):
            return None
        self._local.busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        except Exception:
            return None
        finally:
            self._local.busy = False
        loader = spec.loader if spec is not None else None
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return None
        original = loader.exec_module
        after = self._after

        def exec_module(module: types.ModuleType) -> None:
            original(module)
            with capture_internal_exceptions(f"integrations: hooking {fullname} on import"):
                after()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


class HookWhenImported:
    """``instrument()`` (returns True if it switched something on; it patches what of the framework is
    imported, and is called again as each of ``modules`` is) once one of ``modules`` is imported;
    ``uninstrument()`` undoes it. :meth:`setup` is an integration's ``setup``: idempotent, with teardown.

    Name modules that import the pieces they need, never one imported half-way through them (Django's
    ``handlers.base`` runs while ``handlers.wsgi`` is still importing).
    """

    def __init__(self, modules: tuple[str, ...], instrument: Callable[[], bool],
                 uninstrument: Callable[[], None]) -> None:
        self.modules = modules
        self._instrument = instrument
        self._uninstrument = uninstrument
        self._finder: _Finder | None = None
        self._on = False
        self._lock = threading.Lock()

    def _now(self) -> None:
        with self._lock:
            if self._finder is not None and all(m in sys.modules for m in self.modules):
                with contextlib.suppress(ValueError):
                    sys.meta_path.remove(self._finder)
                self._finder = None
        self._on = self._instrument() or self._on

    def setup(self) -> Callable[[], None] | None:
        """Hook now or on import; None when it is in place already (not this call's to undo)."""
        with self._lock:
            if self._on or self._finder is not None:
                return None
            missing = frozenset(m for m in self.modules if m not in sys.modules)
            if missing:
                self._finder = _Finder(missing, self._now)
                sys.meta_path.insert(0, self._finder)
            if len(missing) == len(self.modules):
                return self.teardown
        self._now()
        return self.teardown if self._on or self._finder is not None else None

    def teardown(self) -> None:
        with self._lock:
            if self._finder is not None:
                with contextlib.suppress(ValueError):
                    sys.meta_path.remove(self._finder)
                self._finder = None
            on, self._on = self._on, False
        if on:
            self._uninstrument()
