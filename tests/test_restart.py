"""``shutdown()`` then ``init()`` starts over for all three signals, as docs/configuration.md says.

tests/test_setup_seams.py checks the tracing side in memory; this goes over the wire: two loopback
collectors, one per ``init()``, with different transports, services, formats, levels and redaction keys.
"""

from __future__ import annotations

import io
import logging

from otlp_receiver import OTLPReceiver, attributes

import obskit


def test_shutdown_then_init_applies_the_new_settings_to_every_signal(fresh: None) -> None:
    """After shutdown(), a new init() sends spans, log records and metrics where and as it says, only."""
    with OTLPReceiver("grpc") as first, OTLPReceiver("http") as second:
        out1, out2 = io.StringIO(), io.StringIO()
        obskit.init(service_name="first", otlp_endpoint=first.endpoint, otlp_protocol="grpc", log_stream=out1,
                    log_format="json", integrations="none", redact=["alpha"])
        restarts = obskit.counter("restarts", "init() calls")
        restarts.inc()
        with obskit.span("one"):
            obskit.get_logger("app").info("one", alpha="a", beta="b")
        assert obskit.shutdown(timeout=10)

        obskit.init(service_name="second", otlp_endpoint=second.endpoint, otlp_protocol="http/protobuf",
                    log_stream=out2, log_format="console", log_level="WARNING", integrations="none",
                    redact=["beta"])
        restarts.inc()
        with obskit.span("two"):
            obskit.get_logger("app").info("not at this level")
            obskit.get_logger("app").warning("two", alpha="a", beta="b")
            logging.getLogger("stdlib").warning("stdlib two")
        assert obskit.shutdown(timeout=10)

        assert [s.name for s in first.spans()] == ["one"] and [s.name for s in second.spans()] == ["two"]
        assert [r.body.string_value for r in first.log_records()] == ["one"]
        logs = {r.body.string_value: attributes(r.attributes) for r in second.log_records()}
        assert set(logs) == {"two", "stdlib two"}
        assert logs["two"]["alpha"] == "a" and logs["two"]["beta"] == "[REDACTED]"
        for rx, service in ((first, "first"), (second, "second")):
            for signal in ("traces", "logs", "metrics"):
                assert {r["service.name"] for r in rx.resources(signal)} == {service}, (service, signal)
        assert '"event":"one"' in out1.getvalue() and "two" not in out1.getvalue()
        printed = out2.getvalue()
        assert "not at this level" not in printed and "[warning" in printed and "beta=[REDACTED]" in printed
