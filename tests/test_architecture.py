"""The package's shape, checked: no import cycles inside obskit, and ``import obskit`` has no side effects.

The layering rules themselves (what may import what) are in docs/architecture.md; this file enforces them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = {"obskit": ROOT / "obskit", "obskit.integrations": ROOT / "integrations"}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the installed package, by dotted name: (file, is a package ``__init__``)."""
    out: dict[str, tuple[Path, bool]] = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("").parts
            if prefix == "obskit" and rel and rel[0] == "integrations":
                continue
            is_pkg = rel[-1] == "__init__"
            name = ".".join((prefix, *rel[:-1]) if is_pkg else (prefix, *rel))
            out[name] = (path, is_pkg)
    return out


def _resolve(current: str, is_pkg: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = current.split(".") if is_pkg else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def import_graph() -> dict[str, set[str]]:
    """module -> the obskit modules it imports, at any depth of its code (function-level imports count)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_pkg, node.level, node.module)
                # ``from pkg import sub`` depends on pkg.sub when that is a module, else on pkg itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules on it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle() -> None:
    """No module of obskit (integrations included) imports, directly or through others, itself."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_a_planted_cycle() -> None:
    """The checker itself catches a cycle (a -> b -> c -> a), so the test above can fail."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


# Which package may import which: the runtime imports no signal, a signal no other signal.
LAYERS = {
    "obskit._runtime": {"obskit._config", "obskit._errors", "obskit._runtime"},
    "obskit._traces": {"obskit._config", "obskit._errors", "obskit._runtime", "obskit._traces"},
    "obskit._logs": {"obskit._config", "obskit._errors", "obskit._runtime", "obskit._logs"},
    "obskit._metrics": {"obskit._config", "obskit._errors", "obskit._runtime", "obskit._metrics"},
}


def test_layers() -> None:
    """The runtime imports no signal package; a signal package imports only the runtime, config and errors."""
    bad = []
    for module, deps in import_graph().items():
        for layer, allowed in LAYERS.items():
            if module == layer or module.startswith(layer + "."):
                bad += [f"{module} -> {d}" for d in deps
                        if not any(d == a or d.startswith(a + ".") for a in allowed)]
    assert not bad, "imports across layers:\n" + "\n".join(bad)


SIDE_EFFECTS = textwrap.dedent("""
    import os, sys, threading
    seen = []
    WATCH = {"os.mkdir", "os.remove", "os.rmdir", "os.rename", "shutil.rmtree", "_thread.start_new_thread",
             "os.fork", "subprocess.Popen", "socket.bind", "socket.connect"}
    def hook(event, args):
        if event in WATCH:
            seen.append((event, repr(args)[:200]))
        elif event == "open" and isinstance(args[1], str) and any(c in args[1] for c in "wax+"):
            seen.append((event, repr(args)[:200]))
    sys.addaudithook(hook)
    threads = threading.active_count()
    import obskit, obskit.integrations, obskit.testing
    %s
    assert not seen, seen
    assert threading.active_count() == threads, threading.enumerate()
    assert not os.path.exists(os.environ["OBSKIT_MULTIPROC_DIR"]), "import created the multiprocess directory"
    print("clean")
""")


@pytest.mark.parametrize("extra", ["", "obskit.counter  # the public surface is reachable without init()"])
def test_import_has_no_side_effects(tmp_path: Path, extra: str) -> None:
    """``import obskit`` writes, deletes and starts nothing, even with a multiprocess directory configured."""
    env = {"PATH": "/usr/bin:/bin", "OBSKIT_MULTIPROC_DIR": str(tmp_path / "mp"), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-B", "-c", SIDE_EFFECTS % extra], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "clean", proc.stdout + proc.stderr
