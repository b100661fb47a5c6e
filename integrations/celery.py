"""``celery``: each task a worker runs is a CONSUMER span, each ``delay()``/``apply_async()`` a PRODUCER span
that sends ``traceparent`` with the message (OpenTelemetry's Celery instrumentor); the task's log lines carry
its ``trace_id``, and its run time is recorded (``flower_task_runtime_seconds``).

The worker leaves logging to obskit: by default it empties the root logger (obskit's handler with it) and
redirects ``print`` into logging; a receiver of its ``setup_logging`` signal is how Celery is told not to.
Prefork pool children end with ``os._exit()``, past ``atexit``: a child flushes what it recorded before it
exits (``patches``, installed whatever ``integrations=`` says). Under ``obskit run -- celery -A app worker``
the main process also prepares the shared metrics directory, so one scrape sums every child.
"""

from __future__ import annotations

from typing import Any

from obskit.integrations._contract import Integration, Teardown, load, otel_instrumentor
from obskit.integrations._server_hooks import flushing_before

from obskit._config import Config

_instrument = otel_instrumentor("celery", "opentelemetry.instrumentation.celery", "CeleryInstrumentor")
_UID = "obskit.integrations.celery"


def _leave_logging_to_obskit(**_kwargs: Any) -> None:
    """Connected to ``celery.signals.setup_logging``: with a receiver, Celery configures no logging."""


def setup(config: Config) -> Teardown | None:
    """Instrument Celery and keep the worker's hands off logging; None when it was instrumented already."""
    signals = load("celery.signals")
    undo = _instrument(config)
    if undo is None:
        return None
    signals.setup_logging.connect(_leave_logging_to_obskit, weak=False, dispatch_uid=_UID)

    def teardown() -> None:
        signals.setup_logging.disconnect(_leave_logging_to_obskit, dispatch_uid=_UID)
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
