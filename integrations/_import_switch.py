"""The switch for an HTTP client hook: :class:`~obskit.integrations._sql_switch.SqlSwitch`'s ``instrument`` /
``uninstrument`` / ``is_instrumented`` (the hook module imported on the first ``instrument``) with a ``setup``
that has no SQL settings to apply.

``init()`` never imports the library: the integration declares it as its ``module``, and the registry runs
``setup`` once the application has imported it (``integrations/_registry.py``).

A library that obskit's own dependencies import is in ``sys.modules`` before the application has used it
(``urllib.request``: prometheus-client imports it), so ``setup`` would run in every ``init()``. With
``first_call`` such a switch waits once more, for the application's first call: ``setup`` only puts a
trampoline in place of one method of the library, and that trampoline, called the first time, imports the
hook, switches it on in its own place and forwards the call to the hook's method (so that first call is
traced). Until then the hook and what it needs (the HTTP client code, OpenTelemetry's propagators) are not
imported, and the integration counts as instrumented: ``instrument()`` changes nothing and ``uninstrument()``
puts the very original method back.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from typing import Any

from obskit.integrations._contract import Teardown, load
from obskit.integrations._sql_switch import SqlSwitch

from obskit._config import Config
from obskit._runtime._safe import report_internal_error

__all__ = ["SwitchOnImport"]


class _Trampoline:
    """``cls.name`` replaced by a function that calls ``switch_on(self)`` once, then forwards every call."""

    def __init__(self, cls: type, name: str, switch_on: Callable[[_Trampoline], None]) -> None:
        self.cls = cls
        self.name = name
        self.original: Callable[..., Any] = cls.__dict__[name]
        self.pending = True
        # Found under another wrapper when taken out (something patched the method after init()): it cannot
        # leave the class without taking that wrapper along, so it stays, forwarding to the original.
        self.buried = False
        original = self.original

        @functools.wraps(original)
        def first_call(*args: Any, **kwargs: Any) -> Any:
            if self.pending:
                switch_on(self)
            target = cls.__dict__.get(name, original)
            if self.buried or target is first_call:
                target = original
            return target(*args, **kwargs)

        self.function = first_call
        setattr(cls, name, first_call)

    def remove(self) -> None:
        """Put the original back (unless buried); from now on the trampoline only forwards."""
        self.pending = False
        if self.cls.__dict__.get(self.name) is self.function:
            setattr(self.cls, self.name, self.original)
        else:
            self.buried = True


class SwitchOnImport(SqlSwitch):
    """``hook`` switched on for ``library`` (a module name), which the registry has seen imported; with
    ``first_call`` (``(class, method)`` of the library's module), at the application's first call of it."""

    def __init__(self, library: str, hook: str, first_call: tuple[str, str] | None = None) -> None:
        super().__init__(library, hook)
        self.first_call = first_call
        self._lock = threading.RLock()
        self._waiting: _Trampoline | None = None

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
                waiting.remove()
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
            self._waiting = _Trampoline(getattr(module, owner), method, self._switch_on)
        return self.uninstrument

    def _switch_on(self, waiting: _Trampoline) -> None:
        """The first call through ``waiting``: the hook switched on in its place; never raises."""
        try:
            hook = importlib.import_module(self.hook)  # outside the lock: the import is the slow part
        except Exception as exc:
            hook = None
            report_internal_error(f"switching on {self.hook}", exc)
        with self._lock:
            if self._waiting is not waiting:
                return  # another thread's first call switched it on, or it was switched off
            self._waiting = None
            waiting.remove()
            if hook is None:
                return
            try:
                hook.instrument()
            except Exception as exc:
                report_internal_error(f"switching on {self.hook}", exc)
