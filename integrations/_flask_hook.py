"""The Flask hook (imported only once Flask is): every app traced, its span and series named by ``url_rule``.

``Flask.__call__`` is patched on the class, so apps created before ``init()`` are covered, and so are apps
whose ``wsgi_app`` the application wrapped itself (``ProxyFix``): the server always calls the app object.
Each app gets one :class:`~obskit.integrations.wsgi.ObskitWSGIMiddleware` on its first request. Flask's
``request_started`` signal reports the matched rule (``/items/<int:item_id>``) and ``got_request_exception``
the exception Flask turns into a 500, both to the request being served.

When obskit routes logging, Flask's ``default_handler`` (added to ``app.logger`` when that logger was first
used before ``init()``) is taken off, so the app's lines, among them "Exception on /path [GET]" with its
traceback, print once, through obskit, inside the request's span.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from obskit.integrations import _http_server
from obskit.integrations.wsgi import ObskitWSGIMiddleware

__all__ = ["instrument", "uninstrument"]

_MIDDLEWARE = "_obskit_middleware"
_original: Any = None


def _route_from_rule(sender: Any, **extra: Any) -> None:
    import flask

    rule = flask.request.url_rule
    _http_server.set_route(rule.rule if rule is not None else None)


def _note_exception(sender: Any, exception: BaseException | None = None, **extra: Any) -> None:
    request = _http_server.current()
    if request is not None and exception is not None:
        request.note_exception(exception)


def _quiet_default_handler(app: Any) -> None:
    from flask.logging import default_handler

    from obskit._logs._stdlib import ObskitHandler

    if any(isinstance(h, ObskitHandler) for h in logging.getLogger().handlers):
        app.logger.removeHandler(default_handler)


def instrument() -> bool:
    """Patch ``Flask.__call__`` and connect the signals; False when already done."""
    global _original
    import flask

    if _original is not None:
        return False
    original = flask.Flask.__call__

    def __call__(self: Any, environ: Any, start_response: Any) -> Any:
        middleware = self.__dict__.get(_MIDDLEWARE)
        if middleware is None:
            middleware = ObskitWSGIMiddleware(functools.partial(original, self))
            self.__dict__[_MIDDLEWARE] = middleware
            _quiet_default_handler(self)
        return middleware(environ, start_response)

    _original = original
    flask.Flask.__call__ = __call__  # type: ignore[method-assign]
    flask.request_started.connect(_route_from_rule, weak=False)
    flask.got_request_exception.connect(_note_exception, weak=False)
    return True


def uninstrument() -> None:
    """Put ``Flask.__call__`` back and disconnect; apps keep working, untraced."""
    global _original
    import flask

    if _original is None:
        return
    flask.Flask.__call__ = _original  # type: ignore[method-assign]
    _original = None
    flask.request_started.disconnect(_route_from_rule)
    flask.got_request_exception.disconnect(_note_exception)
