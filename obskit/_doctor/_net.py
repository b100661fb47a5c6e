"""Plain TCP questions asked before and after an OTLP request: can we connect, and what does the port speak.

A refused or silent port is told apart from a protocol mix-up here, from bytes on the wire rather than from
a library's error text: a gRPC client pointed at an HTTP/1.1 receiver only says ``Failed parsing HTTP/2``,
and an HTTP client pointed at a gRPC receiver a ``BadStatusLine`` of binary garbage.
"""

from __future__ import annotations

import socket

__all__ = ["connect_problem", "speaks_http1", "speaks_http2"]

# The HTTP/2 connection preface, then an empty SETTINGS frame (length 0, type 4, flags 0, stream 0).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def connect_problem(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection opens, else what went wrong, in words."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return f"connection refused: nothing listens on {host}:{port}"
    except socket.gaierror:
        return f"cannot resolve the host name {host!r}"
    except TimeoutError:
        return f"timed out after {timeout:g}s connecting to {host}:{port} (a firewall, or a wrong address)"
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"


def _first_bytes(host: str, port: int, payload: bytes, timeout: float) -> bytes:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(payload)
            return sock.recv(64)
    except OSError:
        return b""


def speaks_http1(host: str, port: int, timeout: float) -> bool:
    """Whether the port answers a plain HTTP/1.1 request with an HTTP/1.x status line."""
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("ascii", "replace")
    return _first_bytes(host, port, request, timeout).startswith(b"HTTP/1.")


def speaks_http2(host: str, port: int, timeout: float) -> bool:
    """Whether the port answers the HTTP/2 preface with a SETTINGS frame (as a gRPC server does)."""
    head = _first_bytes(host, port, _H2_PREFACE, timeout)
    return len(head) >= 9 and head[3] == 0x04
