"""Packaging: integrations/ ships as obskit.integrations in the wheel and in the editable install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel users install, built from this tree."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, timeout=300)
    return next(out.glob("obskit-*.whl"))


def test_wheel_holds_every_module(wheel: Path) -> None:
    """Every .py file under obskit/ and integrations/ is in the wheel (packages are found, not listed)."""
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = [p.relative_to(ROOT).as_posix() for folder in ("obskit", "integrations")
               for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
    expected = {("obskit/" + s) if s.startswith("integrations/") else s for s in sources}
    assert expected - names == set()


def test_wheel_installs_and_runs_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    """pip install of the wheel (not editable) in a new venv: obskit imports and `obskit demo` runs.

    Run from an empty folder, so nothing of the source tree is on sys.path.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                   check=True, timeout=600)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    code = ("import pkgutil, importlib, obskit, obskit.integrations\n"
            "import obskit._setup, obskit._runtime._fork, obskit._traces, obskit._logs, obskit._metrics\n"
            "assert 'site-packages' in obskit.__file__, obskit.__file__\n"
            "mods = [m.name for m in pkgutil.walk_packages(obskit.__path__, 'obskit.')\n"
            "        if not m.name.startswith('obskit.integrations.') and m.name != 'obskit.testing']\n"
            "for m in mods: importlib.import_module(m)\n"
            "print('imported', len(mods))\n")
    proc = subprocess.run([str(py), "-c", code], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("imported"), proc.stdout + proc.stderr
    demo = subprocess.run([str(venv / "bin" / "obskit"), "demo", "--orders", "3", "--format", "json"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert '"trace_id"' in demo.stdout and "payment" in demo.stdout


def test_public_surface_is_declared() -> None:
    """Everything in obskit.__all__ exists, and no private module leaks into it."""
    import obskit

    for name in obskit.__all__:
        assert hasattr(obskit, name), name
        assert not name.startswith("_") or name == "__version__"
