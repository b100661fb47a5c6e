"""The ``/metrics`` port: free to bind, or held, and then by whom and whether it already serves obskit.

Who holds a port is read from ``/proc`` (Linux): the listening socket's inode in ``/proc/net/tcp*``, then the
process whose file descriptors include it. Only the pid and the process name are printed, never its command
line, which can carry secrets.
"""

from __future__ import annotations

import errno
import glob
import os
import socket
import urllib.request

from .._config import Config
from ._report import FAIL, OK, WARN, Check

__all__ = ["check_metrics_port", "holder"]

_LISTEN = "0A"


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def holder(port: int) -> tuple[int, str] | None:
    """(pid, process name) of a process listening on ``port``, when this user can see it."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return None
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(fd) not in wanted:
                continue
            pid = int(fd.split("/")[2])
            with open(f"/proc/{pid}/comm") as f:
                return pid, f.read().strip()
        except (OSError, ValueError):
            continue
    return None


def _serves_obskit(addr: str, port: int, timeout: float) -> bool:
    host = "127.0.0.1" if addr in ("0.0.0.0", "", "::") else addr
    host = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as resp:
            return b"obskit_" in resp.read(1 << 20)
    except (OSError, ValueError):
        return False


def _bind_error(addr: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Like the /metrics server (http.server sets SO_REUSEADDR): a port in TIME_WAIT is still bindable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((addr, port))
        except OSError as exc:
            return exc
    return None


def check_metrics_port(config: Config, timeout: float) -> Check:
    """Whether ``init()`` could serve ``/metrics`` where configured, and if not, what is in the way."""
    name = "/metrics"
    if not config.metrics:
        return Check(OK, name, "metrics are switched off (OBSKIT_METRICS=false)")
    if config.metrics_port is None:
        if config.exports("metrics"):
            return Check(OK, name, "not served (OBSKIT_METRICS_PORT unset); metrics are pushed over OTLP")
        return Check(WARN, name, "not served and not pushed: metrics go nowhere; set "
                                 "OBSKIT_METRICS_PORT=9464 for Prometheus to scrape, or an OTLP endpoint")
    if config.metrics_port == 0:
        return Check(OK, name, f"a free port on {config.metrics_addr} is picked at start "
                               "(OBSKIT_METRICS_PORT=0)")
    addr, port = config.metrics_addr, config.metrics_port
    where = f"{addr}:{port}"
    try:
        problem = _bind_error(addr, port)
    except OSError as exc:  # the socket itself (an IPv6 address on a host without IPv6)
        problem = exc
    if problem is None:
        return Check(OK, name, f"{where} is free: /metrics can be served there")
    if problem.errno == errno.EADDRINUSE:
        held = holder(port)
        who = f"pid {held[0]} ({held[1]})" if held else "another process (not visible to this user)"
        if _serves_obskit(addr, port, timeout):
            return Check(OK, name, f"{where} is held by {who}, which serves obskit's /metrics there")
        return Check(WARN, name, f"{where} is held by {who}, which does not serve obskit's /metrics: "
                                 "init() will report the port in use; pick another OBSKIT_METRICS_PORT")
    if problem.errno == errno.EADDRNOTAVAIL:
        return Check(FAIL, name, f"{addr} is not an address of this machine (OBSKIT_METRICS_ADDR); use "
                                 "127.0.0.1, or 0.0.0.0 in a container")
    if problem.errno == errno.EACCES:
        return Check(FAIL, name, f"port {port} needs privileges to bind (OBSKIT_METRICS_PORT); use one above "
                                 "1023, such as 9464")
    return Check(FAIL, name, f"cannot bind {where}: {problem.strerror or problem}")
