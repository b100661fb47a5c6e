"""The Django hook (imported only once Django's request handlers are): every project traced, no wiring.

``WSGIHandler.__call__`` and ``ASGIHandler.__call__`` are patched on the classes, so whatever builds the
handler (``get_wsgi_application()`` in ``wsgi.py``, ``runserver``, ``get_asgi_application()``) and whenever,
each handler gets one obskit middleware on its first request. ``BaseHandler.resolve_request`` reports the
matched route (``items/<int:pk>``, as Django writes it) to the request being served, and the
``got_request_exception`` signal the exception Django turns into a 500, so the series carry its class.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from obskit.integrations import _http_server

__all__ = ["instrument", "uninstrument"]

_MIDDLEWARE = "_obskit_middleware"
_originals: dict[tuple[type, str], Any] = {}
_signal: list[bool] = []  # connected (a list: no global statement needed)


def _note_exception(sender: Any, **kwargs: Any) -> None:
    request = _http_server.current()
    exc = sys.exc_info()[1]
    if request is not None and exc is not None:
        request.note_exception(exc)


def _patch(cls: type, name: str, replacement: Any) -> None:
    _originals[(cls, name)] = cls.__dict__[name]
    setattr(cls, name, replacement)


def instrument() -> bool:
    """Patch the handler classes whose modules are imported (called again as the other one is) and, with
    the first, route resolution and the signal; False when there was nothing new to patch."""
    from obskit.integrations.asgi import ObskitASGIMiddleware
    from obskit.integrations.wsgi import ObskitWSGIMiddleware

    patched = False
    wsgi_module = sys.modules.get("django.core.handlers.wsgi")
    if wsgi_module is not None and (wsgi_module.WSGIHandler, "__call__") not in _originals:
        wsgi_call = wsgi_module.WSGIHandler.__call__

        def wsgi(self: Any, environ: Any, start_response: Any) -> Any:
            middleware = self.__dict__.get(_MIDDLEWARE)
            if middleware is None:
                middleware = self.__dict__[_MIDDLEWARE] = ObskitWSGIMiddleware(
                    functools.partial(wsgi_call, self))
            return middleware(environ, start_response)

        _patch(wsgi_module.WSGIHandler, "__call__", wsgi)
        patched = True
    asgi_module = sys.modules.get("django.core.handlers.asgi")
    if asgi_module is not None and (asgi_module.ASGIHandler, "__call__") not in _originals:
        asgi_call = asgi_module.ASGIHandler.__call__

        async def asgi(self: Any, scope: Any, receive: Any, send: Any) -> None:
            middleware = self.__dict__.get(_MIDDLEWARE)
            if middleware is None:
                middleware = self.__dict__[_MIDDLEWARE] = ObskitASGIMiddleware(
                    functools.partial(asgi_call, self))
            await middleware(scope, receive, send)

        _patch(asgi_module.ASGIHandler, "__call__", asgi)
        patched = True
    if patched and not _signal:
        from django.core.handlers.base import BaseHandler  # type: ignore[import-untyped,unused-ignore]
        from django.core.signals import got_request_exception  # type: ignore[import-untyped,unused-ignore]

        resolve = BaseHandler.resolve_request

        def resolve_request(self: Any, request: Any) -> Any:
            match = resolve(self, request)
            _http_server.set_route(getattr(match, "route", None))
            return match

        _patch(BaseHandler, "resolve_request", resolve_request)
        got_request_exception.connect(_note_exception, weak=False, dispatch_uid="obskit")
        _signal.append(True)
    return patched


def uninstrument() -> None:
    """Put the handlers back and disconnect; handlers that served a request keep their middleware."""
    if not _originals:
        return
    from django.core.signals import got_request_exception  # type: ignore[import-untyped,unused-ignore]

    for (cls, name), original in _originals.items():
        setattr(cls, name, original)
    _originals.clear()
    got_request_exception.disconnect(dispatch_uid="obskit")
    _signal.clear()
