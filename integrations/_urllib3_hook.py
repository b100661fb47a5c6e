"""The urllib3 hook behind :mod:`obskit.integrations.urllib3`; imported only when it is switched on.

``HTTPConnectionPool.urlopen`` is wrapped on the class (``HTTPSConnectionPool`` inherits it): every request
of every pool, ``PoolManager`` and ``urllib3.request()``, made before or after ``init()``, goes through it
with its final host and path. The ``traceparent`` goes in a copy of the request's headers (or of the pool's
default headers when the call gives none), so the caller's dict is never changed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

try:
    import urllib3
    import urllib3.connectionpool
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"obskit.integrations.urllib3 needs urllib3 ({exc}); install it with: "
                      "pip install 'obskit[urllib3]'") from exc

from obskit.integrations._http_client import ClientRecorder, MethodPatch, is_traced

from obskit._runtime._safe import report_internal_error

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "obskit.integrations.urllib3"
_HEADERS_AT = 1  # urlopen(method, url, body, headers, ...): headers is the second of the extra positionals


def _url(pool: Any, url: str) -> str:
    """The request's absolute URL: ``url`` itself through an HTTP proxy, else the pool's origin + path."""
    if "://" in url:
        return url
    host = f"[{pool.host}]" if ":" in pool.host else pool.host
    default = {"http": 80, "https": 443}.get(pool.scheme)
    port = f":{pool.port}" if pool.port and pool.port != default else ""
    return f"{pool.scheme}://{host}{port}{url}"


def _with_headers(pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                  extra: dict[str, str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) whose headers are a copy of the call's (or the pool's) with ``extra`` added."""
    if not extra:
        return args, kwargs
    try:
        positional = len(args) > _HEADERS_AT
        given = args[_HEADERS_AT] if positional else kwargs.get("headers")
        headers = urllib3.HTTPHeaderDict(pool.headers if given is None else given)
        for name, value in extra.items():
            headers[name] = value
        if positional:
            return (*args[:_HEADERS_AT], headers, *args[_HEADERS_AT + 1:]), kwargs
        return args, {**kwargs, "headers": headers}
    except Exception as exc:
        report_internal_error("urllib3: adding traceparent", exc)
        return args, kwargs


def _wrap(recorder: ClientRecorder, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if not is_traced():
            return original(self, method, url, *args, **kwargs)

        def send(extra: dict[str, str]) -> Any:
            call_args, call_kwargs = _with_headers(self, args, kwargs, extra)
            return original(self, method, url, *call_args, **call_kwargs)

        try:
            full = _url(self, url)
        except Exception as exc:
            report_internal_error("urllib3: reading the request's URL", exc)
            return original(self, method, url, *args, **kwargs)
        return recorder.run(method, full, send)

    urlopen.__obskit_original__ = original  # type: ignore[attr-defined]
    return urlopen


def _traced(original: Callable[..., Any]) -> Callable[..., Any]:
    return _wrap(ClientRecorder(_SCOPE, getattr(urllib3, "__version__", "")), original)


_PATCH = MethodPatch(urllib3.connectionpool.HTTPConnectionPool, "urlopen", _traced)
#: Trace every pool's requests, existing and future; False if already instrumented.
instrument = _PATCH.instrument
uninstrument = _PATCH.uninstrument
is_instrumented = _PATCH.is_instrumented
