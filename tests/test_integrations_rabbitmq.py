"""RabbitMQ integrations (``pika``, ``aio_pika``) against the real broker on 127.0.0.1:5672 (guest/guest): the
trace continues through the message, headers are kept, the metrics count what happened, and switching the
hooks on and off leaves the libraries as they were. Each test uses its own queue and deletes it."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import require
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from red_metrics import OPENMETRICS, Sample, samples

import obskit
from obskit._metrics._exposition import render
from obskit.testing import Capture, capture

pika = pytest.importorskip("pika")
aio_pika = pytest.importorskip("aio_pika")

from obskit.integrations import aio_pika as aio_pika_integration  # noqa: E402
from obskit.integrations import pika as pika_integration  # noqa: E402

URL = "amqp://guest:guest@127.0.0.1:5672/"
SENT = "messaging_client_sent_messages_total"
PROCESS = "messaging_process_duration_seconds"


def _reachable() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 5672)) == 0


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue name of this test's own, declared on the broker and deleted afterwards."""
    require(_reachable(), "RabbitMQ is not reachable on 127.0.0.1:5672")
    name = f"obskit-test-{uuid.uuid4().hex[:12]}"
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        conn.channel().queue_declare(name)
        yield name
    finally:
        conn.close()
        cleanup = pika.BlockingConnection(pika.URLParameters(URL))
        cleanup.channel().queue_delete(name)
        cleanup.close()


def _open() -> tuple[Any, Any]:
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    return conn, conn.channel()


def _drain(conn: Any, done: Callable[[], bool]) -> None:
    """Let the blocking connection dispatch deliveries until ``done()`` (at most 20 s)."""
    deadline = time.monotonic() + 20
    while not done() and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.2)
    assert done(), "the messages did not arrive"


def _kind(cap: Capture, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in cap.spans if s.kind is kind]


def _scrape() -> list[Sample]:
    return samples(render(OPENMETRICS)[0].decode())


def _total(found: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in found
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _trace_id(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def _assert_continues(producer: ReadableSpan, consumer: ReadableSpan) -> None:
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id


# --- pika ---------------------------------------------------------------------------------------------------


def test_pika_blocking_publish_and_callback_continue_one_trace(queue: str) -> None:
    """A publish inside a span is a PRODUCER span under it; the basic_consume callback runs in a CONSUMER span
    whose parent is that producer span, with the semantic-convention attributes; the user's headers arrive
    with traceparent beside them and the user's properties object is not changed."""
    seen: list[dict[str, Any]] = []
    with capture(integrations=["pika"]) as cap:
        conn, ch = _open()
        props = pika.BasicProperties(headers={"tenant": "acme"}, message_id="m-1", correlation_id="c-1")
        with obskit.span("checkout"):
            ch.basic_publish("", queue, b"order", props)

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            seen.append(dict(properties.headers))
            channel.basic_ack(method.delivery_tag)

        ch.basic_consume(queue, on_message)
        _drain(conn, lambda: bool(seen))
        conn.close()
        checkout = cap.span("checkout")
        (producer,) = _kind(cap, SpanKind.PRODUCER)
        (consumer,) = _kind(cap, SpanKind.CONSUMER)
    assert props.headers == {"tenant": "acme"}
    assert seen[0]["tenant"] == "acme" and seen[0]["traceparent"].startswith(f"00-{_trace_id(checkout)}-")
    assert producer.parent is not None and producer.parent.span_id == checkout.context.span_id
    _assert_continues(producer, consumer)
    assert producer.name == f"publish {queue}" and consumer.name == f"process {queue}"
    assert producer.attributes is not None and consumer.attributes is not None
    assert {k: producer.attributes.get(k) for k in (
        "messaging.system", "messaging.destination.name", "messaging.rabbitmq.destination.routing_key",
        "messaging.operation.type", "messaging.message.id", "messaging.message.conversation_id",
        "server.address", "server.port")} == {
        "messaging.system": "rabbitmq", "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": queue, "messaging.operation.type": "send",
        "messaging.message.id": "m-1", "messaging.message.conversation_id": "c-1",
        "server.address": "127.0.0.1", "server.port": 5672}
    assert consumer.attributes["messaging.operation.type"] == "process"
    assert consumer.attributes["messaging.destination.subscription.name"] == queue


def test_pika_callback_log_line_carries_the_producer_trace(queue: str) -> None:
    """A log line written in the consumer callback carries the producer's trace_id, and so does the process
    duration's exemplar."""
    with capture(integrations=["pika"]) as cap:
        conn, ch = _open()
        with obskit.span("send"):
            ch.basic_publish("", queue, b"x")  # no properties: headers are created for traceparent
        done: list[bool] = []

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            logging.getLogger("shop.worker").warning("handling order")
            done.append(True)

        ch.basic_consume(queue, on_message, auto_ack=True)
        _drain(conn, lambda: bool(done))
        conn.close()
        (line,) = cap.events("handling order")
        trace_id = _trace_id(cap.span("send"))
        found = _scrape()
    assert line["trace_id"] == trace_id
    exemplars = {x.exemplar.labels["trace_id"] for x in found if x.name == f"{PROCESS}_bucket"
                 and x.labels.get("messaging_destination_name") == queue and x.exemplar is not None}
    assert exemplars == {trace_id}


def test_pika_counts_on_one_scrape_equal_the_messages(queue: str) -> None:
    """N messages published and consumed: on one scrape the sent counter and the process histogram's count
    for the destination are both N."""
    n = 3
    with capture(integrations=["pika"]):
        conn, ch = _open()
        for i in range(n):
            ch.basic_publish("", queue, str(i).encode())
        got: list[bytes] = []
        ch.basic_consume(queue, lambda c, m, p, b: got.append(b), auto_ack=True)
        _drain(conn, lambda: len(got) == n)
        conn.close()
        found = _scrape()
    labels = {"messaging_system": "rabbitmq", "messaging_destination_name": queue}
    assert _total(found, SENT, messaging_operation_name="publish", **labels) == n
    assert _total(found, f"{PROCESS}_count", messaging_operation_name="process", **labels) == n
    assert _total(found, f"{PROCESS}_count", error_type="ValueError", **labels) == 0


def test_pika_raising_callback_propagates_and_records_error_type(queue: str) -> None:
    """A callback's exception leaves process_data_events unchanged; its span is an error with error.type, and
    the duration is recorded with error_type."""
    boom = ValueError("bad order")
    with capture(integrations=["pika"]) as cap:
        conn, ch = _open()
        ch.basic_publish("", queue, b"x")

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            raise boom

        ch.basic_consume(queue, on_message, auto_ack=True)
        with pytest.raises(ValueError) as raised:
            _drain(conn, lambda: False)
        conn.close()
        (consumer,) = _kind(cap, SpanKind.CONSUMER)
        found = _scrape()
    assert raised.value is boom
    assert consumer.status.status_code is StatusCode.ERROR
    assert consumer.attributes is not None and consumer.attributes["error.type"] == "ValueError"
    assert _total(found, f"{PROCESS}_count", messaging_destination_name=queue, error_type="ValueError") == 1


def test_pika_consume_generator_and_basic_get(queue: str) -> None:
    """BlockingChannel.consume: each yielded message is processed in a CONSUMER span continuing the producer's
    trace until the loop moves on (a line logged in the loop carries it); basic_get is a receive span linked
    to the producer."""
    with capture(integrations=["pika"]) as cap:
        conn, ch = _open()
        with obskit.span("first"):
            ch.basic_publish("", queue, b"1")
        for method, _properties, _body in ch.consume(queue, auto_ack=True, inactivity_timeout=20):
            assert method is not None
            logging.getLogger("shop.worker").warning("in the loop")
            break
        ch.cancel()
        with obskit.span("second"):
            ch.basic_publish("", queue, b"2")
        deadline = time.monotonic() + 20
        got = ch.basic_get(queue, auto_ack=True)
        while got[0] is None and time.monotonic() < deadline:
            got = ch.basic_get(queue, auto_ack=True)
        conn.close()
        first, second = cap.span("first"), cap.span("second")
        (process,) = [s for s in cap.spans if s.name == f"process {queue}"]
        producers = {s.context.trace_id: s for s in _kind(cap, SpanKind.PRODUCER)}
        received = [s for s in cap.spans if s.name == f"receive {queue}" and s.links]
        (line,) = cap.events("in the loop")
    _assert_continues(producers[first.context.trace_id], process)
    assert line["trace_id"] == _trace_id(first)
    assert got[2] == b"2" and len(received) == 1
    assert received[0].links[0].context.span_id == producers[second.context.trace_id].context.span_id


def test_pika_select_connection_publish_and_consume(queue: str) -> None:
    """The asynchronous adapters' channel (SelectConnection here): basic_publish is a PRODUCER span and the
    basic_consume callback a CONSUMER span continuing its trace, one of each per message."""
    got: list[bytes] = []

    def on_open(connection: Any) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Any) -> None:
        with obskit.span("send"):
            channel.basic_publish("", queue, b"async order")

        def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            got.append(body)
            ch.connection.close()

        channel.basic_consume(queue, on_message, auto_ack=True)

    with capture(integrations=["pika"]) as cap:
        conn = pika.SelectConnection(pika.URLParameters(URL), on_open_callback=on_open,
                                     on_close_callback=lambda c, reason: c.ioloop.stop())
        conn.ioloop.call_later(20, conn.ioloop.stop)
        conn.ioloop.start()
        send = cap.span("send")
        (producer,) = _kind(cap, SpanKind.PRODUCER)
        (consumer,) = _kind(cap, SpanKind.CONSUMER)
    assert got == [b"async order"]
    assert producer.parent is not None and producer.parent.span_id == send.context.span_id
    _assert_continues(producer, consumer)


def test_pika_server_named_queue_is_not_a_series_of_its_own() -> None:
    """A server-named (amq.gen-…) reply queue keeps its name on the span, marked anonymous, but the span is
    named "publish" and the sent count carries no destination label for it."""
    require(_reachable(), "RabbitMQ is not reachable on 127.0.0.1:5672")
    with capture(integrations=["pika"]) as cap:
        conn, ch = _open()
        reply = ch.queue_declare("", exclusive=True).method.queue  # deleted with the connection
        ch.basic_publish("", reply, b"answer")
        conn.close()
        (producer,) = _kind(cap, SpanKind.PRODUCER)
        found = _scrape()
    assert reply.startswith("amq.gen-") and producer.name == "publish"
    assert producer.attributes is not None and producer.attributes["messaging.destination.name"] == reply
    assert producer.attributes["messaging.destination.anonymous"] is True
    assert not [s for s in found if s.name == SENT and s.labels.get("messaging_destination_name") == reply]
    assert [s.value for s in found if s.name == SENT and "messaging_destination_name" not in s.labels] == [1]


def test_pika_telemetry_failure_never_reaches_the_user(queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the span attributes failing to build, publishing and consuming still work, untraced."""
    from obskit.integrations import _messaging

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("telemetry broke")

    with capture(integrations=["pika"]) as cap:
        monkeypatch.setattr(_messaging.MessagingRecorder, "_attributes", broken)
        conn, ch = _open()
        ch.basic_publish("", queue, b"still sent", pika.BasicProperties(headers={"k": "v"}))
        got: list[tuple[bytes, Any]] = []
        ch.basic_consume(queue, lambda c, m, p, b: got.append((b, p.headers)), auto_ack=True)
        _drain(conn, lambda: bool(got))
        conn.close()
        spans = _kind(cap, SpanKind.PRODUCER) + _kind(cap, SpanKind.CONSUMER)
    assert got == [(b"still sent", {"k": "v"})] and spans == []


def test_pika_instrument_twice_then_uninstrument_restores_the_originals(fresh: None) -> None:
    """instrument() twice wraps once; uninstrument() puts back the very functions pika defined."""
    import pika.channel
    from pika.adapters.blocking_connection import BlockingChannel

    methods = {(cls, name): cls.__dict__[name] for cls, names in (
        (pika.channel.Channel, ("basic_publish", "basic_consume")),
        (BlockingChannel, ("basic_publish", "basic_consume", "consume", "basic_get"))) for name in names}
    assert not pika_integration.is_instrumented()
    assert pika_integration.instrument() is True
    wrapped = {key: key[0].__dict__[key[1]] for key in methods}
    assert pika_integration.instrument() is False
    assert all(key[0].__dict__[key[1]] is wrapped[key] is not original for key, original in methods.items())
    pika_integration.uninstrument()
    assert not pika_integration.is_instrumented()
    assert all(key[0].__dict__[key[1]] is original for key, original in methods.items())


def test_init_auto_hooks_pika_and_aio_pika_when_they_are_imported() -> None:
    """init() with integrations="auto" does not import pika or aio_pika; importing them afterwards switches
    the hooks on, and shutting obskit down switches them off."""
    code = textwrap.dedent("""
        import io, sys
        import obskit
        obskit.init(service_name="t", otlp_endpoint=None, metrics_port=None, log_stream=io.StringIO())
        assert "pika" not in sys.modules and "aio_pika" not in sys.modules
        import pika, aio_pika
        from pika.adapters.blocking_connection import BlockingChannel
        print(hasattr(BlockingChannel.basic_publish, "__wrapped__"),
              hasattr(aio_pika.Exchange.publish, "__wrapped__"))
        obskit.testing.reset()
        print(hasattr(BlockingChannel.basic_publish, "__wrapped__"),
              hasattr(aio_pika.Exchange.publish, "__wrapped__"))
    """)
    proc = subprocess.run([sys.executable, "-c", "import obskit.testing\n" + code], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["True True", "False False"]


# --- aio-pika -----------------------------------------------------------------------------------------------


async def _aio_channel() -> tuple[Any, Any]:
    conn = await aio_pika.connect_robust(URL)
    return conn, await conn.channel()


def test_aio_pika_publish_and_consume_continue_one_trace(queue: str) -> None:
    """Exchange.publish inside a span is a PRODUCER span under it; the Queue.consume callback (which uses
    message.process() itself) is one CONSUMER span child of it; user headers arrive beside traceparent and
    the user's Message is unchanged; a line logged in the callback carries the trace."""
    seen: list[dict[str, Any]] = []

    async def main() -> aio_pika.Message:
        conn, ch = await _aio_channel()
        async with conn:
            message = aio_pika.Message(b"order", headers={"tenant": "acme"}, message_id="m-1")
            with obskit.span("checkout"):
                await ch.default_exchange.publish(message, routing_key=queue)
            done = asyncio.Event()

            async def on_message(incoming: Any) -> None:
                async with incoming.process():
                    logging.getLogger("shop.worker").warning("handling order")
                    seen.append(dict(incoming.headers))
                done.set()

            q = await ch.get_queue(queue)
            tag = await q.consume(on_message)
            await asyncio.wait_for(done.wait(), 20)
            await q.cancel(tag)
        return message

    with capture(integrations=["aio_pika"]) as cap:
        message = asyncio.run(main())
        checkout = cap.span("checkout")
        (producer,) = _kind(cap, SpanKind.PRODUCER)
        (consumer,) = _kind(cap, SpanKind.CONSUMER)
        (line,) = cap.events("handling order")
    assert message.headers == {"tenant": "acme"}
    assert seen[0]["tenant"] == "acme" and "traceparent" in seen[0]
    assert producer.parent is not None and producer.parent.span_id == checkout.context.span_id
    _assert_continues(producer, consumer)
    assert producer.name == f"publish {queue}" and consumer.name == f"process {queue}"
    assert producer.attributes is not None and producer.attributes["messaging.message.id"] == "m-1"
    assert producer.attributes["server.address"] == "127.0.0.1" and producer.attributes["server.port"] == 5672
    assert line["trace_id"] == _trace_id(checkout)


def test_aio_pika_iterator_process_counts_and_errors(queue: str) -> None:
    """queue.iterator() messages processed with message.process() are CONSUMER spans continuing their
    producer's trace; an exception in process() propagates unchanged and is recorded; on one scrape the sent
    counter and the process count equal the messages, one of them with error_type."""
    n = 3
    boom = KeyError("missing")

    async def main() -> None:
        conn, ch = await _aio_channel()
        async with conn:
            for i in range(n):
                with obskit.span(f"send-{i}"):
                    await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=queue)
            q = await ch.get_queue(queue)
            handled = 0
            async with q.iterator() as messages:
                async for incoming in messages:
                    handled += 1
                    if handled < n:
                        async with incoming.process():
                            pass
                    else:
                        with pytest.raises(KeyError) as raised:
                            async with incoming.process():
                                raise boom
                        assert raised.value is boom
                        break

    with capture(integrations=["aio_pika"]) as cap:
        asyncio.run(main())
        producers = {s.context.trace_id: s for s in _kind(cap, SpanKind.PRODUCER)}
        consumers = _kind(cap, SpanKind.CONSUMER)
        found = _scrape()
    assert len(consumers) == n
    for consumer in consumers:
        _assert_continues(producers[consumer.context.trace_id], consumer)
    (failed,) = [s for s in consumers if s.status.status_code is StatusCode.ERROR]
    assert failed.attributes is not None and failed.attributes["error.type"] == "KeyError"
    labels = {"messaging_system": "rabbitmq", "messaging_destination_name": queue}
    assert _total(found, SENT, **labels) == n
    assert _total(found, f"{PROCESS}_count", **labels) == n
    assert _total(found, f"{PROCESS}_count", error_type="KeyError", **labels) == 1


def test_aio_pika_instrument_twice_then_uninstrument_restores_the_originals(fresh: None) -> None:
    """instrument() twice wraps once; uninstrument() puts back the very functions aio-pika defined."""
    import aio_pika.message

    methods = {(cls, name): cls.__dict__[name] for cls, name in (
        (aio_pika.Exchange, "publish"), (aio_pika.Queue, "consume"),
        (aio_pika.message.IncomingMessage, "process"))}
    assert not aio_pika_integration.is_instrumented()
    assert aio_pika_integration.instrument() is True
    assert aio_pika_integration.instrument() is False
    assert all(key[0].__dict__[key[1]] is not original for key, original in methods.items())
    aio_pika_integration.uninstrument()
    assert all(key[0].__dict__[key[1]] is original for key, original in methods.items())
