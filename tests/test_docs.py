"""Every ```python example in docs/ runs as written, in a fresh interpreter, so the docs stay true.

A block containing ``def test_`` is run with pytest (it shows the pytest fixture); a block that opens with the
comment ``# not runnable`` (it needs a server or a collector that the example names) is only compiled.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    out = []
    for md in sorted(DOCS.glob("*.md")):
        for i, code in enumerate(BLOCK.findall(md.read_text())):
            out.append((f"{md.name}#{i + 1}", code))
    return out


@pytest.mark.parametrize(("where", "code"), _blocks(), ids=[w for w, _ in _blocks()])
def test_doc_example_runs(where: str, code: str, tmp_path: Path) -> None:
    """The example runs to completion with no collector and no OTEL_/OBSKIT_ settings."""
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
