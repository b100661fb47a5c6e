"""``aiohttp``: its server and its client, traced by obskit's own hooks, with no wiring.

Server (``aiohttp.web``): every request of every ``web.Application``, created (or already serving) before or
after ``init()``, is one SERVER span named ``METHOD route`` (``GET /items/{item_id}``, the router's template;
``GET`` alone when no route matched), continuing an incoming ``traceparent``, and is counted in the RED
series every obskit server shares (``http_server_request_duration_seconds``, ``http_server_active_requests``;
:mod:`obskit.integrations._http_server`), with the request's trace as the bucket's exemplar. aiohttp's
"Error handling request" line (one, with the traceback) and its access line are written inside that span,
so they carry its ``trace_id``. Paths in ``OBSKIT_EXCLUDED_PATHS`` get no span, no series, and their access
line only at DEBUG.

Client (``aiohttp.ClientSession``): every call of every session is one CLIENT span (``GET``) that sends
``traceparent``, and one ``http_client_request_duration_seconds`` observation (method, status, server).

Why not OpenTelemetry's aiohttp instrumentors: their releases pin an older instrumentation core than the
other contrib packages obskit uses (pip would move them all back to match). The hooks
(``_aiohttp_server``, ``_aiohttp_client``) are imported when aiohttp's modules are, never by ``init()``:
``init()`` watches for ``import aiohttp`` (the client) and for aiohttp's server module, or hooks at once what
is imported already. :func:`instrument`, :func:`uninstrument` and :func:`is_instrumented` are for code that
manages the instrumentation itself; switching off puts aiohttp's methods back exactly as they were.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from obskit.integrations._contract import Integration, Teardown
from obskit.integrations._import_hook import HookWhenImported

from obskit._config import Config

__all__ = ["INTEGRATION", "instrument", "is_instrumented", "uninstrument"]

# (aiohttp's module, obskit's hook for it): the client comes with ``import aiohttp``; the server with
# ``aiohttp.web``, whose request handler module is complete (and patched) before ``aiohttp.web`` goes on.
# Each hook's ``PATCH`` is a ``MethodPatch``: the method replaced on the class, the very original put back.
_HOOKS = (("aiohttp", "obskit.integrations._aiohttp_client"),
          ("aiohttp.web_protocol", "obskit.integrations._aiohttp_server"))


def _patch(hook: str) -> Any:
    """The hook's ``PATCH`` (importing the hook); None while the hook module itself is still importing, which
    happens only when the application imported the private hook before aiohttp's module."""
    return getattr(importlib.import_module(hook), "PATCH", None)


def _loaded() -> list[Any]:
    """The ``PATCH`` of each hook imported so far."""
    return [p for p in (getattr(sys.modules.get(hook), "PATCH", None) for _, hook in _HOOKS) if p is not None]


def _instrument_imported() -> bool:
    """Patch each part of aiohttp imported so far; True if one was switched on now."""
    patches = [_patch(hook) for module, hook in _HOOKS if module in sys.modules]
    return any([patch.instrument() for patch in patches if patch is not None])


def instrument() -> bool:
    """Trace aiohttp's client and server from now on (importing them); False if both were already on."""
    patches = [_patch(hook) for _, hook in _HOOKS]
    return any([patch.instrument() for patch in patches if patch is not None])


def uninstrument() -> None:
    """Put aiohttp's methods back; sessions and servers keep working, untraced."""
    for patch in _loaded():
        patch.uninstrument()


def is_instrumented() -> bool:
    """Whether the client or the server hook is in effect."""
    return any(patch.is_instrumented() for patch in _loaded())


_hook = HookWhenImported(tuple(module for module, _ in _HOOKS), _instrument_imported, uninstrument)


def _setup(config: Config) -> Teardown | None:
    from obskit.integrations import _http_server

    _http_server.configure(config.excluded_paths)
    return _hook.setup()


INTEGRATION = Integration(
    name="aiohttp",
    extra="aiohttp",
    requires={"aiohttp": "3.9"},
    loggers=("aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.client", "aiohttp.internal",
             "aiohttp.websocket"),
    setup=_setup,
)
