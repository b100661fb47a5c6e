"""``aio_pika`` (extra ``aio-pika``): each ``Exchange.publish`` is a PRODUCER span ``publish <destination>``
that sends ``traceparent`` in the message's headers; each message given to a ``Queue.consume`` callback, and
each message of ``queue.iterator()`` processed inside ``async with message.process():``, is a CONSUMER span
``process <destination>`` continuing the producer's trace (log lines written while it runs carry its
``trace_id``), timed by ``messaging_process_duration_seconds``; ``messaging_client_sent_messages_total``
counts what is published. Robust connections, channels and queues are covered (they subclass these).

A message taken from an iterator and never passed through ``message.process()`` has no process span: there
is no end to its processing that obskit could see. A callback that calls ``message.process()`` itself gets
one span, not two. The user's ``Message`` is never changed: a copy with ``traceparent`` added is sent.

``init()`` switches it on when the application imports aio_pika (or at once if it has). :func:`instrument`,
:func:`uninstrument` and :func:`is_instrumented` are for code that manages the instrumentation itself;
uninstrumenting puts back the very functions that were there.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration
from obskit.integrations._library_switch import LibrarySwitch

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]


_SWITCH = LibrarySwitch("aio_pika", "obskit.integrations._aio_pika_hook")
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented


INTEGRATION = Integration(
    name="aio_pika",
    extra="aio-pika",
    requires={"aio-pika": "9"},
    setup=_SWITCH.setup,
)
