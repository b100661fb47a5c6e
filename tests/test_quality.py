"""Static checks run as tests, so the one test command also enforces them: ruff and mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ruff_clean() -> None:
    """ruff finds nothing in the package, integrations and tests."""
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "obskit", "integrations", "tests"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def wheel_layout(dest: Path) -> Path:
    """``dest/obskit`` laid out as the wheel installs it: ``integrations/`` inside as ``obskit.integrations``.

    mypy cannot follow setuptools' package-dir rename, so it checks this tree of links instead.
    """
    pkg = dest / "obskit"
    pkg.mkdir()
    for entry in (ROOT / "obskit").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    (pkg / "integrations").symlink_to(ROOT / "integrations")
    return pkg


def test_mypy_strict_clean(tmp_path: Path) -> None:
    """mypy --strict (configured in pyproject.toml) passes on obskit and integrations, as installed."""
    pkg = wheel_layout(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                           "--cache-dir", str(tmp_path / ".mypy_cache"), str(pkg)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
