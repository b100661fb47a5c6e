"""``celery``: each ``delay()``/``apply_async()`` is a PRODUCER span that sends ``traceparent`` (and the
publish time) with the message, each execution a CONSUMER ``run/<task>`` span continuing it
(OpenTelemetry's Celery instrumentor). obskit adds, per execution (:mod:`._celery_task`):
``celery_task_duration_seconds{task_name,outcome}``, ``celery_task_queue_wait_seconds{task_name}``, the
span's ``celery.task_id`` / ``celery.retries`` / ``celery.outcome``, and ``task_name`` / ``task_id`` on
every line the task writes. The instrumentor's ``flower.task.runtime.seconds`` is switched off: the
duration above replaces it.

The worker leaves logging to obskit: by default it empties the root logger (obskit's handler with it) and
redirects ``print`` into logging (each line then wrapped in Celery's own format); a receiver of its
``setup_logging`` signal is how Celery is told not to. Prefork pool children end with ``os._exit()``, past
``atexit``: a child flushes what it recorded before it exits (``patches``, installed whatever
``integrations=`` says), so ``--max-tasks-per-child`` loses nothing. Their metrics are summed on the main
process's ``/metrics`` through the multiprocess directory, which ``obskit run -- celery`` prepares at
start-up and an ``init()`` in the tasks module when the worker starts (:mod:`._celery_pool`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from obskit.integrations._contract import Integration, Teardown, load, otel_instrumentor
from obskit.integrations._server_hooks import flushing_before
from opentelemetry.metrics import NoOpMeterProvider

from obskit._config import Config

# The instrumentor's flower.task.runtime.seconds{task,worker} would duplicate celery.task.duration.
_instrument = otel_instrumentor("celery", "opentelemetry.instrumentation.celery", "CeleryInstrumentor",
                                meter_provider=NoOpMeterProvider())
_UID = "obskit.integrations.celery"


def _leave_logging_to_obskit(**_kwargs: Any) -> None:
    """Connected to ``celery.signals.setup_logging``: with a receiver, Celery configures no logging."""


def setup(config: Config) -> Teardown | None:
    """Instrument Celery, add obskit's per-execution records, keep the worker's hands off logging; None
    when it was instrumented already."""
    signals = load("celery.signals")
    from obskit.integrations import _celery_pool, _celery_task

    # Receivers run in the order they were connected: the end of an execution is recorded before the
    # instrumentor ends its span, the start after it made the span.
    connections: list[tuple[Any, Callable[..., None]]] = [(signals.task_postrun, _celery_task.on_postrun)]
    signals.task_postrun.connect(_celery_task.on_postrun, weak=False, dispatch_uid=_UID)
    undo = _instrument(config)
    if undo is None:
        signals.task_postrun.disconnect(_celery_task.on_postrun, dispatch_uid=_UID)
        return None
    connections += [(signals.task_prerun, _celery_task.on_prerun),
                    (signals.before_task_publish, _celery_task.on_publish),
                    (signals.setup_logging, _leave_logging_to_obskit),
                    (signals.worker_init, _celery_pool.prepare_prefork_metrics)]
    for signal, receiver in connections[1:]:
        signal.connect(receiver, weak=False, dispatch_uid=_UID)

    def teardown() -> None:
        for signal, receiver in connections:
            signal.disconnect(receiver, dispatch_uid=_UID)
        undo()

    return teardown


INTEGRATION = Integration(
    name="celery",
    module="celery",
    extra="celery",
    requires={"celery": "5.3", "opentelemetry-instrumentation-celery": "0.66b0"},
    setup=setup,
    patches=(("billiard.pool", "Worker", "_do_exit", flushing_before),),
)
