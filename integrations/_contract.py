"""The integration contract: every public module of ``obskit.integrations`` declares one :class:`Integration`.

A module ``integrations/<name>.py`` ends with ``INTEGRATION = Integration(...)``, saying in one shape:

- ``name``: what users list in ``integrations=`` / ``OBSKIT_INTEGRATIONS``;
- ``extra``: the extra in ``pyproject.toml`` that installs what it needs (``pip install 'obskit[<extra>]'``);
- ``requires``: distribution name -> minimum version, read from installed metadata (nothing is imported);
- ``setup``: how ``init()`` switches it on. It returns how to switch it off again, or None when it was on
  already and is not obskit's to undo; called again it must change nothing. None: ``init()`` has nothing
  to switch on (a server whose loggers obskit routes, a middleware the application wraps itself);
- ``module``: the module whose import means the application uses the library (``redis``). ``init()`` never
  imports it: ``setup`` runs at once if the application has imported it already, else right after it
  does (a post-import hook), so an installed library the application does not use costs nothing.
  None: ``setup`` runs in ``init()`` (it hooks imports itself, or needs no library);
- ``loggers``: loggers the library or server configures for itself; obskit's log router adopts them;
- ``reconfigure_hooks``: ``(module, class, method)`` the server calls to re-apply its own logging config,
  after which the router adopts ``loggers`` again;
- ``after_fork``: what each worker needs in the child after a fork, once enabled (default: nothing);
- ``stop_hooks``: ``(module, class, method)`` a server calls when it stops serving, after which it may end
  the process past ``atexit`` (uvicorn re-raises SIGTERM with the default handler): obskit flushes when
  it returns, whatever ``integrations=`` says;
- ``patches``: ``(module, class, method, wrap)``: ``init()`` replaces a server's method by ``wrap(method)``,
  whatever ``integrations=`` says (it acts only inside that server), and ``reset()`` puts it back;
- ``wiring``: for a piece the application wires itself, what to do instead of listing it;
  ``aliases``: other names people try for it (``flask``), each with what to do.

The module imports its library only inside ``setup`` (or what ``setup`` calls): the registry imports every
integration module to read its declaration, and that must stay cheap and work without the library.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

from obskit._config import Config

__all__ = [
    "DidNotEnable",
    "Integration",
    "Patch",
    "ReconfigureHook",
    "Setup",
    "Teardown",
    "check_requires",
    "discovering",
    "load",
    "otel_instrumentor",
]

Teardown = Callable[[], None]
Setup = Callable[[Config], Teardown | None]
ReconfigureHook = tuple[str, str, str]
Patch = tuple[str, str, str, Callable[[Callable[..., Any]], Callable[..., Any]]]


class DidNotEnable(Exception):
    """The integration's library (or its instrumentation package) is missing or too old: skip it."""


@dataclass(frozen=True)
class Integration:
    """What one integration declares; see the module docstring for each field."""

    name: str
    extra: str
    requires: Mapping[str, str]
    setup: Setup | None = None
    module: str | None = None
    loggers: tuple[str, ...] = ()
    reconfigure_hooks: tuple[ReconfigureHook, ...] = ()
    after_fork: Callable[[], None] | None = None
    stop_hooks: tuple[ReconfigureHook, ...] = ()
    patches: tuple[Patch, ...] = ()
    wiring: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or not self.extra:
            raise ValueError(f"integration name and extra must be lowercase and set: {self.name!r}")
        if self.setup is not None and self.wiring is not None:
            raise ValueError(f"integration {self.name!r}: either init() switches it on, or it is wired")
        # Read-only views: a declaration is a constant.
        object.__setattr__(self, "requires", MappingProxyType(dict(self.requires)))
        object.__setattr__(self, "aliases", MappingProxyType(dict(self.aliases)))

    @property
    def auto(self) -> bool:
        """Whether ``integrations="auto"`` switches it on (it has a ``setup``)."""
        return self.setup is not None


def load(module: str) -> ModuleType:
    """``importlib.import_module(module)``, turning a failed import into :class:`DidNotEnable`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DidNotEnable(str(exc)) from None


def otel_instrumentor(library: str, module: str, cls: str, **kwargs: Any) -> Setup:
    """A ``setup`` built on an OpenTelemetry contrib ``BaseInstrumentor`` (a per-class singleton).

    Idempotent the way ``BaseInstrumentor`` is: if the library is instrumented already (by obskit or by the
    application), nothing is done and None is returned, so obskit never undoes what it did not do.
    """

    def setup(config: Config) -> Teardown | None:
        load(library)
        instrumentor = getattr(load(module), cls)()
        if instrumentor.is_instrumented_by_opentelemetry:
            return None
        from opentelemetry.instrumentation.dependencies import DependencyConflictError

        try:
            # Without raise_exception_on_conflict a version mismatch logs an error and silently does nothing.
            instrumentor.instrument(raise_exception_on_conflict=True, **kwargs)
        except DependencyConflictError as exc:
            raise DidNotEnable(str(exc)) from None
        return lambda: instrumentor.uninstrument()

    return setup


_RELEASE = re.compile(r"v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev)[-_.]?(\d*))?", re.I)
_PHASES = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "c": 3, "rc": 3, "pre": 3, "preview": 3}


def _version_key(version: str) -> tuple[tuple[int, ...], int, int]:
    """Enough of PEP 440 to compare against a minimum: release numbers, then dev < a < b < rc < final."""
    match = _RELEASE.match(version.strip())
    if match is None:
        raise ValueError(version)
    release = tuple(int(x) for x in match.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    phase = match.group(2)
    if phase is None:
        return release, 9, 0
    return release, _PHASES[phase.lower()], int(match.group(3) or 0)


_NAME_SEP = re.compile(r"[-_.]+")
_installed: dict[str, str] | None = None


def _normalize(name: str) -> str:
    return _NAME_SEP.sub("-", name).lower()


def _installed_versions() -> dict[str, str]:
    """name -> version of the wheels installed on ``sys.path``, read from their ``.dist-info`` folder names
    in one listing per folder (``importlib.metadata.version`` searches every path entry again for each
    name: 36 lookups took 90 ms of ``init()``). Names not found here are looked up the slow way."""
    global _installed
    if _installed is None:
        found: dict[str, str] = {}
        for entry in sys.path:
            try:
                names = os.listdir(entry or ".")
            except OSError:
                continue
            for folder in names:
                if folder.endswith(".dist-info"):
                    name, _, version = folder[: -len(".dist-info")].rpartition("-")
                    if name and version:
                        found.setdefault(_normalize(name), version)  # the first on sys.path wins
        _installed = found
    return _installed


def _version(dist: str) -> str:
    version = _installed_versions().get(_normalize(dist))
    return version if version is not None else importlib.metadata.version(dist)


def check_requires(requires: Mapping[str, str]) -> None:
    """Raise :class:`DidNotEnable` unless every distribution is installed at its minimum version or later.

    Reads installed metadata only: nothing is imported, so checking is cheap and has no side effects.
    """
    for dist, minimum in requires.items():
        try:
            installed = _version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise DidNotEnable(f"{dist} is not installed") from None
        try:
            too_old = _version_key(installed) < _version_key(minimum)
        except ValueError:
            continue  # a version we cannot read: let the import decide
        if too_old:
            raise DidNotEnable(f"{dist} {installed} is older than {minimum}")


_discovery = threading.local()


@contextlib.contextmanager
def discovering() -> Iterator[None]:
    """Marks imports made by the registry to read declarations (a module with import-time work skips it)."""
    _discovery.active = True
    try:
        yield
    finally:
        _discovery.active = False


def is_discovering() -> bool:
    """Whether this thread is importing integration modules only to read their declarations."""
    return bool(getattr(_discovery, "active", False))
