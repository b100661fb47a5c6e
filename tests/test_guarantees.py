"""Guarantees of docs/index.md that no other test covered: obskit's failure reports (once, or every one
with ``OBSKIT_DEBUG=1``), and the SDK providers' own exit hooks left unused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import obskit

REPORT_TWICE = textwrap.dedent(
    """
    import obskit
    from obskit._runtime import _exporters

    class Raising:
        def export(self, batch):
            raise RuntimeError("exporter exploded")
        def shutdown(self):
            pass
        def force_flush(self, timeout_millis=0):
            return True

    _exporters._new_otlp = lambda signal, config: Raising()  # every OTLP exporter obskit builds raises
    obskit.init(service_name="g", integrations="none", metrics=False, logs=False,
                otlp_endpoint="http://127.0.0.1:9", otlp_protocol="http/protobuf")
    for _ in range(2):  # two exports, two failures
        with obskit.span("work"):
            pass
        obskit.force_flush(5)
    print("app carried on")
    """
)


def _run(debug: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    if debug:
        env["OBSKIT_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-c", REPORT_TWICE], env=env, capture_output=True, text=True,
                          timeout=60)


def test_internal_failure_is_reported_once_on_stderr() -> None:
    """A failing exporter: the app carries on, stderr says so once, pointing at OBSKIT_DEBUG."""
    proc = _run(debug=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "app carried on", proc.stderr
    reports = [line for line in proc.stderr.splitlines() if "exporter exploded" in line]
    assert len(reports) == 1 and "OBSKIT_DEBUG=1" in reports[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_obskit_debug_reports_every_failure_with_its_traceback() -> None:
    """With OBSKIT_DEBUG=1 each failure is reported, each with its traceback."""
    proc = _run(debug=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "app carried on", proc.stderr
    assert proc.stderr.count("obskit: internal error") == 2, proc.stderr
    assert proc.stderr.count("Traceback") == 2, proc.stderr


def test_sdk_providers_exit_hooks_are_not_used(fresh: None) -> None:
    """obskit's tracer and logger providers register no atexit hook of their own (one can wait 30 s)."""
    tel = obskit.init(service_name="g", integrations="none", metrics=False,
                      otlp_endpoint="http://127.0.0.1:9", otlp_protocol="http/protobuf")
    assert tel.tracer_provider is not None and tel.logger_provider is not None
    assert tel.tracer_provider._atexit_handler is None  # type: ignore[attr-defined]
    assert tel.logger_provider._at_exit_handler is None  # type: ignore[attr-defined]


def test_every_test_the_docs_name_exists() -> None:
    """Each `test_x.py::test_y` named beside a claim in README.md or docs/ is a test that exists."""
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent
    named = {(m.group(1), m.group(2)) for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
             for m in re.finditer(r"`(test_\w+\.py)::(test_\w+)`", doc.read_text())}
    assert len(named) >= 20, named
    missing = [f"{f}::{t}" for f, t in sorted(named)
               if not re.search(rf"^(async )?def {t}\(", (root / "tests" / f).read_text(), re.M)]
    assert not missing, missing
