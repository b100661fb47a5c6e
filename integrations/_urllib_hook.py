"""The ``urllib.request`` hook behind :mod:`obskit.integrations.urllib`; imported only when it is switched on.

``AbstractHTTPHandler.do_open`` is wrapped on the class: it is the one method that sends a request over
HTTP or HTTPS, for ``urlopen()``, every opener and every handler built on the standard ones. It runs once
per request actually sent, so a redirect followed is two spans, and it returns the response before urllib
turns a status >= 400 into ``HTTPError``, so that status is on the span. The ``traceparent`` is added to
the request for the send only: a ``Request`` object the caller keeps is left as it was.
"""

from __future__ import annotations

import functools
import platform
import urllib.request
from collections.abc import Callable
from typing import Any

from obskit.integrations._http_client import ClientRecorder, MethodPatch, is_traced

from obskit._runtime._safe import report_internal_error

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "obskit.integrations.urllib"


def _send(original: Callable[..., Any], handler: Any, http_class: Any, req: Any, extra: dict[str, str],
          kwargs: dict[str, Any]) -> Any:
    """``original`` with ``extra`` among the request's headers while it runs (urllib sends the unredirected
    ones first, so they win over a header of the same name the caller set)."""
    saved: dict[str, Any] = {}
    headers: dict[str, str] = {}
    try:
        headers = req.unredirected_hdrs
        for name, value in extra.items():
            key = name.capitalize()  # how Request.add_unredirected_header spells it
            saved[key] = headers.get(key)
            headers[key] = value
    except Exception as exc:
        report_internal_error("urllib: adding traceparent", exc)
    try:
        return original(handler, http_class, req, **kwargs)
    finally:
        for key, value in saved.items():
            if value is None:
                headers.pop(key, None)
            else:
                headers[key] = value


def _wrap(recorder: ClientRecorder, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def do_open(self: Any, http_class: Any, req: Any, **kwargs: Any) -> Any:
        if not is_traced():
            return original(self, http_class, req, **kwargs)
        try:
            method, url = req.get_method(), req.full_url
        except Exception as exc:
            report_internal_error("urllib: reading the request", exc)
            return original(self, http_class, req, **kwargs)
        return recorder.run(method, url, lambda extra: _send(original, self, http_class, req, extra, kwargs))

    do_open.__obskit_original__ = original  # type: ignore[attr-defined]
    return do_open


def _traced(original: Callable[..., Any]) -> Callable[..., Any]:
    return _wrap(ClientRecorder(_SCOPE, platform.python_version()), original)


_PATCH = MethodPatch(urllib.request.AbstractHTTPHandler, "do_open", _traced)
#: Trace every request ``urllib.request`` sends from now on; False if already instrumented.
instrument = _PATCH.instrument
uninstrument = _PATCH.uninstrument
is_instrumented = _PATCH.is_instrumented
