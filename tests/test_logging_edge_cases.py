"""Logging edge cases found in review: each once crashed the process, lost a line or leaked a secret."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import namedtuple
from typing import Any

import obskit
from obskit.testing import Capture

Point = namedtuple("Point", "x y")


@dataclasses.dataclass
class Creds:
    user: str
    password: str


def test_stdout_redirected_into_logging_does_not_recurse(tmp_path: Any) -> None:
    """print() routed into logging while obskit writes to sys.stdout: one line, no crash (it segfaulted)."""
    script = (
        "import io, logging, sys, obskit\n"
        "obskit.init(service_name='svc', log_format='json', metrics=False, traces=False,\n"
        "            integrations='none')\n"
        "class ToLog(io.TextIOBase):\n"
        "    def write(self, s):\n"
        "        if s.strip(): logging.getLogger('stdout').info(s.rstrip())\n"
        "        return len(s)\n"
        "sys.stdout = ToLog()\n"
        "print('hello from print')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "hello from print" in lines[0]["event"]


def test_namedtuple_and_cyclic_fields_keep_the_line(obskit_capture: Capture) -> None:
    """A namedtuple or a self-referencing dict no longer loses the whole line."""
    log = obskit.get_logger("t")
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    log.info("point", point=Point(1, 2), nested={"p": [Point(3, 4)]})
    log.info("cyclic", data=cyclic)
    events = {e["event"]: e for e in obskit_capture.logs}
    assert "Point(x=1, y=2)" in json.dumps(events["point"]["point"])
    assert "[TOO DEEP]" in json.dumps(events["cyclic"]["data"])


def test_dataclass_fields_are_redacted(obskit_capture: Capture) -> None:
    """A secret inside a dataclass field is redacted like one inside a dict."""
    obskit.get_logger("t").info("login", creds=Creds("ann", "hunter2"))
    (line,) = obskit_capture.events("login")
    assert line["creds"] == {"user": "ann", "password": "[REDACTED]"}
    assert "hunter2" not in json.dumps(obskit_capture.logs)


def test_unusual_exc_info_tuples_keep_the_line(obskit_capture: Capture) -> None:
    """(ValueError, None, None) logs the exception type; a tuple of garbage logs the line without one."""
    log = obskit.get_logger("t")
    log.info("type only", exc_info=(ValueError, None, None), k=1)
    log.info("garbage", exc_info=("a", "b", "c"), k=2)
    events = {e["event"]: e for e in obskit_capture.logs}
    assert events["type only"]["exception"][0]["exc_type"] == "ValueError"
    assert events["type only"]["k"] == 1
    assert events["garbage"]["k"] == 2 and "exception" not in events["garbage"]
