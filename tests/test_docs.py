"""Every ```python example in docs/ runs as written, in a fresh interpreter, and prints what the docs show.

A block containing ``def test_`` is run with pytest (it shows the pytest fixture); a block that opens with the
comment ``# not runnable`` (it needs a server or a collector that the example names) is only compiled.

An example followed directly (nothing but blank lines between) by a ```text or ```json block shows its
output there: what the example prints on stdout must be those lines. Values that change on every run are
compared by shape, not by value: ISO timestamps, trace ids (32 hex digits) and span ids (16). In a shown
line, ``…`` stands for any text; a line that is only ``…`` stands for any number of lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
OUTPUT_BLOCKS = ("text", "json")
# What differs from run to run, replaced by its kind on both sides before comparing.
VARIABLE = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"), "<timestamp>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<trace id>"),
    (re.compile(r"\b[0-9a-f]{16}\b"), "<span id>"),
)


def _blocks() -> list[tuple[str, str, str | None]]:
    """(where, code, the output the doc shows for it or None) for every python block, in order."""
    out = []
    for md in sorted(DOCS.glob("*.md")):
        text = md.read_text()
        fences = list(FENCE.finditer(text))
        number = 0
        for i, fence in enumerate(fences):
            if fence.group(1) != "python":
                continue
            number += 1
            shown = None
            if i + 1 < len(fences):
                after = fences[i + 1]
                if after.group(1) in OUTPUT_BLOCKS and not text[fence.end():after.start()].strip():
                    shown = after.group(2)
            out.append((f"{md.name}#{number}", fence.group(2), shown))
    return out


def _lines(text: str) -> list[str]:
    for pattern, kind in VARIABLE:
        text = pattern.sub(kind, text)
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def shows(shown: str, printed: str) -> bool:
    """Whether ``printed`` is what ``shown`` says, with its variable values and ``…`` wildcards."""
    pattern = "".join(
        r"(?:.*\n)*?" if line.strip() == "…" else ".*?".join(map(re.escape, line.split("…"))) + r"\n"
        for line in _lines(shown)
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in _lines(printed))) is not None


@pytest.mark.parametrize(("where", "code", "shown"), _blocks(), ids=[w for w, _, _ in _blocks()])
def test_doc_example_runs(where: str, code: str, shown: str | None, tmp_path: Path) -> None:
    """The example runs with no collector and no OTEL_/OBSKIT_ settings, and prints the output shown."""
    compile(code, where, "exec")
    if code.lstrip().startswith("# not runnable"):
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    if "def test_" in code:
        path = tmp_path / "test_doc_example.py"
        path.write_text(code)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    else:
        path = tmp_path / "example.py"
        path.write_text(code)
        cmd = [sys.executable, str(path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{where} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    if shown is not None:
        assert shows(shown, proc.stdout), f"{where} printed:\n{proc.stdout}\nthe doc shows:\n{shown}"


def test_shown_output_is_compared_line_by_line() -> None:
    """Variable values match by shape, … by anything; a changed, missing or extra line does not match."""
    printed = '{"time":"2026-12-01T17:37:07.229378Z","trace_id":"1133a008f083ea200a014e94e4d128a2"}\nok\n'
    same_shape = '{"time":"2026-11-26T21:00:00.123456Z","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}\nok'
    assert shows(same_shape, printed)
    assert shows('{"time":…}\n…', printed)
    assert not shows('{"time":"2026-11-26T21:00:00.123456Z","trace_id":"not-an-id"}\nok', printed)
    assert not shows('{"time":…}', printed)  # a line printed but not shown
    assert not shows('{"time":…}\nok\nmore', printed)  # a line shown but not printed
