"""Exposition: the ``/metrics`` server and the mountable WSGI/ASGI apps, all serving one registry.

The registry is chosen when a request arrives, not when the app object is built, because the app is often
built at import time while the multiprocess decision can come later (gunicorn's hooks). In multiprocess
mode it is the aggregate over every worker's files; otherwise prometheus-client's default registry, which
also carries the process, platform and GC collectors and any metric the application registered there.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted, make_wsgi_app, start_http_server

from .._errors import ConfigError
from .._runtime._safe import SafeLogger
from . import _multiprocess

__all__ = ["SERVED_BY_ENV", "MetricsServer", "exposition_registry", "metrics_asgi_app", "metrics_wsgi_app",
           "render", "serve"]

_log = SafeLogger("obskit.metrics")
#: pid of the process serving the aggregate ``/metrics`` port for a multi-worker server (inherited by forks)
SERVED_BY_ENV = "OBSKIT_METRICS_SERVED_BY"
_aggregates: dict[str, CollectorRegistry] = {}
_agg_lock = threading.Lock()


_extra: list[Any] = []


def add_collector(collector: Any) -> None:
    """Serve ``collector`` on every scrape: registered with the default registry and each aggregate one."""
    with _agg_lock:
        if collector in _extra:
            return
        _extra.append(collector)
        REGISTRY.register(collector)
        for reg in _aggregates.values():
            reg.register(collector)


def exposition_registry() -> Any:
    """What a scrape reads: every worker's values in multiprocess mode, else the default registry."""
    path = _multiprocess.directory()
    if path is None:
        return REGISTRY
    _multiprocess.explain_once()
    with _agg_lock:
        reg = _aggregates.get(path)
        if reg is None:
            # The aggregate's names are known only at collect time; without this flag a filtered scrape
            # (?name[]=...) would match nothing.
            reg = CollectorRegistry(auto_describe=False, support_collectors_without_names=True)
            reg.register(_multiprocess.AggregateCollector(path))  # type: ignore[arg-type]
            reg.register(_multiprocess.WorkerProcessCollector(path))  # type: ignore[arg-type]
            for collector in _extra:
                reg.register(collector)
            _aggregates[path] = reg
        return reg


def render(accept: str = "", accept_encoding: str = "", names: Iterable[str] = ()) -> tuple[bytes, list[
        tuple[str, str]]]:
    """Body and headers for one scrape, negotiated on ``Accept`` (OpenMetrics when asked for)."""
    registry = exposition_registry()
    wanted = list(names)
    if wanted:
        registry = registry.restricted_registry(wanted)
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry)
    headers = [("Content-Type", content_type)]
    if gzip_accepted(accept_encoding):
        body = gzip.compress(body)
        headers.append(("Content-Encoding", "gzip"))
    return body, headers


def metrics_wsgi_app() -> Callable[..., Iterable[bytes]]:
    """A WSGI app serving the metrics, to mount on the application's own port (e.g. at ``/metrics``)."""
    cache: dict[int, Any] = {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        registry = exposition_registry()
        inner = cache.get(id(registry))
        if inner is None:
            inner = cache[id(registry)] = make_wsgi_app(registry)
        return inner(environ, start_response)  # type: ignore[no-any-return]

    return app


def metrics_asgi_app() -> Callable[..., Any]:
    """An ASGI app serving the metrics; rendering runs in a worker thread, off the event loop."""

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope.get("type") != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        params = parse_qs(scope.get("query_string", b"").decode("utf-8"))
        body, out = await asyncio.to_thread(render, headers.get("accept", ""),
                                            headers.get("accept-encoding", ""), params.get("name[]", []))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in out]})
        await send({"type": "http.response.body", "body": body})

    return app


class MetricsServer:
    """The background ``/metrics`` HTTP server (a daemon thread)."""

    def __init__(self, httpd: Any, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self._pid = os.getpid()
        self.port: int = httpd.server_port

    def stop(self) -> None:
        """Stop serving and close the socket.

        In a forked child the serving thread does not exist, and ``shutdown()`` would wait for it forever:
        there, only this process's copy of the socket is closed (the parent keeps serving).
        """
        if os.getpid() == self._pid:
            self._httpd.shutdown()
        self._httpd.server_close()


class _Registry:
    """Looks the registry up per scrape (see the module docstring)."""

    def collect(self) -> Any:
        return exposition_registry().collect()

    def restricted_registry(self, names: Iterable[str]) -> Any:
        return exposition_registry().restricted_registry(names)


def serve(addr: str, port: int, strict: bool = False) -> MetricsServer | None:
    """Serve ``/metrics`` on ``addr:port``. Another worker holding the port is not an error; otherwise a port
    in use or an address that cannot be bound is a bad setting: reported naming the variables and what
    they accept, or, under ``strict``, raised as ``ConfigError``."""
    if _multiprocess.enabled() and os.environ.get(SERVED_BY_ENV) in (str(os.getpid()), str(os.getppid())):
        return None  # this process or gunicorn's master already serves the aggregate
    try:
        httpd, thread = start_http_server(port, addr, registry=_Registry())  # type: ignore[arg-type]
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and _multiprocess.enabled():
            _log.info("obskit: %s:%d is already serving /metrics (another worker); this one does not.",
                      addr, port)
        else:
            message = (f"obskit: cannot serve /metrics on {addr}:{port} ({exc.strerror or exc}); expected "
                       "metrics_port / OBSKIT_METRICS_PORT to be a free TCP port from 0 to 65535 (0 picks a "
                       "free one) and OBSKIT_METRICS_ADDR an IP address or host name of this machine, such "
                       "as 127.0.0.1 or 0.0.0.0. /metrics is not served.")
            if strict:
                raise ConfigError(message, option="metrics_port", variable="OBSKIT_METRICS_PORT") from None
            _log.error("%s", message)
        return None
    if _multiprocess.enabled():
        os.environ[SERVED_BY_ENV] = str(os.getpid())
    return MetricsServer(httpd, thread)
