"""``pika``: each message published is a PRODUCER span ``publish <destination>`` that puts ``traceparent`` in
the message's headers; each message a consumer callback gets is a CONSUMER span ``process <destination>``
continuing the producer's trace (the callback's log lines carry its ``trace_id``), timed by
``messaging_process_duration_seconds``; ``messaging_client_sent_messages_total`` counts what is published.

Covered: ``BlockingChannel.basic_publish`` / ``basic_consume`` / ``consume`` (each message yielded is
processed in its span until the loop asks for the next one) / ``basic_get`` (a ``receive <queue>`` span
linked to the producer), and the channel of the other connection adapters (select, asyncio, tornado,
gevent): ``basic_publish`` and ``basic_consume`` (twisted's publishes go through it too). Methods are
wrapped on the classes, so channels opened before ``init()`` are covered too. ``init()`` switches it on
when the application imports pika (or at once if it has); it never imports pika itself. The user's
``BasicProperties`` and headers are never changed: a copy with ``traceparent`` added is sent.

:func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that manages the
instrumentation itself; uninstrumenting puts back the very functions that were there.
"""

from __future__ import annotations

from obskit.integrations._contract import Integration
from obskit.integrations._library_switch import LibrarySwitch

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]


_SWITCH = LibrarySwitch("pika", "obskit.integrations._pika_hook")
instrument = _SWITCH.instrument
uninstrument = _SWITCH.uninstrument
is_instrumented = _SWITCH.is_instrumented


INTEGRATION = Integration(
    name="pika",
    extra="pika",
    requires={"pika": "1.3"},
    setup=_SWITCH.setup,
)
