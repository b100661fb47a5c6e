"""The prefork pool's metrics: one ``/metrics`` summing every child, also with ``init()`` in the tasks module.

A prefork child records its tasks in its own memory, which the worker's main process, where ``/metrics`` is
served, never sees: children must write prometheus-client's shared files instead. ``obskit run -- celery``
prepares that directory before anything else (as does ``OBSKIT_MULTIPROC_DIR`` in the environment); an
``init()`` in the tasks module runs when the worker imports the app, before it knows it will fork. So the
worker's ``worker_init`` signal, sent in the main process before the pool exists, prepares it then, as a
gunicorn master does (``OBSKIT_MULTIPROC_DIR``, else a temporary directory removed at exit). Other pools
(solo, threads, gevent, eventlet) run tasks in the main process and keep per-process metrics.
"""

from __future__ import annotations

import atexit
from typing import Any

from obskit._metrics import _multiprocess
from obskit._runtime._safe import capture_internal_exceptions

__all__ = ["prepare_prefork_metrics"]


def _is_prefork(pool_cls: Any) -> bool:
    from celery import concurrency  # type: ignore[import-untyped]
    from celery.concurrency.prefork import TaskPool  # type: ignore[import-untyped]

    cls = concurrency.get_implementation(pool_cls) if isinstance(pool_cls, str) else pool_cls
    return isinstance(cls, type) and issubclass(cls, TaskPool)


def prepare_prefork_metrics(sender: Any = None, **_kwargs: Any) -> None:
    """``worker_init`` (main process, before the pool forks): the shared directory, for a prefork pool."""
    with capture_internal_exceptions("celery: multi-worker metrics"):
        if _multiprocess.enabled() or not _is_prefork(getattr(sender, "pool_cls", None)):
            return
        from obskit.integrations import gunicorn as master  # the same role: prepare, remove at exit

        master.setup()
        atexit.register(master.on_exit, None)
