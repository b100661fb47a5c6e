"""One execution of a Celery task, as obskit records it: metrics, ``run`` span attributes, log fields.

OpenTelemetry's instrumentor makes the spans (``apply_async/<task>`` on send, ``run/<task>`` per execution);
these receivers of Celery's signals add what it leaves out:

- on send (``before_task_publish``), the publish time as a message header (:data:`SENT_AT`): Celery's
  messages carry none, and the queue wait is measured from it;
- at the start of an execution (``task_prerun``, connected after the instrumentor's, inside the ``run``
  span): ``celery.task.queue_wait`` (publish, or the ETA when later, to now), the span's ``celery.task_id``
  and ``celery.retries``, and ``task_name`` / ``task_id`` bound as log fields (structlog contextvars, which
  both stdlib and structlog lines read), so every line the task writes names it;
- at its end (``task_postrun``, connected *before* the instrumentor's, which ends the span):
  ``celery.task.duration`` labelled ``outcome`` (``success``, ``failure``, ``retry``; ``rejected`` and
  ``ignored`` when a task raises those), the span's ``celery.outcome``, and the log fields unbound.

Metrics go through the OpenTelemetry metrics API (obskit's provider: ``celery_task_duration_seconds`` and
``celery_task_queue_wait_seconds`` on ``/metrics``, summed over prefork children in multiprocess mode), once
per execution. The per-execution state lives on the request Celery pushes for it (thread-local), so the
threads pool needs no lock. Every receiver guards its own work: a telemetry failure never fails a task.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime
from typing import Any

from opentelemetry import trace
from structlog.contextvars import bind_contextvars, reset_contextvars

from obskit._runtime._safe import capture_internal_exceptions

__all__ = ["SENT_AT", "on_postrun", "on_prerun", "on_publish"]

#: Message header holding the publish time (seconds since the epoch, as a string: every transport keeps it).
SENT_AT = "obskit_sent_at"
_STATE = "_obskit_execution"  # attribute on the request Context: (start, log-field tokens)
# Tasks run from milliseconds to hours, and wait as long: the HTTP buckets stop at 10 s.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            1800.0, 3600.0)
_OUTCOMES = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry", "REJECTED": "rejected",
             "IGNORED": "ignored"}

@functools.cache
def _meter_instruments() -> tuple[Any, Any]:
    """(duration, queue wait): histograms of the OpenTelemetry metrics API, made on first use."""
    from opentelemetry import metrics

    meter = metrics.get_meter("obskit.integrations.celery")
    return (meter.create_histogram("celery.task.duration", unit="s",
                                   description="Run time of each Celery task execution, by outcome.",
                                   explicit_bucket_boundaries_advisory=_BUCKETS),
            meter.create_histogram("celery.task.queue_wait", unit="s",
                                   description="Time from publish (or ETA) to the start of execution.",
                                   explicit_bucket_boundaries_advisory=_BUCKETS))


def on_publish(headers: Any = None, **_kwargs: Any) -> None:
    """``before_task_publish``: stamp the message with its publish time (a retry is stamped again)."""
    with capture_internal_exceptions("celery: publish time header"):
        if isinstance(headers, dict):
            headers[SENT_AT] = repr(time.time())


def _ready_at(request: Any) -> float | None:
    """When the message could start: its publish time, or its ETA when that is later; None if unknown."""
    sent = request.get(SENT_AT)
    if sent is None:
        return None  # a producer without obskit: no queue wait to report
    ready = float(sent)
    eta = request.get("eta")
    if eta:
        eta_s = (eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))).timestamp()
        ready = max(ready, eta_s)
    return ready


def on_prerun(task: Any = None, task_id: str | None = None, **_kwargs: Any) -> None:
    """``task_prerun`` (after the instrumentor's: its ``run`` span is current)."""
    if task is None or task_id is None:
        return
    with capture_internal_exceptions("celery: task start"):
        request = task.request
        start = time.perf_counter()
        tokens = bind_contextvars(task_name=task.name, task_id=task_id)
        setattr(request, _STATE, (start, tokens))
        retries = int(request.get("retries") or 0)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("celery.task_id", task_id)
            span.set_attribute("celery.retries", retries)
        ready = _ready_at(request)
        if ready is not None:
            _meter_instruments()[1].record(max(time.time() - ready, 0.0), {"task_name": task.name})


def on_postrun(task: Any = None, state: str | None = None, **_kwargs: Any) -> None:
    """``task_postrun`` (before the instrumentor's, which ends the span)."""
    if task is None:
        return
    with capture_internal_exceptions("celery: task end"):
        request = task.request
        started = getattr(request, _STATE, None)
        if started is None:
            return  # no prerun of ours for this execution: nothing to record once
        setattr(request, _STATE, None)
        start, tokens = started
        reset_contextvars(**tokens)
        outcome = _OUTCOMES.get(str(state), "failure")  # None: a BaseException left the task
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("celery.outcome", outcome)
        _meter_instruments()[0].record(max(time.perf_counter() - start, 0.0),
                                       {"task_name": task.name, "outcome": outcome})
