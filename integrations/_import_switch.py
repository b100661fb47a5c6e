"""The switch for an HTTP client hook: :class:`~obskit.integrations._sql_switch.SqlSwitch`'s ``instrument`` /
``uninstrument`` / ``is_instrumented`` (the hook module imported on the first ``instrument``) with a ``setup``
that has no SQL settings to apply.

``init()`` never imports the library: the integration declares it as its ``module``, and the registry runs
``setup`` once the application has imported it (``integrations/_registry.py``).

A library that obskit's own dependencies import is in ``sys.modules`` before the application has used it
(``urllib.request``: prometheus-client imports it), so ``setup`` would run in every ``init()``. With
``first_call`` such a switch waits once more, for the application's first call of that method of the library
(:class:`~obskit.integrations._first_call.FirstCall`): until then the hook and what it needs (the HTTP client
code, OpenTelemetry's propagators) are not imported, and the integration counts as instrumented:
``instrument()`` changes nothing and ``uninstrument()`` puts the very original method back.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from obskit.integrations._contract import Teardown, load
from obskit.integrations._first_call import FirstCall
from obskit.integrations._sql_switch import SqlSwitch

from obskit._config import Config

__all__ = ["SwitchOnImport"]


class SwitchOnImport(SqlSwitch):
    """``hook`` switched on for ``library`` (a module name), which the registry has seen imported; with
    ``first_call`` (``(class, method)`` of the library's module), at the application's first call of it."""

    def __init__(self, library: str, hook: str, first_call: tuple[str, str] | None = None) -> None:
        super().__init__(library, hook)
        self.first_call = first_call
        self._lock = threading.RLock()
        self._waiting: FirstCall | None = None

    def instrument(self, *args: Any) -> bool:
        """Trace from now on; False (and nothing done) if on already or waiting for the first call."""
        with self._lock:
            if self._waiting is not None:
                return False
            return super().instrument(*args)

    def uninstrument(self) -> None:
        """Stop tracing, or stop waiting for the first call: the library's original method is back."""
        with self._lock:
            waiting, self._waiting = self._waiting, None
            if waiting is not None:
                waiting.disarm()
            super().uninstrument()

    def is_instrumented(self) -> bool:
        """Whether :meth:`instrument` is in effect, or the trampoline waits to switch it on."""
        return self._waiting is not None or super().is_instrumented()

    def setup(self, config: Config) -> Teardown | None:
        """The integration's ``setup``, idempotent: None when it is on already (not obskit's to undo)."""
        module = load(self.library)
        if self.first_call is None:
            return self.uninstrument if self.instrument() else None
        with self._lock:
            if self.is_instrumented():
                return None
            owner, method = self.first_call
            self._waiting = FirstCall([(getattr(module, owner), method)], self._switch_on, self._lock,
                                      prepare=lambda: importlib.import_module(self.hook))
        return self.uninstrument

    def _switch_on(self, waiting: FirstCall) -> None:
        """The first call (under the lock, the trampoline out): the hook in its place."""
        if self._waiting is waiting:
            self._waiting = None
            importlib.import_module(self.hook).instrument()
