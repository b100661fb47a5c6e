"""Tracing: span() and @traced on every kind of callable, sampling, propagation, redaction, re-init."""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry.trace import StatusCode

import obskit
from obskit.testing import Capture


def test_span_nests_and_yields_the_otel_span(obskit_capture: Capture) -> None:
    """Nested spans get parent links; the context manager yields the live OTel span."""
    with obskit.span("outer", order_id=7) as outer:
        assert outer.is_recording()
        assert trace.get_current_span() is outer
        with obskit.span("inner"):
            pass
    assert trace.get_current_span() is not outer
    inner, out = obskit_capture.span("inner"), obskit_capture.span("outer")
    assert inner.parent is not None and inner.parent.span_id == out.context.span_id
    assert out.attributes is not None and out.attributes["order_id"] == 7


def test_span_records_exception_and_error_status(obskit_capture: Capture) -> None:
    """An exception escaping the block marks the span as an error with an exception event."""
    with pytest.raises(ValueError), obskit.span("boom"):
        raise ValueError("bad card")
    sp = obskit_capture.span("boom")
    assert sp.status.status_code is StatusCode.ERROR
    assert [e.name for e in sp.events] == ["exception"]
    assert sp.events[0].attributes is not None
    assert sp.events[0].attributes["exception.type"] == "ValueError"


def test_cancellation_is_not_an_error(obskit_capture: Capture) -> None:
    """A cancelled task ends its span without error status."""

    async def main() -> None:
        async def work() -> None:
            async with obskit.span("cancelled"):
                await asyncio.sleep(10)

        task = asyncio.create_task(work())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert obskit_capture.span("cancelled").status.status_code is StatusCode.UNSET


def test_span_attributes_redacted_and_coerced(obskit_capture: Capture) -> None:
    """Sensitive keys are redacted, non-OTel values stringified, set_attribute redacted at export.

    A dotted OpenTelemetry name matches by any segment: header capture's ``http.request.header.authorization``
    is as secret as a plain ``authorization``.
    """
    with obskit.span("login", password="hunter2", user={"id": 1}, creds={"token": "t0k"},
                     tags=["a", "b"]) as sp:
        sp.set_attribute("http.request.header.authorization", "Bearer abc")
        sp.set_attribute("session", "s3cr3t")
    attrs = dict(obskit_capture.span("login").attributes or {})
    assert attrs["password"] == "[REDACTED]"
    assert attrs["session"] == "[REDACTED]"
    assert attrs["http.request.header.authorization"] == "[REDACTED]"
    assert attrs["user"] == "{'id': 1}"
    assert attrs["creds"] == "{'token': '[REDACTED]'}"
    assert attrs["tags"] == ("a", "b")


def test_user_redact_keys_apply_to_spans() -> None:
    """init(redact=[...]) extends the redacted keys for span attributes."""
    from obskit.testing import capture

    with capture(redact=["ssn"]) as cap:
        with obskit.span("p", ssn="123-45", ok=1):
            pass
        assert dict(cap.span("p").attributes or {}) == {"ssn": "[REDACTED]", "ok": 1}


def test_traced_sync_keeps_signature_and_records_errors(obskit_capture: Capture) -> None:
    """@traced on a def keeps name and signature; a raise is recorded."""

    @obskit.traced
    def charge(amount: int, *, currency: str = "EUR") -> int:
        """Charge it."""
        if amount < 0:
            raise ValueError("negative")
        return amount

    assert charge.__name__ == "charge" and charge.__doc__ == "Charge it."
    assert list(inspect.signature(charge).parameters) == ["amount", "currency"]
    assert charge(5) == 5
    with pytest.raises(ValueError):
        charge(-1)
    spans = [s for s in obskit_capture.spans if s.name.endswith("charge")]
    assert [s.status.status_code for s in spans] == [StatusCode.UNSET, StatusCode.ERROR]


def test_traced_with_name_and_attributes_async(obskit_capture: Capture) -> None:
    """@traced(name=, attributes=) on async def; the span is current inside the coroutine."""
    seen = []

    @obskit.traced(name="fetch", attributes={"peer": "db"})
    async def fetch() -> str:
        seen.append(trace.get_current_span().get_span_context().span_id)
        await asyncio.sleep(0)
        return "row"

    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.run(fetch()) == "row"
    sp = obskit_capture.span("fetch")
    assert sp.context.span_id == seen[0]
    assert (sp.attributes or {})["peer"] == "db"


def test_traced_generator_spans_whole_iteration_without_leaking(obskit_capture: Capture) -> None:
    """A traced generator's span covers all items and is not current in the caller between yields."""

    @obskit.traced
    def rows() -> Iterator[int]:
        for i in range(3):
            assert trace.get_current_span().is_recording()
            yield i

    caller_span_ids = []
    collected = []
    for item in rows():
        collected.append(item)
        caller_span_ids.append(trace.get_current_span().get_span_context().is_valid)
    assert collected == [0, 1, 2]
    assert caller_span_ids == [False, False, False]
    assert len([s for s in obskit_capture.spans if s.name.endswith("rows")]) == 1


def test_traced_generator_send_throw_and_return(obskit_capture: Capture) -> None:
    """send(), throw() and the generator's return value pass through the wrapper."""

    @obskit.traced(name="acc")
    def acc() -> Iterator[int]:
        total = 0
        while True:
            try:
                got = yield total
            except KeyError:
                got = 100
            if got is None:
                return
            total += got

    def outer() -> Iterator[int]:
        result = yield from acc()
        return result

    g = acc()
    assert next(g) == 0
    assert g.send(5) == 5
    assert g.throw(KeyError) == 105
    with pytest.raises(StopIteration):
        g.send(None)
    assert obskit_capture.span("acc").status.status_code is StatusCode.UNSET
    assert list(outer()) == [0]


def test_traced_async_generator(obskit_capture: Capture) -> None:
    """A traced async generator yields everything inside one span, current only in its body."""

    @obskit.traced(name="stream")
    async def stream() -> AsyncIterator[int]:
        for i in range(3):
            assert trace.get_current_span().is_recording()
            yield i

    async def main() -> list[int]:
        out = []
        async for x in stream():
            assert not trace.get_current_span().get_span_context().is_valid
            out.append(x)
        return out

    assert asyncio.run(main()) == [0, 1, 2]
    assert obskit_capture.span("stream").status.status_code is StatusCode.UNSET


def test_traced_generator_error_marks_span(obskit_capture: Capture) -> None:
    """An exception raised inside a traced generator is recorded on its span."""

    @obskit.traced(name="bad_rows")
    def bad_rows() -> Iterator[int]:
        yield 1
        raise RuntimeError("disk")

    with pytest.raises(RuntimeError):
        list(bad_rows())
    assert obskit_capture.span("bad_rows").status.status_code is StatusCode.ERROR


def test_concurrent_tasks_keep_their_own_spans(obskit_capture: Capture) -> None:
    """Spans opened in concurrent tasks never become each other's parents."""

    async def job(n: int) -> None:
        with obskit.span(f"job{n}"):
            await asyncio.sleep(0.01)
            with obskit.span(f"child{n}"):
                await asyncio.sleep(0.01)

    async def main() -> None:
        await asyncio.gather(*(job(i) for i in range(20)))

    asyncio.run(main())
    for i in range(20):
        child, parent = obskit_capture.span(f"child{i}"), obskit_capture.span(f"job{i}")
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
        assert parent.parent is None


def test_w3c_propagation_of_tracecontext_and_baggage(obskit_capture: Capture) -> None:
    """Outgoing headers carry traceparent and baggage; incoming ones continue the trace."""
    carrier: dict[str, str] = {}
    with obskit.span("client") as sp:
        ctx = baggage.set_baggage("tenant", "acme")
        propagate.inject(carrier, context=ctx)
        trace_id = sp.get_span_context().trace_id
    assert carrier["traceparent"].split("-")[1] == f"{trace_id:032x}"
    assert "tenant=acme" in carrier["baggage"]
    remote = propagate.extract(carrier)
    from opentelemetry import context

    token = context.attach(remote)
    try:
        with obskit.span("server") as server:
            assert server.get_span_context().trace_id == trace_id
            assert baggage.get_baggage("tenant") == "acme"
    finally:
        context.detach(token)


def test_sample_ratio_zero_records_nothing_but_children_follow_parent(fresh: None) -> None:
    """sample_ratio=0 drops new traces; a sampled remote parent is still followed (parent-based)."""
    obskit.init(service_name="s", sample_ratio=0.0, log_stream=io.StringIO(), integrations="none")
    with obskit.span("root") as sp:
        assert not sp.is_recording()
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    from opentelemetry import context

    token = context.attach(propagate.extract(headers))
    try:
        with obskit.span("child-of-sampled") as child:
            assert child.is_recording()
    finally:
        context.detach(token)


def test_resource_attributes(fresh: None) -> None:
    """The resource names service, version, environment, instance, host, process and SDK."""
    tel = obskit.init(service_name="checkout", service_version="2.1", environment="staging",
                      log_stream=io.StringIO(), integrations="none")
    attrs = dict(tel.resource.attributes)
    assert attrs["service.name"] == "checkout"
    assert attrs["service.version"] == "2.1"
    assert attrs["deployment.environment.name"] == "staging"
    for key in ("service.instance.id", "host.name", "process.pid", "telemetry.sdk.name",
                "telemetry.sdk.version", "process.runtime.name"):
        assert key in attrs, key
    assert tel.tracer_provider is not None
    assert dict(tel.tracer_provider.resource.attributes)["service.name"] == "checkout"


def test_second_init_warns_and_changes_nothing(fresh: None) -> None:
    """init() twice returns the same Telemetry and adds no processor."""
    stream = io.StringIO()
    first = obskit.init(service_name="a", log_format="json", log_stream=stream, integrations="none")
    provider = first.tracer_provider
    assert provider is not None
    before = len(provider._active_span_processor._span_processors)
    second = obskit.init(service_name="b", log_format="json", log_stream=io.StringIO())
    assert second is first and second.config.service_name == "a"
    assert len(provider._active_span_processor._span_processors) == before
    assert "called again" in stream.getvalue()


def test_existing_tracer_provider_is_reused() -> None:
    """A TracerProvider installed by someone else is joined, not replaced.

    In a fresh interpreter: OpenTelemetry's global can be set once per process, and obskit's tests must not
    reach into its private globals to undo that.
    """
    code = textwrap.dedent("""
        import io
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        import obskit
        theirs = TracerProvider()
        trace.set_tracer_provider(theirs)
        stream = io.StringIO()
        tel = obskit.init(service_name="s", log_format="json", log_stream=stream, integrations="none")
        assert tel.tracer_provider is theirs
        assert trace.get_tracer_provider() is theirs
        assert stream.getvalue().count("already installed") == 1, stream.getvalue()
        print("joined")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "joined", proc.stdout + proc.stderr


def test_disabled_sdk_makes_spans_no_ops(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true: spans are non-recording, the app still runs."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tel = obskit.init(service_name="s", log_stream=io.StringIO(), integrations="none")
    assert tel.tracer_provider is None
    with obskit.span("x") as sp:
        assert not sp.is_recording()


def test_span_before_init_becomes_real_after(fresh: None) -> None:
    """get_tracer() before init() returns a proxy that records once init() installs a provider."""
    tracer = obskit.get_tracer("early")
    with tracer.start_as_current_span("before") as sp:
        assert not sp.is_recording()
    obskit.init(service_name="s", log_stream=io.StringIO(), integrations="none")
    with tracer.start_as_current_span("after") as sp:
        assert sp.is_recording()
