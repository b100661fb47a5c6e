"""Switching a hook on at the application's first call of a library, not when the library is imported.

A library that obskit itself imports, or that its dependencies import, is in ``sys.modules`` in every process:
``urllib.request`` (prometheus-client imports it), ``grpc`` (obskit's OTLP/gRPC exporter). Its import says
nothing about the application using it, so switching its hook on then would import the hook and what it
needs (OpenTelemetry's instrumentors, wrapt, packaging) in every ``init()``. :class:`FirstCall` puts a
trampoline in place of each function through which the application uses the library (a method on a class,
a function of a module); the first call of any of them takes them all out, switches the hook on, and goes on
to what is in place then (the hook's function), so that first call is traced too.

The owner's function is looked up at each call (``owner.name``), so obskit's exporters, which bind
``grpc.insecure_channel`` by name when their module is imported, never reach a trampoline.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from obskit._runtime._safe import report_internal_error

__all__ = ["FirstCall"]


class _Slot:
    """One ``owner.name`` (a class's or a module's function) replaced by a trampoline of ``group``."""

    def __init__(self, owner: Any, name: str, group: FirstCall) -> None:
        self.owner = owner
        self.name = name
        self.original: Callable[..., Any] = owner.__dict__[name]
        # Found under another wrapper when taken out (something patched the function after the trampoline
        # went in): it cannot leave without taking that wrapper along, so it stays, calling the original.
        self.buried = False
        original = self.original

        @functools.wraps(original)
        def trampoline(*args: Any, **kwargs: Any) -> Any:
            if group.armed:
                group.fire()
            target = owner.__dict__.get(name, original)
            if self.buried or target is trampoline:
                target = original
            return target(*args, **kwargs)

        self.trampoline = trampoline
        setattr(owner, name, trampoline)

    def remove(self) -> None:
        """Put the original back, unless something has wrapped the trampoline since."""
        if self.owner.__dict__.get(self.name) is self.trampoline:
            setattr(self.owner, self.name, self.original)
        else:
            self.buried = True


class FirstCall:
    """Trampolines in place of ``targets`` (``(owner, name)`` pairs) until the first call of any of them.

    That call runs ``prepare()`` (the slow part: importing the hook), then, under ``lock``, takes every
    trampoline out and runs ``switch_on(self)``; calls made meanwhile from other threads wait for it and are
    traced. Neither may raise into the application: a failure is reported once and the calls go on to the
    library's own functions. :meth:`disarm` takes the trampolines out without switching anything on. The
    caller's ``lock`` guards its own state too, so its ``switch_on`` and ``disarm`` never race.
    """

    def __init__(self, targets: Sequence[tuple[Any, str]], switch_on: Callable[[FirstCall], None],
                 lock: threading.RLock, prepare: Callable[[], object] | None = None) -> None:
        self._switch_on = switch_on
        self._prepare = prepare
        self._lock = lock
        with lock:
            self.armed = True
            self._slots = [_Slot(owner, name, self) for owner, name in targets]

    def fire(self) -> None:
        """The first call: prepare, then switch on in the trampolines' place (once); never raises."""
        if self._prepare is not None:
            with contextlib.suppress(Exception):  # switch_on meets the same failure below, and reports it
                self._prepare()
        with self._lock:
            if not self.armed:
                return  # another thread's first call did it, or it was switched off meanwhile
            self._take_out()
            try:
                self._switch_on(self)
            except Exception as exc:
                report_internal_error("integrations: switching on at the first call", exc)

    def disarm(self) -> None:
        """Take the trampolines out; nothing is switched on."""
        with self._lock:
            if self.armed:
                self._take_out()

    def _take_out(self) -> None:
        self.armed = False
        for slot in self._slots:
            slot.remove()
