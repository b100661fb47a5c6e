"""Packaging: integrations/ ships as obskit.integrations in the wheel and in the editable install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_integrations_importable_as_obskit_integrations() -> None:
    """In this (editable) install, obskit.integrations is the repository's integrations/ folder."""
    import obskit.integrations

    assert Path(obskit.integrations.__file__).resolve().parent == (ROOT / "integrations").resolve()
    # Found, not imported: importing the gunicorn config module switches this process to multiprocess mode.
    import importlib.util

    spec = importlib.util.find_spec("obskit.integrations.gunicorn")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve() == (ROOT / "integrations" / "gunicorn.py").resolve()


def test_wheel_contains_integrations_and_py_typed(tmp_path: Path) -> None:
    """A built wheel carries obskit/integrations/*, py.typed, the console script and the pytest plugin."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, timeout=300)
    wheel = next(tmp_path.glob("obskit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "obskit/integrations/__init__.py" in names
    assert "obskit/integrations/gunicorn.py" in names
    assert "obskit/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "obskit = obskit._cli:main" in text and "obskit = obskit.testing" in text
    assert not any(n.startswith(("tests/", "integrations/")) for n in names)


def test_public_surface_is_declared() -> None:
    """Everything in obskit.__all__ exists, and no private module leaks into it."""
    import obskit

    for name in obskit.__all__:
        assert hasattr(obskit, name), name
        assert not name.startswith("_") or name == "__version__"
