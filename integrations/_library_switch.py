"""The switch of an integration whose hook replaces methods on a library's classes (``pika``, ``aio_pika``):
``instrument`` / ``uninstrument`` / ``is_instrumented`` and the integration's ``setup``, with the tracing in a
private hook module that is imported only when the switch is turned on.

The registry imports every public integration module in every ``init()`` to read its declaration, so the
public module holds the declaration and this switch, and the hook module (with the messaging recorder, the
propagators, the SQL suppression check) waits for the application to import the library.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from obskit.integrations._contract import Teardown
from obskit.integrations._import_hook import HookWhenImported

from obskit._config import Config

__all__ = ["LibrarySwitch", "Wraps"]

#: What a hook module's ``wraps()`` returns: ``(class, method)`` -> what wraps the method.
Wraps = Mapping[tuple[type, str], Callable[[Any], Any]]


class LibrarySwitch:
    """``instrument`` / ``uninstrument`` / ``is_instrumented`` / ``setup`` for a hook made of methods replaced
    on a library's classes: ``hook`` (a module name) has ``wraps()``, called on the first :meth:`instrument`,
    after the library is imported, which says which ``(class, method)`` becomes ``wrap(method)``.
    :meth:`setup` (the integration's) switches it on when ``library`` is imported, never importing it
    itself; :meth:`uninstrument` puts back exactly the functions that were there."""

    def __init__(self, library: str, hook: str) -> None:
        self._hook = hook
        self._lock = threading.Lock()
        self._originals: dict[tuple[type, str], Any] = {}
        self._when = HookWhenImported((library,), self.instrument, self.uninstrument)

    def instrument(self) -> bool:
        """Wrap the methods on their classes (existing objects included); False if already done."""
        wraps: Callable[[], Wraps] = importlib.import_module(self._hook).wraps
        with self._lock:
            if self._originals:
                return False
            for (cls, name), wrap in wraps().items():
                original = cls.__dict__.get(name)
                if original is not None:
                    self._originals[(cls, name)] = original
                    setattr(cls, name, wrap(original))
            return True

    def uninstrument(self) -> None:
        """Put the original functions back (objects keep working, untraced)."""
        with self._lock:
            for (cls, name), original in self._originals.items():
                setattr(cls, name, original)
            self._originals.clear()

    def is_instrumented(self) -> bool:
        """Whether :meth:`instrument` is in effect."""
        return bool(self._originals)

    def setup(self, config: Config) -> Teardown | None:
        """The integration's ``setup``: on now or when imported; None when on already (not ours to undo)."""
        return self._when.setup()
