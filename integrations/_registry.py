"""The registry: finds every integration module in ``obskit.integrations`` and switches them on and off.

There is no hand-kept list: each public module of the package (``integrations/<name>.py``) is an integration
and declares one :class:`~obskit.integrations._contract.Integration` as ``INTEGRATION``. Reading the
declarations imports obskit's own modules only; the libraries they instrument are imported when an
integration is switched on, and only after its ``requires`` are found installed.

``integrations="auto"`` enables every integration that has a ``setup`` and whose requirements are met; a
list names them; "none" enables nothing. A named integration that cannot be enabled is reported once with
the extra to install. Enabling is idempotent: a library already instrumented (by an earlier ``init()``, or
by the application itself before ``init()``) is left alone, and only what obskit switched on is switched
off again by :func:`disable_all`, so the application's own instrumentation survives obskit's shutdown.

The log router (``obskit._logs._stdlib``) reads the loggers and re-configure hooks every integration
declares from here: the registry hands :func:`declarations` to it when this module is imported, so the
logging layer never imports the integrations.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import os
import sys
import threading
from collections.abc import Iterable

from obskit.integrations._contract import (
    DidNotEnable,
    Integration,
    Patch,
    ReconfigureHook,
    Teardown,
    check_requires,
)
from obskit.integrations._contract import discovering as _discovering
from obskit.integrations._import_hook import HookWhenImported
from opentelemetry import trace

from obskit._config import Config
from obskit._logs import _stdlib
from obskit._runtime import _fork

__all__ = [
    "DidNotEnable",
    "Integration",
    "after_fork",
    "declarations",
    "disable_all",
    "enable",
    "enabled",
    "get",
    "integrations",
    "names",
    "owned_loggers",
    "patches",
    "reconfigure_targets",
    "stop_targets",
]

_log = logging.getLogger("obskit")
PACKAGE = "obskit.integrations"

_lock = threading.RLock()
_found: dict[str, Integration] = {}
_found_in: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (package path, module names) read
_enabled: dict[str, Teardown | None] = {}
# The global tracer provider when the integrations above were enabled: instrumentors keep the tracer they
# took from it, so if it has been replaced since (tests resetting obskit), they must be enabled afresh.
_provider: object | None = None
_fork_hook = False


# What a module file may end with (.py, .pyc, .so, ...), longest first as inspect.getmodulename tries them.
_SUFFIXES = tuple(sorted(importlib.machinery.all_suffixes(), key=len, reverse=True))


def _module_name(filename: str) -> str:
    return next((filename[: -len(s)] for s in _SUFFIXES if filename.endswith(s)), "")


def _public_modules(path: tuple[str, ...]) -> tuple[str, ...]:
    """The public modules and packages in the package's folders, sorted: what ``pkgutil.iter_modules`` lists
    (not ``_``-prefixed), from one ``os.scandir`` per folder. pkgutil took 0.6 ms, and the registry lists
    the folders at each look-up, six in every ``init()``."""
    names: set[str] = set()
    for folder in path:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("_"):
                continue  # private (or __pycache__)
            name = _module_name(entry.name)
            if not name and "." not in entry.name and entry.is_dir():
                try:
                    inside = os.listdir(entry.path)
                except OSError:
                    inside = []
                if any(_module_name(f) == "__init__" for f in inside):
                    name = entry.name
            if name and "." not in name:
                names.add(name)
    return tuple(sorted(names))


def _discover() -> dict[str, Integration]:
    """Every integration in the package, by name, in module order; modules are read again only when the
    package's folders or the modules in them change (listing them is cheap, importing is done once)."""
    global _found, _found_in
    package = importlib.import_module(PACKAGE)
    path = tuple(package.__path__)
    modules = _public_modules(path)
    with _lock:
        if _found_in == (path, modules):
            return _found
        found: dict[str, Integration] = {}
        with _discovering():
            for name in modules:
                try:
                    declared = getattr(importlib.import_module(f"{PACKAGE}.{name}"), "INTEGRATION", None)
                except Exception as exc:
                    _log.warning("obskit: integration module %r cannot be read: %s: %s", name,
                                 type(exc).__name__, exc)
                    continue
                if not isinstance(declared, Integration):
                    _log.warning("obskit: integration module %r declares no INTEGRATION", name)
                    continue
                found[declared.name] = declared
        _found, _found_in = found, (path, modules)
        return found


def integrations() -> dict[str, Integration]:
    """Every integration the package holds, by name (a copy)."""
    return dict(_discover())


def names() -> list[str]:
    """The names users can list, sorted."""
    return sorted(_discover())


def get(name: str) -> Integration | None:
    """The integration called ``name``, or None."""
    return _discover().get(name)


def owned_loggers() -> tuple[str, ...]:
    """Every logger an integration declares, in declaration order, each once: what the log router adopts."""
    return tuple(dict.fromkeys(lg for i in _discover().values() for lg in i.loggers))


def reconfigure_targets() -> tuple[ReconfigureHook, ...]:
    """Every ``(module, class, method)`` a server calls to re-apply its logging config, each once."""
    return tuple(dict.fromkeys(h for i in _discover().values() for h in i.reconfigure_hooks))


def stop_targets() -> tuple[ReconfigureHook, ...]:
    """Every ``(module, class, method)`` a server calls when it stops serving, each once."""
    return tuple(dict.fromkeys(h for i in _discover().values() for h in i.stop_hooks))


def patches() -> tuple[Patch, ...]:
    """Every ``(module, class, method, wrap)`` integrations patch into their server, each once."""
    return tuple(dict.fromkeys(p for i in _discover().values() for p in i.patches))


def declarations() -> tuple[tuple[str, ...], tuple[ReconfigureHook, ...]]:
    """(loggers, re-configure hooks) for the log router."""
    return owned_loggers(), reconfigure_targets()


def _aliases(found: Iterable[Integration]) -> dict[str, str]:
    return {alias: hint for i in found for alias, hint in i.aliases.items()}


def enable(config: Config) -> list[str]:
    """Switch on the integrations ``config.integrations`` selects; returns the names enabled."""
    global _provider
    provider = trace.get_tracer_provider()
    if _enabled and provider is not _provider:
        disable_all()  # stale: bound to a provider that is gone, whatever this init() asks for
    choice = config.integrations
    if choice == "none" or config.disabled:
        disable_all()  # what an earlier init() switched on (a shutdown() keeps it) is not wanted now
        return []
    found = _discover()
    explicit = choice != "auto"
    if explicit:
        wanted = list(dict.fromkeys(n.strip().lower() for n in choice))
    else:
        wanted = [name for name, i in found.items() if i.auto]
    _disable([name for name in enabled() if name not in wanted])
    aliases = _aliases(found.values())
    on: list[str] = []
    with _lock:
        _provider = provider
        for name in wanted:
            integration = found.get(name)
            if integration is None:
                if name in aliases:
                    _log.warning("obskit: %r is not enabled by init(); %s", name, aliases[name])
                else:
                    _log.warning("obskit: unknown integration %r in OBSKIT_INTEGRATIONS/integrations=; "
                                 "known: %s", name, ", ".join(sorted(found)))
                continue
            if integration.wiring is not None:
                _log.warning("obskit: %r is not enabled by init(); %s", name, integration.wiring)
                continue
            if name in _enabled:
                on.append(name)
                continue
            if _switch_on(integration, config, explicit):
                on.append(name)
    if any(found[n].after_fork is not None for n in on):
        _install_fork_hook()
    return on


def _switch_on(integration: Integration, config: Config, explicit: bool) -> bool:
    name = integration.name
    try:
        check_requires(integration.requires)
        if integration.setup is None:
            # Nothing to switch on: obskit routes its loggers whenever it routes logging.
            _log.debug("obskit: integration %r has nothing to switch on", name)
            return False
        module = integration.module
        if module is not None and module not in sys.modules:
            _enabled[name] = _when_imported(integration, module, config, explicit)
            return True
        _enabled[name] = integration.setup(config)
    except DidNotEnable as exc:
        _unavailable(integration, exc, explicit)
        return False
    except Exception as exc:
        _log.warning("obskit: integration %r failed to enable: %s: %s", name, type(exc).__name__, exc)
        return False
    return True


def _unavailable(integration: Integration, exc: DidNotEnable, explicit: bool) -> None:
    if explicit:
        _log.warning("obskit: integration %r is not available (%s); install it with "
                     "pip install 'obskit[%s]'", integration.name, exc, integration.extra)
    else:
        _log.debug("obskit: integration %r skipped: %s", integration.name, exc)


def _when_imported(integration: Integration, module: str, config: Config, explicit: bool) -> Teardown:
    """Run ``setup`` right after the application imports ``module``; the teardown undoes either step.

    ``init()`` must not import a library the application does not use: importing every installed one made
    start-up slow (FastAPI alone took 0.3 s) and pulled in code the service never runs.
    """
    undo: list[Teardown] = []

    def instrument() -> bool:
        try:
            teardown = integration.setup(config) if integration.setup is not None else None
        except DidNotEnable as exc:
            _unavailable(integration, exc, explicit)
            return False
        except Exception as exc:
            _log.warning("obskit: integration %r failed to enable: %s: %s", integration.name,
                         type(exc).__name__, exc)
            return False
        if teardown is not None:
            undo.append(teardown)
        return teardown is not None

    def uninstrument() -> None:
        while undo:
            undo.pop()()

    teardown = HookWhenImported((module,), instrument, uninstrument).setup()
    return teardown if teardown is not None else uninstrument


def enabled() -> list[str]:
    """Names of the integrations switched on so far (including ones that were already on)."""
    with _lock:
        return list(_enabled)


def disable_all() -> None:
    """Undo what :func:`enable` instrumented, newest first; never raises."""
    _disable(enabled())


def _disable(names: list[str]) -> None:
    """Undo what :func:`enable` instrumented for ``names``, newest first; never raises."""
    with _lock:
        undo = [(name, _enabled.pop(name)) for name in names if name in _enabled]
    for name, teardown in reversed(undo):
        if teardown is None:
            continue
        try:
            teardown()
        except Exception as exc:
            _log.warning("obskit: integration %r failed to disable: %s: %s", name, type(exc).__name__, exc)


def after_fork() -> None:
    """In a forked child: run each enabled integration's ``after_fork``, in the order they were enabled."""
    found = _found
    for name in list(_enabled):
        hook = found[name].after_fork if name in found else None
        if hook is None:
            continue
        try:
            hook()
        except Exception as exc:
            _log.warning("obskit: integration %r failed after fork: %s: %s", name, type(exc).__name__, exc)


def _install_fork_hook() -> None:
    global _fork_hook
    if not _fork_hook:
        _fork_hook = True
        _fork.register("integrations", after_in_child=after_fork)


def _reset_for_tests() -> None:
    """Tests get a fresh provider per test: instrumentation bound to the old one must go with it."""
    disable_all()


_stdlib.read_declarations_from(declarations)
