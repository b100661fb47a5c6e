"""loguru through obskit's pipeline: JSON lines with the span's trace_id, redacted, printed once."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace

import obskit
from obskit.testing import capture

loguru = pytest.importorskip("loguru")
logger = loguru.logger


def test_loguru_record_is_an_obskit_line_with_trace_id() -> None:
    """A loguru call inside a span is one JSON line: message, level, logger, bound extras and trace ids."""
    with capture(integrations=["loguru"]) as cap:
        with obskit.span("checkout") as span:
            logger.bind(order_id=7).info("charging {}", "card")
        ctx = trace.get_current_span().get_span_context()  # outside: invalid
        (line,) = cap.events("charging card")
    assert not ctx.is_valid
    assert line["level"] == "info" and line["logger"] == __name__ and line["order_id"] == 7
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert line["span_id"] == f"{span.get_span_context().span_id:016x}"


def test_loguru_fields_and_message_are_redacted() -> None:
    """Secrets bound as fields or written in the message are redacted like any obskit line."""
    with capture(integrations=["loguru"]) as cap:
        logger.bind(password="hunter2").warning("calling https://u:pw@api.example/x?token=abc")
        (line,) = [e for e in cap.logs if e.get("level") == "warning"]
    text = json.dumps(line)
    assert "hunter2" not in text and "abc" not in text and ":pw@" not in text
    assert line["password"] == "[REDACTED]"


def test_loguru_exception_and_custom_levels() -> None:
    """logger.exception() carries the traceback; SUCCESS is an info line that keeps its loguru level name."""
    with capture(integrations=["loguru"]) as cap:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
        logger.success("done")
        (failed,) = cap.events("failed")
        (done,) = cap.events("done")
    assert failed["level"] == "error"
    assert "RuntimeError" in json.dumps(failed["exception"]) and "boom" in json.dumps(failed["exception"])
    assert done["level"] == "info" and done["loguru_level"] == "SUCCESS"


def test_loguru_default_sink_removed_and_put_back() -> None:
    """While on, loguru's default stderr sink is gone; switching off puts a stderr sink back, once."""
    from obskit.integrations import loguru as integration
    from obskit.integrations._contract import DidNotEnable

    def sinks() -> list[str]:
        return [str(h) for h in logger._core.handlers.values()]  # type: ignore[attr-defined]

    assert len(sinks()) == 1  # loguru's default, or the stderr sink an earlier test's teardown put back
    with capture(integrations=["loguru"]):
        assert len(sinks()) == 1 and "sink=_sink" in sinks()[0]
    assert len(sinks()) == 1 and "sink=_sink" not in sinks()[0]
    from obskit._config import resolve

    with pytest.raises(DidNotEnable):  # logs=False: obskit handles no logs, loguru keeps its sinks
        integration.INTEGRATION.setup(resolve({"logs": False}, environ={}))  # type: ignore[misc]
    assert len(sinks()) == 1 and "sink=_sink" not in sinks()[0]


def test_loguru_line_printed_exactly_once_in_a_fresh_process() -> None:
    """A real process: init() then loguru: stdout has the one JSON line, stderr has no loguru copy."""
    code = textwrap.dedent("""
        import obskit
        from loguru import logger
        obskit.init(service_name="svc", log_format="json", integrations=["loguru"], otlp_endpoint=None)
        with obskit.span("work"):
            logger.info("hello from loguru")
        obskit.shutdown()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines() if "hello from loguru" in x]
    assert len(lines) == 1 and len(lines[0]["trace_id"]) == 32 and lines[0]["service"] == "svc"
    assert "hello from loguru" not in proc.stderr


def test_loguru_level_follows_obskit_log_level() -> None:
    """Below obskit's log_level, loguru records are not printed."""
    stream = io.StringIO()
    with capture(integrations=["loguru"], log_level="WARNING") as cap:
        logger.info("quiet")
        logger.warning("loud")
        events = [e["event"] for e in cap.logs]
    assert "loud" in events and "quiet" not in events and stream.getvalue() == ""
