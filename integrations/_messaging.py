"""What the RabbitMQ integrations (``pika``, ``aio_pika``) record the same way, by the messaging semantic
conventions: a PRODUCER span per message published, a CONSUMER span per message processed, ``traceparent``
carried in the message headers between them, and two metrics.

- publishing: span ``publish <destination>`` (``messaging.operation.name`` is RabbitMQ's ``publish``, its
  ``messaging.operation.type`` the conventions' ``send``), one ``messaging.client.sent.messages``;
- processing: span ``process <destination>``, whose parent is the producer's context read from the headers,
  made current while the callback runs (its log lines carry the producer's ``trace_id``), timed by
  ``messaging.process.duration``;
- pulling one message (``basic_get``): span ``receive <queue>``, in the caller's trace, linked to the
  producer's context.

The destination is the exchange, or the routing key when publishing to the default exchange (``""``), which
is the queue's name; the same on both sides, so ``publish orders`` pairs with ``process orders``. A
server-named queue (``amq.gen-…``, an RPC reply queue) is anonymous: its name stays on the span
(``messaging.destination.anonymous``) but not in the span name nor in a metric label, which would otherwise
get one series per reply queue.

Every method here that a hook calls on the user's path returns None or does nothing when it fails, after
reporting once: telemetry never breaks a publish or a callback. Imports no messaging library.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from obskit._runtime._safe import report_internal_error

__all__ = [
    "PROCESS_DURATION",
    "SENT",
    "SYSTEM",
    "Delivery",
    "MessagingRecorder",
    "Operation",
    "destination",
]

SYSTEM = "rabbitmq"
#: Exposed as ``messaging_client_sent_messages_total``.
SENT = "messaging.client.sent.messages"
#: Exposed as ``messaging_process_duration_seconds``.
PROCESS_DURATION = "messaging.process.duration"
DEFAULT_EXCHANGE = "amq.default"
_ANONYMOUS = "amq.gen-"


def destination(exchange: str | None, routing_key: str | None) -> str:
    """The exchange, or the routing key (the queue) for the default exchange, or ``amq.default``."""
    return exchange or routing_key or DEFAULT_EXCHANGE


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the spans and metrics say about one message, read from the library's own objects."""

    exchange: str | None
    routing_key: str | None
    host: str | None = None
    port: int | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    body_size: int | None = None
    queue: str | None = None
    delivery_tag: int | None = None


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """AMQP header values come back as ``str`` or ``bytes`` (pika keeps undecodable ones as bytes)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray)):
            return [bytes(value).decode("utf-8", "replace")]
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [str(k) for k in carrier]


_GETTER = _HeaderGetter()


def _error_type(exc: BaseException) -> str:
    return type(exc).__qualname__


class Operation:
    """One traced publish or process: :meth:`end` closes it, exactly once, and never raises."""

    __slots__ = ("_counter", "_histogram", "_metric", "_span", "_start", "_token", "headers")

    def __init__(self, span: Span, metric: Mapping[str, Any], headers: dict[str, Any] | None = None,
                 counter: Any = None, histogram: Any = None, token: object | None = None) -> None:
        self._span = span
        self._metric = metric
        self._counter = counter
        self._histogram = histogram
        self._token = token
        self._start = time.perf_counter()
        #: For a publish: the user's headers plus ``traceparent``, to send instead of the user's.
        self.headers = headers

    def end(self, error: BaseException | None) -> None:
        """Record the outcome (``error``: what the publish or the callback raised, if it did).

        The metrics are recorded while the process span is still current, so their exemplar is its trace;
        the context is detached and the span ended whatever happens before.
        """
        try:
            try:
                elapsed = time.perf_counter() - self._start
                metric = self._metric
                if error is not None:
                    error_type = _error_type(error)
                    metric = {**metric, "error.type": error_type}
                    self._span.set_attribute("error.type", error_type)
                    self._span.record_exception(error)
                    self._span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error}"))
                if self._counter is not None:
                    self._counter.add(1, attributes=metric)
                if self._histogram is not None:
                    self._histogram.record(elapsed, attributes=metric)
            finally:
                if self._token is not None:
                    token, self._token = self._token, None
                    otel_context.detach(token)  # type: ignore[arg-type]
                self._span.end()
        except Exception as exc:
            report_internal_error("rabbitmq: ending a span", exc)


class MessagingRecorder:
    """The tracer and the two instruments of one library (``scope``), and the attributes they record."""

    #: Destinations repeat, so the attributes derived from one are kept (bounded: routing keys may not).
    CACHE_SIZE = 1024

    def __init__(self, scope: str, version: str) -> None:
        # Imported here, when the application has imported a messaging library, not when the registry reads
        # pika's and aio_pika's declarations in every init(): it loads the propagators (2.5 ms).
        from opentelemetry import propagate

        self._propagate = propagate
        self.tracer = trace.get_tracer(scope, version)
        meter = metrics.get_meter(scope, version)
        self.sent = meter.create_counter(
            SENT, unit="{message}", description="Number of messages the producer attempted to send.")
        self.duration = meter.create_histogram(
            PROCESS_DURATION, unit="s", description="Duration of processing operation.")
        self._cache: dict[tuple[Any, ...], tuple[str, dict[str, Any], dict[str, Any]]] = {}

    def _attributes(self, operation: str, kind: str, delivery: Delivery,
                    target: str | None = None) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(span name, span attributes, metric attributes) common to every message of one destination."""
        key = (operation, delivery.exchange, delivery.routing_key, delivery.host, delivery.port,
               delivery.queue, target)
        found = self._cache.get(key)
        if found is not None:
            return found
        name = target if target is not None else destination(delivery.exchange, delivery.routing_key)
        anonymous = name.startswith(_ANONYMOUS)
        metric: dict[str, Any] = {"messaging.system": SYSTEM, "messaging.operation.name": operation}
        if not anonymous:
            metric["messaging.destination.name"] = name
        if delivery.host:
            metric["server.address"] = delivery.host
        if delivery.port:
            metric["server.port"] = delivery.port
        span: dict[str, Any] = {**metric, "messaging.operation.type": kind,
                                "messaging.destination.name": name}
        if anonymous:
            span["messaging.destination.anonymous"] = True
        if delivery.routing_key:
            span["messaging.rabbitmq.destination.routing_key"] = delivery.routing_key
        if delivery.queue:
            span["messaging.destination.subscription.name"] = delivery.queue
        found = (operation if anonymous else f"{operation} {name}", span, metric)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = found
        return found

    @staticmethod
    def _per_message(span: dict[str, Any], delivery: Delivery) -> dict[str, Any]:
        attributes = dict(span)
        for key, value in (("messaging.message.id", delivery.message_id),
                           ("messaging.message.conversation_id", delivery.correlation_id),
                           ("messaging.message.body.size", delivery.body_size),
                           ("messaging.rabbitmq.message.delivery_tag", delivery.delivery_tag)):
            if value is not None and value != "":
                attributes[key] = value
        return attributes

    def send(self, delivery: Delivery, headers: Mapping[str, Any] | None) -> Operation | None:
        """Start the PRODUCER span of one publish; its ``headers`` are ``headers`` plus ``traceparent``.

        The span is not made current: nothing the library does while publishing is traced under it.
        """
        try:
            name, span_attrs, metric = self._attributes("publish", "send", delivery)
            span = self.tracer.start_span(name, kind=SpanKind.PRODUCER,
                                          attributes=self._per_message(span_attrs, delivery))
            carrier = dict(headers) if headers else {}
            self._propagate.inject(carrier, context=trace.set_span_in_context(span))
            return Operation(span, metric, headers=carrier, counter=self.sent)
        except Exception as exc:
            report_internal_error("rabbitmq: starting a publish span", exc)
            return None

    def process(self, delivery: Delivery, headers: Mapping[str, Any] | None) -> Operation | None:
        """Start the CONSUMER span of one message's processing, child of the producer's context, and make
        it current until :meth:`Operation.end`."""
        try:
            name, span_attrs, metric = self._attributes("process", "process", delivery)
            parent = self._propagate.extract(headers or {}, getter=_GETTER)
            span = self.tracer.start_span(name, context=parent, kind=SpanKind.CONSUMER,
                                          attributes=self._per_message(span_attrs, delivery))
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            return Operation(span, metric, histogram=self.duration, token=token)
        except Exception as exc:
            report_internal_error("rabbitmq: starting a process span", exc)
            return None

    def received(self, delivery: Delivery, headers: Mapping[str, Any] | None, start_ns: int,
                 error: BaseException | None = None) -> None:
        """The CONSUMER span of one pull from ``delivery.queue`` (``basic_get``) that began at ``start_ns``:
        in the caller's trace, linked to the producer's context when a message came back with one."""
        try:
            target = delivery.queue or ""
            name, span_attrs, _ = self._attributes("receive", "receive", delivery, target=target)
            links: list[Link] = []
            if headers:
                producer = trace.get_current_span(self._propagate.extract(headers, getter=_GETTER,
                                                                          context=otel_context.Context()))
                if producer.get_span_context().is_valid:
                    links = [Link(producer.get_span_context())]
            span = self.tracer.start_span(name, kind=SpanKind.CONSUMER, links=links, start_time=start_ns,
                                          attributes=self._per_message(span_attrs, delivery))
            Operation(span, {}).end(error)
        except Exception as exc:
            report_internal_error("rabbitmq: recording a receive span", exc)
