"""Each integration: its library installed or not, instrumented by ``init()`` or not, the extra to install.

"Instrumented" is not guessed from installed metadata: each integration ``init()`` would switch on is
switched on here for real, with its own ``setup``, and off again, so an instrumentation that refuses to load
(a version conflict) shows here exactly as it would in the service.
"""

from __future__ import annotations

import importlib.metadata

from obskit.integrations import _registry
from obskit.integrations._contract import DidNotEnable, Integration, check_requires

from .._config import Config
from ._report import OK, WARN, Check

__all__ = ["check_integrations"]


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _selected(config: Config, integration: Integration) -> bool:
    if config.integrations == "auto":
        return integration.auto
    if config.integrations == "none":
        return False
    return integration.name in config.integrations


def _try_setup(integration: Integration, config: Config) -> str | None:
    """None when ``setup`` switched the integration on (then off again), else why it did not."""
    assert integration.setup is not None
    try:
        teardown = integration.setup(config)
    except DidNotEnable as exc:
        return str(exc)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    if teardown is not None:
        teardown()
    return None


def _one(integration: Integration, config: Config) -> Check:
    name, extra = integration.name, integration.extra
    install = f"pip install 'obskit[{extra}]'"
    libraries = [d for d in integration.requires if not d.startswith("opentelemetry-")]
    versions = {d: _installed(d) for d in integration.requires}
    shown = ", ".join(f"{d} {versions[d]}" for d in (libraries or list(integration.requires)) if versions[d])
    if libraries and not all(versions[d] for d in libraries):
        status = WARN if _selected(config, integration) and config.integrations != "auto" else OK
        return Check(status, f"integration {name}",
                     f"{', '.join(libraries)} not installed; to trace it: {install}")
    try:
        check_requires(integration.requires)
    except DidNotEnable as exc:
        return Check(WARN, f"integration {name}", f"{shown or 'installed'} but not traced: {exc}; {install}")
    if integration.wiring is not None:
        return Check(OK, f"integration {name}", f"{shown} installed; init() does not switch it on: "
                                                f"{integration.wiring}")
    if integration.setup is None:
        return Check(OK, f"integration {name}", f"{shown} installed: its loggers go through obskit's logs")
    if config.disabled:
        return Check(WARN, f"integration {name}", f"{shown} installed, not instrumented: the SDK is disabled")
    if not _selected(config, integration):
        return Check(WARN, f"integration {name}", f"{shown} installed, not instrumented: OBSKIT_INTEGRATIONS "
                                                  "leaves it out")
    problem = _try_setup(integration, config)
    if problem is not None:
        return Check(WARN, f"integration {name}", f"{shown} installed, but instrumenting failed: {problem}; "
                                                  f"{install}")
    return Check(OK, f"integration {name}", f"{shown}: instrumented by init()")


def check_integrations(config: Config) -> list[Check]:
    """One line per integration the package holds, in name order."""
    found = _registry.integrations()
    return [_one(found[name], config) for name in sorted(found)]
