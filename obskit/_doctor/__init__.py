"""``obskit doctor``: why telemetry does not arrive, one line per check (OK / WARN / FAIL).

The checks run in the order a person debugs: the settings obskit resolved (and every one it had to reject),
then for each signal a real empty OTLP export to where obskit would send it, then the ``/metrics`` port,
the integrations, the multiprocess directory, the semantic-conventions opt-in and the OpenTelemetry
versions. Any FAIL makes the exit code 1. The doctor never prints a header value or URL credentials: its
lines quote variable names rather than values, and each line is scrubbed again on the way out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO

from .._config import Config, resolve
from .._runtime._redact import Redactor
from ._environment import check_multiproc_dir, check_otel_versions, check_semconv, otel_versions
from ._integrations import check_integrations
from ._otlp import probe
from ._port import check_metrics_port
from ._report import Check, exit_code, write
from ._settings import SIGNALS, check_settings, export_state

__all__ = ["checks", "export_checks", "render", "run"]


def export_checks(config: Config, env: Mapping[str, str], timeout: float) -> list[Check]:
    """The settings, then one line per signal: why it is not exported, or what its endpoint answered."""
    out = check_settings(config, env)
    for signal in SIGNALS:
        state = export_state(config, signal)
        out.append(probe(signal, config, timeout) if state is None else Check(state[0], signal, state[1]))
    return out


def checks(env: Mapping[str, str], timeout: float) -> list[Check]:
    """Every check, in order, against the settings ``env`` resolves to."""
    from .._setup import integration_names

    config = resolve({}, env, integration_names=integration_names())
    out = export_checks(config, env, timeout)
    out.append(check_metrics_port(config, timeout))
    out.extend(check_integrations(config))
    out.append(check_multiproc_dir(config))
    out.append(check_semconv(env))
    out.append(check_otel_versions(otel_versions()))
    return out


def run(env: Mapping[str, str], *, timeout: float = 3.0, out: IO[str] | None = None) -> int:
    """Run every check, print one line each, return the exit code (1 on any FAIL)."""
    # gRPC's core library logs each failed handshake on stderr; the check's own line says it better.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    found = checks(env, timeout)
    write(found, out or sys.stdout, _redactor(env))
    failed = sum(c.status == "FAIL" for c in found)
    warned = sum(c.status == "WARN" for c in found)
    (out or sys.stdout).write(f"\n{len(found)} checks: {failed} failed, {warned} warnings\n")
    return exit_code(found)


def _redactor(env: Mapping[str, str]) -> Redactor:
    """The built-in sensitive keys plus the user's ``OBSKIT_REDACT`` ones."""
    return Redactor([v.strip() for v in env.get("OBSKIT_REDACT", "").split(",") if v.strip()])


def render(found: list[Check], env: Mapping[str, str]) -> str:
    """The lines ``run`` prints for ``found`` (scrubbed the same way)."""
    import io

    buffer = io.StringIO()
    write(found, buffer, _redactor(env))
    return buffer.getvalue()
