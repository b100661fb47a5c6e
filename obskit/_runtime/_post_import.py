"""A finder on ``sys.meta_path`` that runs a callback right after a named module has been imported.

Two parts of obskit act on a library only once the application imports it, never importing it themselves:
the integrations (instrument Redis when ``redis`` is imported) and the log router (patch a server's logging
set-up when the server is imported). Both wait with this finder: it answers only for its names, runs the
module as the import system would, then the callback, whose failure is reported and never reaches the import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import threading
import types
from collections.abc import Callable, Collection
from typing import Any

from ._safe import capture_internal_exceptions

__all__ = ["AfterImport"]


class AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``after`` each time one of ``names`` has been imported (executed); ``what`` names the caller in
    the internal-error report of a failing ``after``."""

    def __init__(self, names: Collection[str], after: Callable[[], None], what: str) -> None:
        self._names = names
        self._after = after
        self._what = what
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
        after, what = self._after, self._what

        def exec_module(module: types.ModuleType) -> None:
            original(module)
            with capture_internal_exceptions(f"{what} ({fullname} imported)"):
                after()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
