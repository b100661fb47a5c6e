"""OTLP log bridge: every event becomes one correlated, redacted OTel LogRecord, without feedback loops."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider

from obskit._config import resolve
from obskit._logs._api import LoggingHandle, configure_logging, get_logger
from obskit._logs._api import reset as reset_logging
from obskit._logs._otlp import coerce_attribute, severity
from obskit._runtime._safe import telemetry_section


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


class Setup:
    def __init__(self, exporter: Any = None, **options: Any) -> None:
        self.exporter = exporter if exporter is not None else InMemoryLogRecordExporter()
        self.provider = LoggerProvider(shutdown_on_exit=False)
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))
        self.stream = io.StringIO()
        args = {"log_format": "json", "log_stream": self.stream, "service_name": "svc", **options}
        configure_logging(resolve(args, environ={}), logger_provider=self.provider)

    @property
    def records(self) -> list[Any]:
        """What reached the exporter: records are built off the calling thread, so flush first, as
        ``obskit.force_flush()`` does."""
        self.provider.force_flush()
        return [r.log_record for r in self.exporter.get_finished_logs()]

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.stream.getvalue().splitlines()]


def _fail() -> None:
    local_secret_value = "sk-live-local"  # noqa: F841 - must never be exported
    raise KeyError("missing")


def test_structlog_event_is_exported_with_trace_context_and_severity() -> None:
    """A structlog event in a span exports once with the span's ids, severity, body and attributes."""
    s = Setup()
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op") as span:
        get_logger("shop", tenant="t1").info("paid", amount=12.5, count=3, ok=True, tags=["a", "b"])
    (rec,) = s.records
    ctx = span.get_span_context()
    assert (rec.trace_id, rec.span_id, rec.trace_flags) == (ctx.trace_id, ctx.span_id, ctx.trace_flags)
    assert rec.severity_number == SeverityNumber.INFO and rec.severity_text == "INFO"
    assert rec.body == "paid"
    attrs = dict(rec.attributes)
    assert attrs["logger.name"] == "shop"
    assert (attrs["tenant"], attrs["amount"], attrs["count"], attrs["ok"]) == ("t1", 12.5, 3, True)
    assert tuple(attrs["tags"]) == ("a", "b")
    assert rec.timestamp is not None and rec.timestamp > 0
    assert s.lines[0]["trace_id"] == f"{ctx.trace_id:032x}"


def test_stdlib_record_is_exported_once_with_code_location() -> None:
    """A stdlib warning exports once, as WARN, with its logger name and code attributes."""
    s = Setup()
    logging.getLogger("app.db").warning("slow query %s", "q1", extra={"ms": 900})
    (rec,) = s.records
    assert rec.severity_number == SeverityNumber.WARN and rec.severity_text == "WARN"
    assert rec.body == "slow query q1"
    attrs = dict(rec.attributes)
    assert attrs["logger.name"] == "app.db" and attrs["ms"] == 900
    assert attrs["code.file.path"] == __file__ and attrs["code.function.name"].startswith("test_stdlib")


def test_exported_attributes_are_redacted_and_coerced() -> None:
    """Sensitive keys are masked in the export; dicts and mixed lists become text."""
    s = Setup(redact=["pin"])
    get_logger("r").info("login", password="pw", pin="1234", meta={"token": "t", "n": 1}, mixed=[1, "a"])
    attrs = dict(s.records[0].attributes)
    assert attrs["password"] == "[REDACTED]" and attrs["pin"] == "[REDACTED]"
    assert json.loads(attrs["meta"]) == {"token": "[REDACTED]", "n": 1}
    assert attrs["mixed"] == "[1, 'a']"
    assert "pw" not in str(attrs) and "1234" not in str(attrs)


def test_exception_attributes_without_locals() -> None:
    """An exception exports exception.type/message/stacktrace, and the stacktrace has no local values."""
    s = Setup()
    try:
        _fail()
    except KeyError:
        get_logger("e").exception("lookup failed")
    attrs = dict(s.records[0].attributes)
    assert attrs["exception.type"] == "KeyError"
    assert attrs["exception.message"] == "'missing'"
    assert "_fail" in attrs["exception.stacktrace"] and "sk-live-local" not in attrs["exception.stacktrace"]
    assert s.records[0].severity_number == SeverityNumber.ERROR


def test_one_record_per_event_across_front_ends() -> None:
    """structlog, stdlib and structlog-through-stdlib events each export exactly once."""
    import structlog

    s = Setup()
    get_logger("a").info("one")
    logging.getLogger("b").info("two")
    structlog.wrap_logger(
        logging.getLogger("c"),
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    ).info("three")
    assert [r.body for r in s.records] == ["one", "two", "three"]
    assert [x["event"] for x in s.lines] == ["one", "two", "three"]


class _ChattyExporter(InMemoryLogRecordExporter):
    """An exporter that logs while exporting, as real exporters do on retries and failures."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        logging.getLogger("my.exporter").warning("exporting %d", len(batch))
        get_logger("my.exporter").info("structlog inside export")
        return super().export(batch)


def test_no_recursion_when_the_exporter_logs() -> None:
    """Lines logged inside an export are printed but never exported again."""
    s = Setup(_ChattyExporter())
    get_logger("app").info("hello")
    assert [r.body for r in s.records] == ["hello"]
    assert [x["event"] for x in s.lines] == ["hello", "exporting 1", "structlog inside export"]


def test_otel_and_grpc_loggers_and_telemetry_sections_are_not_exported() -> None:
    """Records from opentelemetry*/grpc* loggers, or from inside telemetry_section, are printed only."""
    s = Setup()
    logging.getLogger("opentelemetry.sdk._logs").warning("export failed")
    logging.getLogger("grpc._channel").warning("unavailable")
    with telemetry_section():
        get_logger("obskit.exporter").warning("inside")
    assert s.records == []
    assert len(s.lines) == 3


class _RaisingProcessor(LogRecordProcessor):
    def on_emit(self, log_record: Any) -> None:
        raise RuntimeError("processor exploded")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_an_emit_that_raises_does_not_reach_the_caller(capfd: pytest.CaptureFixture[str]) -> None:
    """A failing log pipeline is reported on stderr; the caller's log call returns and the line prints."""
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(_RaisingProcessor())
    stream = io.StringIO()
    configure_logging(
        resolve({"log_format": "json", "log_stream": stream}, environ={}), logger_provider=provider
    )
    get_logger("a").info("still printed")
    logging.getLogger("b").error("std still printed")
    provider.force_flush()  # the records reach the processor on the bridge's worker
    assert [json.loads(x)["event"] for x in stream.getvalue().splitlines()] == [
        "still printed",
        "std still printed",
    ]
    assert "processor exploded" in capfd.readouterr().err


def test_logs_false_exports_nothing() -> None:
    """With logs=False the provider is ignored."""
    s = Setup(logs=False)
    get_logger("a").info("x")
    assert s.records == []


def test_severity_mapping() -> None:
    """stdlib levels map onto OTel severities, in-between levels onto the sub-steps."""
    assert severity(logging.DEBUG) == (SeverityNumber.DEBUG, "DEBUG")
    assert severity(logging.CRITICAL) == (SeverityNumber.FATAL, "FATAL")
    assert severity(logging.INFO + 2) == (SeverityNumber.INFO3, "INFO")
    assert severity(5)[0] == SeverityNumber.TRACE
    assert severity(99)[0] == SeverityNumber.FATAL4


def test_attribute_coercion() -> None:
    """Scalars and homogeneous sequences pass; the rest becomes text, never raising."""

    class Evil:
        def __str__(self) -> str:
            raise RuntimeError

        def __repr__(self) -> str:
            raise RuntimeError

    assert coerce_attribute("s") == "s" and coerce_attribute(1.5) == 1.5 and coerce_attribute(False) is False
    assert coerce_attribute((1, 2)) == [1, 2] and coerce_attribute([]) == []
    assert coerce_attribute([1, True]) == "[1, True]"
    assert coerce_attribute(2**70) == str(2**70)
    assert coerce_attribute(None) == "None"
    assert coerce_attribute(Evil()).startswith("<unprintable")


def test_stop_export_keeps_printing_but_exports_nothing() -> None:
    """After stop_export (called before the provider shuts down) lines print and nothing is emitted."""
    s = Setup()
    handle = configure_logging(
        resolve({"log_format": "json", "log_stream": s.stream}, environ={}), logger_provider=s.provider
    )
    get_logger("a").info("exported")
    handle.stop_export()
    s.provider.shutdown()
    get_logger("a").info("printed only")
    logging.getLogger("b").info("std printed only")
    assert [r.body for r in s.records] == ["exported"]
    assert [x["event"] for x in s.lines] == ["exported", "printed only", "std printed only"]


def test_end_to_end_through_init_and_a_loopback_collector(fresh: None, receiver: Any) -> None:
    """Through obskit.init(), structlog and stdlib events reach a real OTLP collector once each."""
    from conftest import protocol_of
    from otlp_receiver import attributes

    import obskit

    stream = io.StringIO()
    obskit.init(
        service_name="e2e",
        otlp_endpoint=receiver.endpoint,
        otlp_protocol=protocol_of(receiver),
        log_format="json",
        log_stream=stream,
        integrations="none",
        metrics=False,
    )
    with obskit.span("req") as span:
        get_logger("e2e").info("structlog event", api_key="k", n=1)
        logging.getLogger("e2e.std").warning("stdlib event", extra={"token": "t"})
    assert obskit.force_flush(timeout=10)
    records = [
        r for r in receiver.log_records() if r.body.string_value in ("structlog event", "stdlib event")
    ]
    assert sorted(r.body.string_value for r in records) == ["stdlib event", "structlog event"]
    span_id = span.get_span_context().span_id.to_bytes(8, "big")
    assert all(r.span_id == span_id for r in records)
    attrs = {r.body.string_value: attributes(r.attributes) for r in records}
    assert attrs["structlog event"]["api_key"] == "[REDACTED]" and attrs["structlog event"]["n"] == 1
    assert (
        attrs["stdlib event"]["token"] == "[REDACTED]" and attrs["stdlib event"]["logger.name"] == "e2e.std"
    )
    obskit.shutdown(timeout=10)


class _Recording(LogRecordProcessor):
    """Notes, for each record handed to the provider, its body, the process and the thread that handed it."""

    def __init__(self, pause: float = 0.0, hold: threading.Event | None = None) -> None:
        self.seen: list[tuple[str, int, str]] = []
        self._pause = pause
        self._hold = hold

    def on_emit(self, log_record: Any) -> None:
        if self._hold is not None:
            self._hold.wait(30)
        if self._pause:
            time.sleep(self._pause)
        record = getattr(log_record, "log_record", log_record)
        self.seen.append((str(record.body), os.getpid(), threading.current_thread().name))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _bridged(processor: LogRecordProcessor) -> tuple[LoggerProvider, io.StringIO, LoggingHandle]:
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    stream = io.StringIO()
    handle = configure_logging(resolve({"log_format": "json", "log_stream": stream}, environ={}),
                               logger_provider=provider)
    return provider, stream, handle


def test_the_record_is_built_on_the_worker_with_the_callers_span() -> None:
    """The SDK record is built and emitted on the bridge's worker, not the caller, with the caller's span."""
    s = Setup()
    recording = _Recording()
    s.provider.add_log_record_processor(recording)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op") as span:
        get_logger("shop").info("paid")
    (rec,) = s.records
    assert [(body, thread) for body, _, thread in recording.seen] == [("paid", "obskit-log-export")]
    assert threading.current_thread().name != "obskit-log-export"
    ctx = span.get_span_context()
    assert (rec.trace_id, rec.span_id) == (ctx.trace_id, ctx.span_id)  # captured on the calling thread


def test_flush_and_stop_export_deliver_everything_logged_before_them() -> None:
    """With the worker far behind, provider.force_flush() and stop_export() still hand over every line."""
    recording = _Recording(pause=0.001)  # ~1 ms a record: the caller queues 300 lines long before that
    provider, _, handle = _bridged(recording)
    for i in range(300):
        get_logger("a").info("first", i=i)
    assert len(recording.seen) < 300  # the worker is behind: the flush below has work to do
    assert provider.force_flush(30_000)
    assert [body for body, _, _ in recording.seen] == ["first"] * 300
    for i in range(100):
        get_logger("a").info("second", i=i)
    handle.stop_export()  # as shutdown() does: what the bridge still holds goes out before the provider stops
    provider.shutdown()
    assert [body for body, _, _ in recording.seen].count("second") == 100


def test_a_full_queue_drops_and_counts_instead_of_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stalled provider: the caller never waits, the queue holds its bound and every drop is counted."""
    from obskit._logs import _otlp
    from obskit._runtime import _health

    monkeypatch.setattr(_otlp, "_QUEUE_LIMIT", 10)
    hold = threading.Event()
    recording = _Recording(hold=hold)  # the first record the worker hands over blocks it
    provider, stream, _ = _bridged(recording)
    before = _health.counts().get(("dropped", "logs"), 0)
    for i in range(50):
        get_logger("a").info("line", i=i)  # returns although nothing can be exported
    dropped = _health.counts().get(("dropped", "logs"), 0) - before
    assert len(stream.getvalue().splitlines()) == 50  # every line still printed
    assert 50 - 10 - 1 <= dropped <= 50 - 10  # the bound, plus the one the worker holds
    hold.set()
    assert provider.force_flush(30_000)
    assert len(recording.seen) + dropped == 50


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_has_its_own_worker_and_not_the_parents_queue() -> None:
    """After fork the child exports through a new worker, and never re-exports what the parent had queued."""
    recording = _Recording(pause=0.001)
    provider, _, _ = _bridged(recording)
    for i in range(200):
        get_logger("a").info("parent", i=i)
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            get_logger("a").info("child")
            provider.force_flush(10_000)
            mine = [(body, thread) for body, p, thread in recording.seen if p == os.getpid()]
            code = 0 if mine == [("child", "obskit-log-export")] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert provider.force_flush(30_000)
    assert [body for body, p, _ in recording.seen if p == os.getpid()] == ["parent"] * 200


@pytest.mark.parametrize("server_logger", ["uvicorn.access", "gunicorn.access", "aiohttp.access"])
def test_access_lines_are_printed_but_not_exported_by_default(server_logger: str) -> None:
    """A server's access line repeats its request's span: printed (correlated) but not an OTLP record,
    while any other line still is."""
    s = Setup()
    logging.getLogger(server_logger).info('127.0.0.1 - "GET /items/1 HTTP/1.1" 200')
    logging.getLogger("app").info("paid")
    assert [r.body for r in s.records] == ["paid"]
    assert [line["logger"] for line in s.lines] == [server_logger, "app"]


def test_access_log_export_exports_access_lines_too() -> None:
    """``access_log_export=True`` turns the OTLP record of each access line back on."""
    s = Setup(access_log_export=True)
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /items/1 HTTP/1.1" 200')
    logging.getLogger("app").info("paid")
    assert [r.body for r in s.records] == ['127.0.0.1 - "GET /items/1 HTTP/1.1" 200', "paid"]
