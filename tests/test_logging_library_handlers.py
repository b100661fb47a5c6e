"""A library that gives its logger its own console handler still prints each line exactly once.

``logging.getLogger("lib").addHandler(logging.StreamHandler())`` is common in libraries and scripts. The
record then reaches that handler and, by propagation, obskit's root handler: two lines. obskit's rule: such a
handler prints only what obskit's root handler does not, decided per record, so a logger that propagates
prints once as an obskit line, and one with ``propagate = False`` prints once through its own handler.
Each case runs in a fresh interpreter writing to the real stdout and stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import logging, sys
import obskit

def lib(stream=None):
    lg = logging.getLogger("lib")
    lg.addHandler(logging.StreamHandler(stream))
    return lg
"""

CASES = {
    # name: (script, where "MARK" must appear once: "obskit" = as an obskit line on stdout, "own" = by the
    # library's own handler)
    "handler-added-before-init": ("lg = lib()\nobskit.init(integrations='none')\nlg.warning('MARK')",
                                  "obskit"),
    "handler-added-after-init": ("obskit.init(integrations='none')\nlib().warning('MARK')", "obskit"),
    "stdout-handler-on-a-child-logger": (
        "obskit.init(integrations='none')\nlg = logging.getLogger('lib.sub')\n"
        "lg.addHandler(logging.StreamHandler(sys.stdout))\nlg.warning('MARK')", "obskit"),
    "propagate-false-after-handler": (
        "obskit.init(integrations='none')\nlg = lib()\nlg.propagate = False\nlg.warning('MARK')", "own"),
    "propagate-false-before-init": (
        "lg = lib()\nlg.propagate = False\nobskit.init(integrations='none')\nlg.warning('MARK')", "own"),
    "after-reset-the-library-prints-again": (
        "lg = lib()\nobskit.init(integrations='none')\nfrom obskit.testing import reset\nreset()\n"
        "lg.warning('MARK')", "own"),
}


def _run(script: str) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    env.update(OBSKIT_LOG_FORMAT="json", OBSKIT_METRICS="false", OTEL_TRACES_EXPORTER="none")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(PRELUDE) + script], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_library_console_handler_prints_each_line_once(case: str) -> None:
    """Each line of a library with its own StreamHandler appears exactly once over stdout and stderr."""
    script, printer = CASES[case]
    out, err = _run(script)
    lines = [line for line in (out + err).splitlines() if "MARK" in line]
    assert len(lines) == 1, (out, err)
    if printer == "obskit":
        assert lines[0].startswith("{") and '"logger":"lib' in lines[0], lines
    else:
        assert lines[0] == "MARK", lines
