"""The OTLP/HTTP exporters' transport, on the standard library's ``http.client`` instead of requests.

The OpenTelemetry HTTP exporters send through a requests session by default. Importing requests (with
urllib3, idna, charset detection and certifi) costs about 50 ms of start-up, its memory, and time at
interpreter teardown, for one POST per batch to one collector. ``http.client`` is enough for that: one
keep-alive connection per exporter, TLS through ``ssl``, and the proxy variables read as requests reads them
(``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``; an ``http://`` proxy, with a ``CONNECT`` tunnel for https).

Retrying stays the exporter's (``opentelemetry.exporter.otlp.common.http``): a failure comes back as the
result's ``error``, and ``is_connection_error`` names the ones it may retry (refused, reset, timed out, TLS,
a malformed response), as the requests transport does. Nothing is made at import: the lock, the connection
and the TLS context belong to each transport, and a connection opened before a fork is never used in the
child (obskit builds new exporters there anyway).
"""

from __future__ import annotations

import base64
import codecs
import http.client
import os
import ssl
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport

__all__ = ["StdlibHTTPTransport"]


class _Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively; a repeated header's values joined by ``, ``."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._items: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            self._items[key] = f"{self._items[key]}, {value}" if key in self._items else value

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class _Result(BaseHTTPResult):
    body: bytes = b""
    header_map: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def content(self) -> bytes:
        return self.body

    def headers(self) -> Mapping[str, str]:
        return self.header_map


class StdlibHTTPTransport(BaseHTTPTransport):
    """``verify``: True (the system's CAs), False, or a CA file or directory; ``cert``: the client certificate
    file, or (certificate, key)."""

    def __init__(self, *, verify: bool | str = True, cert: str | tuple[str, str] | None = None) -> None:
        self._verify = verify
        self._cert = cert
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()  # one request at a time on the one connection
        self._conn: http.client.HTTPConnection | None = None
        self._origin: tuple[str, str, int] = ("", "", 0)  # (scheme, host, port) _conn was opened for
        self._absolute = False  # _conn goes to a proxy: the request line carries the whole URL
        self._proxy_auth: dict[str, str] = {}
        self._pid = 0
        self._closing = False
        # The first connect resolves the host; socket.getaddrinfo encodes it with the "idna" codec, whose
        # module (with stringprep and unicodedata) is imported on first use. On an export thread competing for
        # the GIL with a busy app, that import took 0.7 s here while the queue filled; in init(), on the
        # caller's thread, it takes a millisecond.
        codecs.lookup("idna")

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                timeout: float | None = None, data: bytes | None = None) -> BaseHTTPResult:
        result: BaseHTTPResult
        try:
            if timeout is not None and timeout <= 0:
                raise TimeoutError("no time left for the request")
            with self._lock:
                result = self._send(method, url, headers or {}, timeout, data)
        except Exception as error:
            result = _Result(error=error)
        if self._closing:  # close() was called during the request: it could not take the lock
            self.close()
        return result

    def is_connection_error(self, exception: Exception | None) -> bool:
        # OSError: refused, reset, unreachable, timed out, TLS; HTTPException: no or a malformed response.
        return (isinstance(exception, (OSError, http.client.HTTPException))
                and not isinstance(exception, http.client.InvalidURL))

    def close(self) -> None:
        """Closes the connection now if idle, else as the request in flight ends (shutdown never waits)."""
        self._closing = True
        if self._lock.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._lock.release()

    def _send(self, method: str, url: str, headers: dict[str, str], timeout: float | None,
              data: bytes | None) -> _Result:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        origin = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
        if self._conn is not None and (origin != self._origin or self._pid != os.getpid()):
            self._drop()  # another server, or a connection the parent process opened
        reused = self._conn is not None and self._conn.sock is not None
        try:
            return self._exchange(origin, parts, method, headers, timeout, data)
        except ConnectionError:  # reset, broken pipe, or closed without a response
            if not reused:
                raise
            return self._exchange(origin, parts, method, headers, timeout, data)  # it had closed while idle

    def _exchange(self, origin: tuple[str, str, int], parts: urllib.parse.SplitResult, method: str,
                  headers: dict[str, str], timeout: float | None, data: bytes | None) -> _Result:
        """One request and its whole response on the connection, opened first if there is none; the connection
        is dropped if anything fails."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._open(origin, timeout)
        conn.timeout = timeout  # the connect's, when http.client reopens it
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        target = urllib.parse.urlunsplit(parts._replace(fragment="")) if self._absolute else (
            (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        try:
            conn.request(method, target, body=data, headers={**headers, **self._proxy_auth})
            response = conn.getresponse()
            body = response.read()  # all of it, so that the connection can take the next request
        except BaseException:
            self._drop()
            raise
        return _Result(status_code=response.status, reason=response.reason, body=body,
                       header_map=_Headers(response.getheaders()))

    def _open(self, origin: tuple[str, str, int], timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port = origin
        proxy = _proxy_for(scheme, host)
        self._origin, self._pid, self._absolute, self._proxy_auth = origin, os.getpid(), False, {}
        if proxy is None:
            if scheme == "https":
                return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls())
            return http.client.HTTPConnection(host, port, timeout=timeout)
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.scheme.lower() != "http" or not p.hostname:
            raise ValueError(f"unsupported proxy for {scheme}: only http:// proxies are")
        auth = {}
        if p.username is not None:
            user = f"{urllib.parse.unquote(p.username)}:{urllib.parse.unquote(p.password or '')}"
            auth = {"Proxy-Authorization": "Basic " + base64.b64encode(user.encode()).decode("ascii")}
        if scheme == "https":
            conn = http.client.HTTPSConnection(p.hostname, p.port or 80, timeout=timeout, context=self._tls())
            conn.set_tunnel(host, port, headers=auth)  # the proxy sees CONNECT, never the request
            return conn
        self._absolute, self._proxy_auth = True, auth
        return http.client.HTTPConnection(p.hostname, p.port or 80, timeout=timeout)

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                self._context = _tls_context(self._verify, self._cert)
            except OSError as exc:  # unreadable or invalid files: a configuration error, never retried
                raise ValueError(f"cannot load the TLS certificate files: {exc}") from exc
        return self._context

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy requests would use for ``scheme://host``: the environment's, unless ``NO_PROXY`` says no."""
    import urllib.request  # already imported by prometheus-client; here so that importing this module is free

    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy:
        return None
    try:
        bypass = bool(urllib.request.proxy_bypass(host))  # type: ignore[attr-defined]
    except Exception:  # requests ignores a failing bypass check too
        bypass = False
    return None if bypass else proxy


def _tls_context(verify: bool | str, cert: str | tuple[str, str] | None) -> ssl.SSLContext:
    if isinstance(verify, str):  # requests takes a CA file or a directory
        ca_file, ca_dir = (None, verify) if os.path.isdir(verify) else (verify, None)
        context = ssl.create_default_context(cafile=ca_file, capath=ca_dir)
    else:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif not context.cert_store_stats()["x509_ca"]:
            _trust_certifi(context)
    if isinstance(cert, tuple):
        context.load_cert_chain(cert[0], cert[1])
    elif cert is not None:
        context.load_cert_chain(cert)
    return context


def _trust_certifi(context: ssl.SSLContext) -> None:
    """The system CA file is missing or empty (a bare container): add certifi's bundle, when installed, which
    is what requests trusted."""
    try:
        import certifi  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    context.load_verify_locations(cafile=certifi.where())
