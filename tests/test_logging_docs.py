"""The Python examples in docs/logging.md print obskit lines, reveal no secret and report no internal error.

(tests/test_docs.py checks that every example runs; this adds what a logging example must show.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "logging.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
# Examples that start a server or talk to a collector are exercised by the server and OTLP tests instead.
RUNNABLE = [b for b in BLOCKS if not b.lstrip().startswith("# not runnable") and "otlp_endpoint" not in b]


def test_the_doc_has_examples() -> None:
    """The page keeps its runnable examples."""
    assert len(RUNNABLE) >= 8


@pytest.mark.parametrize("code", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_example_runs_and_logs(code: str, tmp_path: Path) -> None:
    """Each example exits cleanly, prints at least one line, and nothing goes to stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    (tmp_path / "example.py").write_text(code)
    proc = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "no log line printed"
    assert "hunter2" not in proc.stdout and "Bearer x" not in proc.stdout
    assert proc.stderr == "", proc.stderr
