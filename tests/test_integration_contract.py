"""The integration contract: every module in obskit.integrations declares it, and the registry and the log
router read only the declarations (a throwaway integration planted at test time proves it)."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import obskit.integrations
import pytest
from conftest import require
from obskit.integrations import _registry
from obskit.integrations._contract import (
    DidNotEnable,
    Integration,
    _version_key,
    check_requires,
    load,
)

from obskit._config import resolve
from obskit._runtime import _fork
from obskit.testing import capture

ROOT = Path(__file__).parent.parent
MODULES = sorted(p.stem for p in (ROOT / "integrations").glob("*.py") if not p.stem.startswith("_"))
INTEGRATIONS = _registry.integrations()


def _normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _extras() -> dict[str, dict[str, str]]:
    """pyproject's extras: extra -> {distribution: minimum} (``obskit[...]`` entries kept by name)."""
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    out: dict[str, dict[str, str]] = {}
    for extra, reqs in extras.items():
        parsed: dict[str, str] = {}
        for req in reqs:
            m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(?:>=\s*([^,;\s]+))?", req)
            assert m is not None, req
            parsed[_normalize(m.group(1)) + (m.group(2) or "")] = m.group(3) or ""
        out[extra] = parsed
    return out


# --- every module follows the contract ---------------------------------------------------------------------


def test_every_module_is_discovered() -> None:
    """Each public module of integrations/ is one integration, named after its module: no hand-kept list."""
    assert sorted(i.name for i in INTEGRATIONS.values()) == MODULES
    for name in MODULES:
        module = sys.modules[f"obskit.integrations.{name}"]
        assert module.INTEGRATION is INTEGRATIONS[name]


@pytest.mark.parametrize("name", MODULES)
def test_module_declares_the_contract(name: str) -> None:
    """name, extra, requires, loggers and re-configure hooks are declared with the contract's types."""
    i = INTEGRATIONS[name]
    assert isinstance(i, Integration)
    assert i.name == name and isinstance(i.extra, str) and i.extra
    assert i.requires or not _extras()[i.extra]  # only a standard-library integration needs nothing
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in i.requires.items())
    assert isinstance(i.loggers, tuple) and all(isinstance(lg, str) and lg for lg in i.loggers)
    assert all(isinstance(h, tuple) and len(h) == 3 for h in i.reconfigure_hooks)
    assert i.setup is None or callable(i.setup)
    assert i.after_fork is None or callable(i.after_fork)
    assert i.setup is None or i.wiring is None
    # A re-configure hook re-applies a config to loggers: an integration declaring one owns loggers.
    assert not i.reconfigure_hooks or i.loggers


@pytest.mark.parametrize("name", MODULES)
def test_extra_exists_in_pyproject_and_in_all(name: str) -> None:
    """The declared extra is in pyproject.toml, pulled in by ``all``, and lists exactly ``requires``."""
    extras = _extras()
    i = INTEGRATIONS[name]
    assert i.extra in extras, f"add `{i.extra} = [...]` to [project.optional-dependencies]"
    (everything,) = [k for k in extras["all"] if k.startswith("obskit[")]
    assert i.extra in everything[len("obskit["):-1].split(","), f"add {i.extra} to the `all` extra"
    assert extras[i.extra] == {_normalize(d): v for d, v in i.requires.items()}


def test_loggers_are_owned_once() -> None:
    """No two integrations declare the same logger or the same re-configure hook."""
    loggers = [lg for i in INTEGRATIONS.values() for lg in i.loggers]
    hooks = [h for i in INTEGRATIONS.values() for h in i.reconfigure_hooks]
    assert len(loggers) == len(set(loggers)) and len(hooks) == len(set(hooks))
    assert set(_registry.owned_loggers()) == set(loggers)
    assert set(_registry.reconfigure_targets()) == set(hooks)


def test_servers_declare_what_the_router_used_to_hard_code() -> None:
    """uvicorn, gunicorn and hypercorn own their loggers; uvicorn and gunicorn their re-configure method."""
    uvicorn = {"uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"}
    assert uvicorn <= set(INTEGRATIONS["uvicorn"].loggers)
    assert {"gunicorn", "gunicorn.error", "gunicorn.access"} <= set(INTEGRATIONS["gunicorn"].loggers)
    assert {"hypercorn.error", "hypercorn.access"} <= set(INTEGRATIONS["hypercorn"].loggers)
    assert INTEGRATIONS["uvicorn"].reconfigure_hooks == (("uvicorn.config", "Config", "configure_logging"),)
    assert INTEGRATIONS["gunicorn"].reconfigure_hooks == (("gunicorn.glogging", "Logger", "setup"),)


def test_discovery_imports_no_instrumented_library() -> None:
    """Reading every declaration imports obskit's modules only: no library, no instrumentation package."""
    code = textwrap.dedent("""
        import sys
        from obskit.integrations import _registry
        names = _registry.names()
        assert len(names) > 5, names
        libraries = ("requests", "httpx", "redis", "psycopg", "starlette", "fastapi", "uvicorn", "gunicorn",
                     "hypercorn", "flask", "werkzeug", "django", "opentelemetry.instrumentation")
        loaded = [m for m in sys.modules if m.split(".")[0] in libraries or m.startswith(libraries)]
        assert not loaded, loaded
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["requests", "httpx", "redis", "psycopg", "starlette", "fastapi", "uvicorn",
                                  "flask", "django"])
def test_module_name_does_not_shadow_its_library(name: str) -> None:
    """obskit.integrations.<name> loads the real top-level library, not itself."""
    module = load(name)
    assert module.__name__ == name and module is not sys.modules[f"obskit.integrations.{name}"]


SWITCHABLE = sorted(n for n, i in INTEGRATIONS.items() if i.setup is not None)


@pytest.mark.parametrize("name", SWITCHABLE)
def test_setup_and_teardown_are_idempotent(name: str) -> None:
    """setup twice switches on once (the second returns None: not obskit's to undo twice); after teardown it
    can be switched on again; the registry's enable and disable_all can be repeated."""
    integration = INTEGRATIONS[name]
    assert integration.setup is not None
    try:
        check_requires(integration.requires)
    except DidNotEnable as exc:
        require(False, f"{name}: {exc}")
    with capture(integrations="none"):
        config = resolve({"integrations": [name]}, environ={})
        teardown = integration.setup(config)
        assert teardown is not None
        assert integration.setup(config) is None
        teardown()
        again = integration.setup(config)
        assert again is not None
        again()
        assert _registry.enable(config) == [name] == _registry.enable(config)
        assert _registry.enabled() == [name]
        _registry.disable_all()
        _registry.disable_all()
        assert _registry.enabled() == []


def test_wired_integrations_are_not_switched_on_and_say_how_to_wire_them() -> None:
    """asgi, wsgi and gunicorn (and any alias) warn with their wiring; "auto" skips them."""
    wired = {n for n, i in INTEGRATIONS.items() if i.wiring is not None}
    assert {"asgi", "wsgi", "gunicorn"} <= wired
    aliases = {a for i in INTEGRATIONS.values() for a in i.aliases}
    with capture(integrations=sorted(wired | aliases)) as cap:
        assert _registry.enabled() == []
        warnings = [e["event"] for e in cap.logs if e.get("level") == "warning"]
    assert len(warnings) == len(wired | aliases), warnings
    assert all("is not enabled by init()" in w for w in warnings)
    with capture(integrations="auto"):
        assert not wired & set(_registry.enabled())


def test_passive_integration_named_is_quiet_when_installed() -> None:
    """uvicorn has nothing to switch on: naming it logs nothing; a missing one still gets the install hint."""
    with capture(integrations=["uvicorn", "hypercorn"]) as cap:
        assert _registry.enabled() == []
        warnings = [e["event"] for e in cap.logs if e.get("level") == "warning"]
    assert not any("'uvicorn'" in w for w in warnings), warnings
    if _installed("hypercorn"):
        assert warnings == []
    else:
        (warning,) = warnings
        assert "pip install 'obskit[hypercorn]'" in warning


def _installed(dist: str) -> bool:
    try:
        check_requires({dist: "0"})
    except DidNotEnable:
        return False
    return True


# --- requirements -------------------------------------------------------------------------------------------


def test_requires_are_read_from_metadata() -> None:
    """A missing distribution or one older than the minimum does not enable; an installed one passes."""
    check_requires({"opentelemetry-api": "1.0"})
    with pytest.raises(DidNotEnable, match="not installed"):
        check_requires({"obskit-no-such-distribution": "1"})
    with pytest.raises(DidNotEnable, match="older than 999"):
        check_requires({"opentelemetry-api": "999"})


def test_installed_versions_read_from_folder_names_agree_with_the_metadata() -> None:
    """The one-listing read of installed versions (``init()`` checks every integration's requirements)
    gives what ``importlib.metadata`` gives, for every distribution it finds; none is missed."""
    import importlib.metadata

    from obskit.integrations import _contract

    fast = _contract._installed_versions()
    assert len(fast) > 50
    assert {name: importlib.metadata.version(name) for name in fast} == fast
    dists = importlib.metadata.distributions()
    assert all(_contract._version(d.metadata["Name"]) == d.version for d in dists)


@pytest.mark.parametrize(
    ("installed", "minimum", "ok"),
    [("0.66b2", "0.66b0", True), ("0.66b0", "0.66b0", True), ("0.65", "0.66b0", False),
     ("0.66", "0.66b0", True), ("1.0rc1", "1.0", False), ("1.0.dev3", "1.0a1", False),
     ("2.31.0", "2.31", True), ("2.4", "2.31", False), ("10", "9.9.9", True), ("3.3.9", "3.1", True)],
)
def test_version_comparison(installed: str, minimum: str, ok: bool) -> None:
    """Release numbers compare numerically; dev < a < b < rc < final; trailing zeros do not count."""
    assert (_version_key(installed) >= _version_key(minimum)) is ok


# --- a throwaway integration, planted at test time ----------------------------------------------------------


PROBE = """
from __future__ import annotations

from obskit.integrations._contract import Integration

calls: list[str] = []


def _setup(config):
    calls.append("setup")
    return lambda: calls.append("teardown")


INTEGRATION = Integration(
    name="probe",
    extra="probe",
    requires={"opentelemetry-api": "1.0"},
    setup=_setup,
    loggers=("obskit_probe.server",),
    reconfigure_hooks=(("obskit_probe_server", "Server", "configure_logging"),),
    after_fork=lambda: calls.append("after_fork"),
)
"""

FAKE_SERVER = """
import logging
import sys


class Server:
    def configure_logging(self):
        lg = logging.getLogger("obskit_probe.server")
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.addHandler(logging.StreamHandler(sys.stderr))
        lg.propagate = False
"""


@pytest.fixture
def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], Any]]:
    """plant(name, source): a module obskit.integrations.<name> that exists for this test only."""
    folder = tmp_path / "planted"
    folder.mkdir()
    monkeypatch.setattr(obskit.integrations, "__path__", [*obskit.integrations.__path__, str(folder)])
    planted: list[str] = []

    def _plant(name: str, source: str) -> Any:
        (folder / f"{name}.py").write_text(source)
        planted.append(name)
        return _registry.get(name)

    yield _plant
    for name in planted:
        sys.modules.pop(f"obskit.integrations.{name}", None)
    _registry.disable_all()


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A "server" module whose configure_logging gives its logger a console handler and propagate=False."""
    (tmp_path / "obskit_probe_server.py").write_text(FAKE_SERVER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import obskit_probe_server  # type: ignore[import-not-found]

    obskit_probe_server.Server().configure_logging()
    yield obskit_probe_server
    sys.modules.pop("obskit_probe_server", None)
    lg = logging.getLogger("obskit_probe.server")
    for h in list(lg.handlers):
        lg.removeHandler(h)
    lg.propagate = True


def _probe_lines(cap: Any) -> list[str]:
    return [e["event"] for e in cap.logs if e.get("logger") == "obskit_probe.server"]


def test_router_adopts_only_declared_loggers(fake_server: Any) -> None:
    """Control: a server logger no integration declares keeps its own handler and never reaches obskit."""
    with capture() as cap:
        logging.getLogger("obskit_probe.server").warning("undeclared")
        assert _probe_lines(cap) == []
        assert logging.getLogger("obskit_probe.server").propagate is False


def test_router_routes_a_logger_a_new_integration_declares(
    plant: Callable[[str, str], Any], fake_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Planting one module is enough: its logger prints once through obskit, also after its server's
    declared re-configure method runs again."""
    fake_server.Server().configure_logging()  # the console handler binds to the current (captured) stderr
    integration = plant("probe", PROBE)
    assert integration is not None and "probe" in _registry.names()
    assert "obskit_probe.server" in _registry.owned_loggers()
    with capture() as cap:
        log = logging.getLogger("obskit_probe.server")
        log.warning("first")
        fake_server.Server().configure_logging()  # the server re-applies its own config
        log.warning("second")
        assert _probe_lines(cap) == ["first", "second"]
        assert log.propagate is True
    assert "first" not in capsys.readouterr().err


def test_registry_enables_a_planted_integration_and_runs_its_after_fork(
    plant: Callable[[str, str], Any],
) -> None:
    """A planted module is known by name (it shows in the unknown-name list), enabled, forked, torn down."""
    plant("probe", PROBE)
    probe = sys.modules["obskit.integrations.probe"]
    with capture(integrations=["probe"]) as cap:
        assert _registry.enabled() == ["probe"] and probe.calls == ["setup"]
        # The selection is the whole set: probe is listed again, or this enable() would switch it off.
        again = resolve({"integrations": ["probe", "no-such-thing"]}, environ={})
        assert _registry.enable(again) == ["probe"]
        (warning,) = [e["event"] for e in cap.logs if e.get("level") == "warning"]
        assert "'no-such-thing'" in warning and "probe" in warning.split("known:")[1]
        assert ("after_in_child", "integrations") in _fork.registered()
        _registry.after_fork()
        assert probe.calls == ["setup", "after_fork"]
    assert probe.calls == ["setup", "after_fork", "teardown"]


def test_after_fork_runs_in_a_real_child(tmp_path: Path) -> None:
    """os.fork() in a process with the planted integration enabled runs its after_fork in the child only."""
    (tmp_path / "planted").mkdir()
    (tmp_path / "planted" / "probe.py").write_text(PROBE)
    code = textwrap.dedent(f"""
        import os, sys
        import obskit.integrations
        obskit.integrations.__path__.append({str(tmp_path / "planted")!r})
        from obskit.integrations import _registry
        from obskit._config import resolve
        assert _registry.enable(resolve({{"integrations": ["probe"]}}, environ={{}})) == ["probe"]
        probe = sys.modules["obskit.integrations.probe"]
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, ",".join(probe.calls).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        print(os.read(read, 100).decode(), ",".join(probe.calls))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["setup,after_fork", "setup"]


def test_broken_module_is_reported_and_the_rest_still_work(plant: Callable[[str, str], Any]) -> None:
    """A module that fails to import, or declares nothing, is skipped with a warning; the others are known."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("obskit").addHandler(handler)
    try:
        plant("broken", "raise RuntimeError('boom')\n")
        plant("empty", "X = 1\n")
        names = _registry.names()
    finally:
        logging.getLogger("obskit").removeHandler(handler)
    assert "broken" not in names and "empty" not in names and "requests" in names
    assert "'broken' cannot be read: RuntimeError: boom" in stream.getvalue()
    assert "'empty' declares no INTEGRATION" in stream.getvalue()
