"""What around the settings decides whether data arrives: the multiprocess directory, the semantic-conventions
opt-in, and whether the installed OpenTelemetry packages belong together."""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Mapping

from .._config import Config
from .._metrics._multiprocess import _files_by_pid, _pid_alive, _read_marker
from ._report import FAIL, OK, WARN, Check

__all__ = ["check_multiproc_dir", "check_otel_versions", "check_semconv", "otel_versions"]

#: obskit's own floor for the OpenTelemetry API and SDK (pyproject.toml's dependencies).
MINIMUM_MINOR = 45
#: Contrib packages (0.Nb) are released with the SDK 1.M where N = M + 21 (0.66b0 with 1.45.0).
CONTRIB_OFFSET = 21
_VERSION = re.compile(r"(\d+)\.(\d+)")


def check_multiproc_dir(config: Config) -> Check:
    """Writable, and which of its files belong to processes that are gone."""
    name = "multiprocess directory"
    path = config.multiproc_dir
    if not path:
        return Check(OK, name, "not set: single-process metrics (set OBSKIT_MULTIPROC_DIR for gunicorn or "
                               "uvicorn --workers)")
    if not os.path.isdir(path):
        return Check(OK, name, f"{path} does not exist yet; obskit creates it at start")
    if not os.access(path, os.W_OK | os.X_OK):
        return Check(FAIL, name, f"{path} is not writable by this user: workers cannot record metrics")
    by_pid = _files_by_pid(path)
    dead = sorted(pid for pid in by_pid if not _pid_alive(pid))
    owner = _read_marker(path)
    running = f"; a server run owned by pid {owner} is live" if owner and _pid_alive(owner) else ""
    if dead:
        files = sum(len(by_pid[p]) for p in dead)
        pids = ", ".join(map(str, dead[:10])) + (" ..." if len(dead) > 10 else "")
        return Check(WARN, name, f"{path}: {files} stale file(s) of {len(dead)} dead process(es) (pid {pids})"
                                 f"{running}; a new server run wipes them, a live one folds them into its "
                                 "totals at the next scrape; two servers must not share a directory")
    return Check(OK, name, f"{path} is writable, {len(by_pid)} live process(es) with files{running}")


def check_semconv(env: Mapping[str, str]) -> Check:
    """Whether HTTP instrumentations will record the stable metric names the dashboards query."""
    name = "semantic conventions"
    raw = env.get("OTEL_SEMCONV_STABILITY_OPT_IN")
    if raw is None:
        return Check(OK, name, "OTEL_SEMCONV_STABILITY_OPT_IN unset: obskit.init() sets it to http, so HTTP "
                               "instrumentations record http_server_request_duration_seconds")
    opted = {part.strip().lower() for part in raw.split(",")}
    if opted & {"http", "http/dup"}:
        return Check(OK, name, f"OTEL_SEMCONV_STABILITY_OPT_IN={raw.strip()}: stable HTTP metric names")
    return Check(WARN, name, f"OTEL_SEMCONV_STABILITY_OPT_IN={raw.strip()} leaves out http: HTTP "
                             "instrumentations record the old names in milliseconds (http_server_duration_"
                             "milliseconds), which the dashboards do not query; add http")


def otel_versions() -> dict[str, str]:
    """Every installed ``opentelemetry-*`` distribution and its version."""
    out = {}
    for dist in importlib.metadata.distributions():
        dname = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if dname.startswith("opentelemetry-"):
            out[dname] = dist.version
    return dict(sorted(out.items()))


def check_otel_versions(versions: Mapping[str, str]) -> Check:
    """Core packages (1.x) all the same release, at obskit's floor or later; contrib (0.x) of that release."""
    name = "opentelemetry packages"
    core = {d: v for d, v in versions.items() if v.startswith("1.")}
    contrib = {d: v for d, v in versions.items() if v.startswith("0.")}
    sdk = versions.get("opentelemetry-sdk") or versions.get("opentelemetry-api")
    if sdk is None or not (match := _VERSION.match(sdk)):
        return Check(FAIL, name, "opentelemetry-sdk is not installed: pip install obskit")
    minor = int(match.group(2))
    if len(set(core.values())) > 1:
        listed = ", ".join(f"{d.removeprefix('opentelemetry-')} {v}" for d, v in core.items())
        return Check(FAIL, name, f"api, sdk, proto and exporters must be one release; found {listed}: "
                                 "pip install -U the older ones")
    if minor < MINIMUM_MINOR:
        return Check(FAIL, name, f"opentelemetry-sdk {sdk} is older than obskit needs (1.{MINIMUM_MINOR})")
    expected = minor + CONTRIB_OFFSET
    off = {d: v for d, v in contrib.items() if (m := _VERSION.match(v)) and int(m.group(2)) != expected}
    if off:
        listed = ", ".join(f"{d} {v}" for d, v in off.items())
        return Check(WARN, name, f"{listed} not released with sdk {sdk} (that is 0.{expected}b*): "
                                 "instrumentations may refuse to load; pip install -U them together")
    contrib_versions = ", ".join(sorted(set(contrib.values()))) or "none"
    return Check(OK, name, f"api/sdk/proto/exporters {sdk}, contrib {contrib_versions} ({len(contrib)} "
                           "packages): compatible")
