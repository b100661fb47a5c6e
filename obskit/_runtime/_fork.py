"""The one after-fork registry: every component that holds a thread, a lock or a connection registers here.

Threads do not survive ``fork()``, a lock held by another thread at the fork stays held in the child, and a
gRPC channel or HTTP session made before the fork is broken after it (gunicorn ``--preload``,
``multiprocessing``, Celery prefork). One registry, rather than an ``os.register_at_fork`` call per
module, gives one order (registration order in the child and the parent, the reverse before the fork, as
``os.register_at_fork`` does), one error guard, and one place to see what a fork touches.

Bound methods are held weakly, so an exporter or pusher that is gone is not kept alive by its hook. The
process-wide ``os.register_at_fork`` hook is installed by the first registration, never at import.

A forked child also needs to flush when it ends, and ``multiprocessing`` ends its children with
``os._exit()`` after running its own finalizers: ``atexit`` never runs there, so a child lost whatever its
batch queues and its metrics pusher still held (all of it, for a short task). ``at_child_exit`` callbacks run
from one of those finalizers, armed in each ``multiprocessing`` child as it starts; and from SIGTERM, which
is how ``Pool.terminate()`` (and so ``with Pool() as pool:``) ends idle workers, unless the application
handles SIGTERM itself. A child that calls ``os._exit()`` itself runs nothing at all (see docs/deploy.md,
"Forked processes").
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from . import _health, _safe
from ._safe import report_internal_error

if TYPE_CHECKING:
    from ._post_import import AfterImport

__all__ = ["Phase", "register", "registered", "unregister"]

Phase = Literal["before", "after_in_parent", "after_in_child", "at_child_exit"]
_Ref = Callable[[], Callable[[], None] | None]

_lock = threading.Lock()
_hooks: dict[Phase, list[tuple[str, _Ref]]] = {"before": [], "after_in_parent": [], "after_in_child": [],
                                               "at_child_exit": []}
_installed = False
_armed = False
_exiting = False  # this (child) process has started its at_child_exit callbacks
# Runs after the application's own multiprocessing finalizers (pools, queues: priority >= 0), which may
# still log or trace.
_EXIT_PRIORITY = -100


def _ref(fn: Callable[[], None]) -> _Ref:
    if getattr(fn, "__self__", None) is not None and hasattr(fn, "__func__"):
        return weakref.WeakMethod(fn)  # type: ignore[arg-type]
    return lambda: fn


def register(name: str, *, after_in_child: Callable[[], None] | None = None,
             before: Callable[[], None] | None = None,
             after_in_parent: Callable[[], None] | None = None,
             at_child_exit: Callable[[], None] | None = None) -> None:
    """Run the callbacks around every later ``fork()``, replacing any registered under ``name`` before.

    ``name`` identifies the component (registering again is idempotent) and labels its errors.
    ``at_child_exit`` runs when a ``multiprocessing`` child forked from this process exits.
    """
    global _installed
    with _lock:
        for phase in _hooks:
            _hooks[phase] = [(n, r) for n, r in _hooks[phase] if n != name]
        for phase, fn in (("before", before), ("after_in_parent", after_in_parent),
                          ("after_in_child", after_in_child), ("at_child_exit", at_child_exit)):
            if fn is not None:
                _hooks[phase].append((name, _ref(fn)))  # type: ignore[index]
        if not _installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(before=_run_before, after_in_parent=_run_parent, after_in_child=_run_child)
            _installed = True
    if at_child_exit is not None:
        _arm_multiprocessing()


class _Marker:
    """What ``multiprocessing.util.register_after_fork`` keeps a weak reference to (held here forever)."""


_MARKER = _Marker()


def _arm_multiprocessing() -> None:
    """Have every ``multiprocessing`` child forked from now on run the ``at_child_exit`` callbacks at exit.

    multiprocessing runs its after-fork list in the child after clearing the finalizers inherited from the
    parent, so the finalizer is made there, for that child; a fork not made by multiprocessing is untouched.
    That list lives in ``multiprocessing.util``, which multiprocessing imports before it starts a child: if
    the application has not imported it yet, obskit registers when it does, rather than importing
    multiprocessing into every process that calls ``init()``.
    """
    global _armed
    with _lock:
        if _armed:
            return
        _armed = True
    if "multiprocessing.util" in sys.modules:
        _register_after_fork()
        return
    from ._post_import import AfterImport

    finder = AfterImport({"multiprocessing.util"}, _register_after_fork, "arming multiprocessing children")
    _finder.append(finder)
    sys.meta_path.insert(0, finder)


_finder: list[AfterImport] = []  # the finder waiting for multiprocessing.util, while it waits


def _register_after_fork() -> None:
    """Once ``multiprocessing.util`` is imported: the after-fork registration (and no more waiting)."""
    with _lock:
        for finder in _finder:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(finder)
        _finder.clear()
    # From sys.modules: right after the module has run, the package does not have it as an attribute yet.
    util: Any = sys.modules["multiprocessing.util"]
    util.register_after_fork(_MARKER, _arm_child)


def _arm_child(_marker: object) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _run_child_exit, exitpriority=_EXIT_PRIORITY)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # the application's own handler stays in charge
        signal.signal(signal.SIGTERM, _terminated)
        _start_relay()


def _terminated(signum: int, _frame: object) -> None:
    """SIGTERM in a multiprocessing child: flush, then die of the signal as the parent expects.

    ``Pool.terminate()`` also tells idle workers to stop, so the signal can land while a worker is already
    flushing on its way out: then the flush in progress (interrupted by this handler, on the same thread)
    must be left to finish, and the worker exits by itself right after. Another SIGTERM during this flush
    (the relay's copy of this one) is ignored; the flush is bounded by the shutdown's timeout.
    """
    if _exiting:
        return
    signal.signal(signum, signal.SIG_IGN)
    try:
        _run_child_exit()
    finally:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _start_relay() -> None:
    """Pass a SIGTERM that landed on another thread on to the main thread, where its handler runs.

    The kernel hands a process's signal to any thread not blocking it, and Python runs the handler on the
    main thread only, when that thread next runs bytecode. A ``Pool`` worker's main thread can wait in C
    for good: ``Pool.terminate()`` takes the task queue's lock for itself and then sends SIGTERM, which
    kills a waiting worker only if it lands on the main thread. Landing on an export thread, it left the
    worker alive, and ``terminate()`` waiting for it forever. The wakeup fd is written by whichever thread
    the signal lands on; a daemon thread reading it sends SIGTERM to the main thread, which interrupts
    the wait. An application that sets its own wakeup fd (an asyncio loop) keeps it, without the relay.
    """
    try:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        if previous != -1:  # someone else's: theirs stays
            signal.set_wakeup_fd(previous)
            os.close(read_end)
            os.close(write_end)
            return
        threading.Thread(target=_relay, args=(read_end, threading.get_ident()), name="obskit-sigterm-relay",
                         daemon=True).start()
    except Exception as exc:
        report_internal_error("relaying SIGTERM to the main thread", exc)


def _relay(read_end: int, main: int) -> None:
    term = int(signal.SIGTERM)
    while True:
        try:
            received = os.read(read_end, 64)
        except OSError:
            return
        if not received:
            return
        if term in received and not _exiting:
            with contextlib.suppress(OSError):
                signal.pthread_kill(main, term)


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
    # The runtime's own module locks first: the callbacks below report through them, and another thread of
    # the parent may have held one at the fork (an export thread counting a failure).
    _safe.new_lock_in_child()
    _health.new_lock_in_child()
    _run("after_in_child")


def _run_child_exit() -> None:
    global _exiting
    _exiting = True
    _run("at_child_exit")
