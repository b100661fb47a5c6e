"""Switch a framework hook on when the framework is imported, so ``init()`` never imports it itself.

``init()`` under ``"auto"`` enables every integration whose packages are installed; importing Django or
Flask there would cost every service that merely has them installed (and import Django before its settings
exist). Instead :class:`HookWhenImported` patches a framework already imported at once, and otherwise waits
for its import with a finder on ``sys.meta_path`` that sees only that module's name, runs the hook when the
module has finished executing, and then steps aside.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable

from obskit._runtime._post_import import AfterImport

__all__ = ["HookWhenImported"]


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
        self._finder: AfterImport | None = None
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
                self._finder = AfterImport(missing, self._now, "integrations: hooking on import")
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
