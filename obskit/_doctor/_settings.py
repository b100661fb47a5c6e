"""The resolved configuration, each warning, and the settings that silently turn export off.

The most common reason nothing arrives is an endpoint obskit had to reject: ``localhost:4317`` without a
scheme, or a gRPC URL carrying ``user:password@``. ``resolve()`` warns and exports nothing; here that
becomes a FAIL naming the variable and what to write instead. Values are never echoed, only variable names,
so no credential can leak through this file.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from .._config import OPTIONS, Config, Option
from ._report import FAIL, OK, WARN, Check

__all__ = ["SIGNALS", "check_settings", "export_state"]

SIGNALS = ("traces", "logs", "metrics")
_ENDPOINT_OPTIONS = ("otlp_endpoint", "otlp_traces_endpoint", "otlp_metrics_endpoint", "otlp_logs_endpoint")
_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
_ENDPOINT_VARS = {v for name in _ENDPOINT_OPTIONS for v in _BY_NAME[name].variables}


def _endpoint_problem(raw: str, protocol: str) -> str | None:
    """Why obskit rejects this endpoint value, or None when it is usable."""
    text = raw.strip()
    if "://" not in text:
        return ("has no scheme: write it as http://host:port (or https://), "
                "e.g. http://localhost:4317 for gRPC, http://localhost:4318 for HTTP")
    try:
        u = urllib.parse.urlsplit(text)
        _ = u.port
    except ValueError:
        return "is not a valid URL (the port must be a number): e.g. http://localhost:4317"
    if u.scheme not in ("http", "https") or not u.hostname:
        return "must be an http:// or https:// URL with a host, e.g. http://localhost:4317"
    if protocol == "grpc" and "@" in u.netloc:
        return ("carries credentials (user:password@), which gRPC cannot send: send an authorization header "
                "with OBSKIT_OTLP_HEADERS instead")
    return None


def _endpoint_checks(config: Config, env: Mapping[str, str]) -> list[Check]:
    exported_anywhere = any(config.endpoint_for(s) for s in SIGNALS)
    out = []
    for name in _ENDPOINT_OPTIONS:
        for var in _BY_NAME[name].variables:
            raw = env.get(var, "")
            if not raw.strip():
                continue
            problem = _endpoint_problem(raw, config.otlp_protocol)
            if problem is None:
                continue
            if exported_anywhere:
                out.append(Check(WARN, var, f"{problem}; ignored, another setting is used"))
            else:
                out.append(Check(FAIL, var, f"{problem}. As it is, nothing will be exported."))
    return out


def export_state(config: Config, signal: str) -> tuple[str, str] | None:
    """(status, why) when ``signal`` is not exported over OTLP, None when it is."""
    if config.exports(signal):
        return None
    if not {"traces": config.traces, "logs": config.logs, "metrics": config.metrics}[signal]:
        return OK, f"not exported: switched off (OBSKIT_{signal.upper()}=false)"
    if config.disabled:
        return WARN, "not exported: the SDK is disabled (OTEL_SDK_DISABLED / OBSKIT_DISABLED)"
    exporter = {"traces": config.traces_exporter, "logs": config.logs_exporter,
                "metrics": config.metrics_exporter}[signal]
    if exporter != "otlp":
        return OK, f"not exported over OTLP: OTEL_{signal.upper()}_EXPORTER={exporter}"
    return WARN, ("not exported: no OTLP endpoint (set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. "
                  "http://localhost:4317)")


def check_settings(config: Config, env: Mapping[str, str]) -> list[Check]:
    """The configuration in one line, then one line per warning and per unusable endpoint."""
    targets = ", ".join(f"{s} -> {config.endpoint_for(s) or 'nowhere'}" for s in SIGNALS)
    out = [Check(OK, "config", f"service {config.service_name!r}, protocol {config.otlp_protocol}; {targets} "
                               "(every option and its source: obskit config)")]
    endpoint_lines = _endpoint_checks(config, env)
    for warning in config.warnings:
        # An endpoint's warning is said once, by its own check below, with what to write instead.
        if any(f"variable {var};" in warning or f"variable {var} " in warning for var in _ENDPOINT_VARS):
            continue
        out.append(Check(WARN, "config", warning.removeprefix("obskit: ")))
    out.extend(endpoint_lines)
    return out
