"""Settings: one declarative table, resolved as argument > ``OBSKIT_*`` > ``OTEL_*`` > default.

The table (``OPTIONS``) is the single source of truth: ``init()``'s keywords, the environment variables,
the accepted values quoted in warnings and ``docs/configuration.md`` (kept in step by a test) all come
from it. A bad value never stops the application: it is reported once, naming the option or variable and
what is accepted (never the value of a secret), and the default is used; under ``strict`` it raises
:class:`~obskit.ConfigError` instead. A rejected value has no effect at all: a list or a set of pairs with one
bad entry is rejected whole, never applied in part.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import IO, Any

from ._errors import ConfigError
from ._runtime._redact import Redactor

__all__ = ["OPTIONS", "Config", "Option", "resolve"]

_MASK = "****"

_LOG_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.CRITICAL,
}


class _Invalid(ValueError):
    """A value failed to parse; the message says what is accepted, never what was given."""


# --- parsers: each takes a Python value or an environment string and returns the typed value ----------


def _utf8(text: str) -> bool:
    """False for text holding undecodable bytes (lone surrogates from ``surrogateescape``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _p_str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or not _utf8(v):
        raise _Invalid("a non-empty string of valid UTF-8 text")
    return v.strip()


def _p_host(v: Any) -> str:
    message = "an IP address or host name of this machine, such as 127.0.0.1 or 0.0.0.0"
    if not isinstance(v, str) or not v.strip() or not v.strip().isascii() or re.search(r"[\s/@]", v.strip()):
        raise _Invalid(message)
    return v.strip()


def _p_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off", ""):
            return False
    raise _Invalid("true/false (1, 0, yes, no, on, off)")


def _choice(message: str, *allowed: str, aliases: Mapping[str, str] | None = None) -> Callable[[Any], str]:
    """A parser accepting one of ``allowed`` (case-insensitive), ``aliases`` mapping extra spellings."""
    table = {a: a for a in allowed} | dict(aliases or {})

    def parse(v: Any) -> str:
        s = str(v).strip().lower()
        if s in table:
            return table[s]
        raise _Invalid(message)

    return parse


def _number(message: str, cast: Callable[[Any], Any], ok: Callable[[Any], bool],
            scale: float = 1.0) -> Callable[[Any], Any]:
    """A parser for a number ``cast`` from the value, accepted when ``ok``, then multiplied by ``scale``."""

    def parse(v: Any) -> Any:
        if isinstance(v, bool):
            raise _Invalid(message)
        try:
            n = cast(v)
        except (TypeError, ValueError):
            raise _Invalid(message) from None
        if not ok(n):
            raise _Invalid(message)
        return n * scale if scale != 1.0 else n

    return parse


_p_protocol = _choice("'grpc' or 'http/protobuf'", "grpc", "http/protobuf", aliases={"http": "http/protobuf"})
_p_format = _choice("'json', 'console' or 'auto'", "json", "console", "auto")
_p_exporter = _choice("'otlp', 'console' or 'none'", "otlp", "console", "none")
_p_compression = _choice("'gzip', 'deflate' or 'none'", "gzip", "deflate", "none")
# Comparisons are false for NaN, and the upper bounds keep out inf and values that overflow a deadline.
_p_ratio = _number("a number from 0.0 to 1.0", float, lambda f: 0.0 <= f <= 1.0)
_p_port = _number("a TCP port number from 0 to 65535 (0 picks a free port)", int, lambda p: 0 <= p <= 65535)
_p_label_sets = _number("a whole number from 1 to 1000000", int, lambda i: 1 <= i <= 1_000_000)
_p_timeout_s = _number("a number of seconds from 0.001 to 3600", float, lambda f: 0.001 <= f <= 3600)
# OTel's spec gives these in milliseconds (the Python exporters wrongly read seconds); stored as seconds.
_p_timeout_ms = _number("a number of milliseconds from 1 to 3600000", float, lambda f: 1 <= f <= 3_600_000,
                        scale=0.001)
# Below 100 ms the push thread would spin (0.001 ms took 42% of a core while idle); above a day it sleeps
# past any useful horizon (1e16 ms overflows the thread's wait).
_p_interval_ms = _number("a number of milliseconds from 100 to 86400000 (one day)", float,
                         lambda f: 100 <= f <= 86_400_000, scale=0.001)


def _p_url(v: Any) -> str:
    if not isinstance(v, str) or not _utf8(v):
        raise _Invalid("an http:// or https:// URL such as http://localhost:4317")
    s = v.strip()
    try:
        u = urllib.parse.urlsplit(s)
        port = u.port  # raises ValueError on a non-numeric port
    except ValueError:
        raise _Invalid("an http:// or https:// URL such as http://localhost:4317") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise _Invalid("an http:// or https:// URL such as http://localhost:4317")
    del port
    return s.rstrip("/") if u.path in ("", "/") else s


def _pairs(v: Any, example: str) -> dict[str, str]:
    """A mapping, or W3C-style ``k=v,k2=v2`` with URL-encoded parts (OTEL_RESOURCE_ATTRIBUTES, headers).

    One malformed entry rejects the whole value: applying the well-formed rest would half-apply it.
    """
    message = f"comma-separated key=value pairs with non-empty keys in valid UTF-8, e.g. {example!r}"
    out: dict[str, str] = {}
    if isinstance(v, Mapping):
        out = {str(k).strip(): str(val) for k, val in v.items()}
    elif isinstance(v, str):
        for part in v.split(","):
            if not part.strip():
                continue
            key, sep, val = part.partition("=")
            if not sep or not key.strip():
                raise _Invalid(message)
            try:
                out[urllib.parse.unquote(key.strip(), errors="strict")] = urllib.parse.unquote(
                    val.strip(), errors="strict")
            except UnicodeDecodeError:  # %-escapes that are not UTF-8
                raise _Invalid(message) from None
    else:
        raise _Invalid(f"a dict or {message}")
    if any(not k or not _utf8(k) or not _utf8(val) for k, val in out.items()):
        raise _Invalid(message)
    return out


# RFC 9110 token characters (a header name), and the visible ASCII a header value may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")


def _p_headers(v: Any) -> dict[str, str]:
    message = ("comma-separated name=value pairs (URL-encoded) or a dict; names of letters, digits and "
               "!#$%&'*+-.^_`|~ (no spaces, ASCII only), values of printable ASCII; "
               "e.g. 'x-team=pay,x-region=eu'")
    try:
        pairs = _pairs(v, "x-team=pay,x-region=eu")
    except _Invalid:
        raise _Invalid(message) from None
    out = {k.lower(): val.strip() for k, val in pairs.items()}
    if not all(_HEADER_NAME.fullmatch(k) and _HEADER_VALUE.fullmatch(val) for k, val in out.items()):
        raise _Invalid(message)
    return out


def _p_stream(v: Any) -> Any:
    if not callable(getattr(v, "write", None)):
        raise _Invalid("a text stream: an object with a write() method, such as sys.stdout or an open file")
    return v


def _p_dir(v: Any) -> str:
    """A directory obskit can create files in: an existing writable one, or one it can create."""
    path = _p_str(v)
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not (os.path.isdir(probe) and os.access(probe, os.W_OK | os.X_OK)):
        raise _Invalid("a directory this process can write to (created if missing)")
    return path


def _p_file(v: Any) -> str:
    path = _p_str(v)
    if not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise _Invalid("the path of a readable PEM file")
    return path


def _p_level(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str) and v.strip().upper() in _LOG_LEVELS:
        return _LOG_LEVELS[v.strip().upper()]
    raise _Invalid("one of DEBUG, INFO, WARNING, ERROR, CRITICAL (or a logging level number)")


def _p_names(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        items = [x.strip() for x in v.split(",")]
    elif isinstance(v, Sequence | set | frozenset):
        items = [str(x).strip() for x in v]
    else:
        raise _Invalid("a list of names or a comma-separated string")
    return tuple(x for x in items if x)


def _p_paths(v: Any) -> tuple[str, ...]:
    if isinstance(v, str) and v.strip().lower() == "none":
        return ()
    paths = _p_names(v)
    if not all(p.startswith("/") and not any(c.isspace() for c in p) for p in paths):
        raise _Invalid("comma-separated paths starting with /, or none")
    return paths


def _p_integrations(v: Any) -> tuple[str, ...] | str:
    if isinstance(v, str) and v.strip().lower() in ("auto", "none", ""):
        return v.strip().lower() or "none"
    if v is False:
        return "none"
    return _p_names(v)


def _p_kv(v: Any) -> dict[str, str]:
    return _pairs(v, "team=payments,region=eu")


def _p_sampler(v: Any) -> tuple[bool, float | None]:
    """``OTEL_TRACES_SAMPLER`` -> (parent_based, fixed ratio or None to read the ``_ARG``)."""
    s = str(v).strip().lower()
    table: dict[str, tuple[bool, float | None]] = {
        "always_on": (False, 1.0),
        "always_off": (False, 0.0),
        "traceidratio": (False, None),
        "parentbased_always_on": (True, 1.0),
        "parentbased_always_off": (True, 0.0),
        "parentbased_traceidratio": (True, None),
    }
    if s not in table:
        raise _Invalid(", ".join(table))
    return table[s]


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting: its ``init()`` keyword, its variables, how to parse it and what it means."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    doc: str
    obskit_env: str | None = None
    otel_env: str | None = None
    arg: bool = True  # an init() keyword (otherwise environment only)
    secret: bool = False
    accepted: str = ""  # for the docs; warnings use the parser's own words

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(v for v in (self.obskit_env, self.otel_env) if v)


def _o(name: str, parse: Callable[[Any], Any], default: Any, doc: str, **kw: Any) -> Option:
    return Option(name, parse, default, doc, **kw)


OPTIONS: tuple[Option, ...] = (
    _o("service_name", _p_str, None, "Logical service name (`service.name`).",
       obskit_env="OBSKIT_SERVICE_NAME", otel_env="OTEL_SERVICE_NAME", accepted="string",),
    _o("service_version", _p_str, None, "Service version (`service.version`).",
       obskit_env="OBSKIT_SERVICE_VERSION", accepted="string"),
    _o("environment", _p_str, None, "Deployment environment (`deployment.environment.name`).",
       obskit_env="OBSKIT_ENVIRONMENT", accepted="string"),
    _o("resource_attributes", _p_kv, {}, "Extra resource attributes; `service.name`, `service.version` "
       "and `deployment.environment(.name)` here fill the options above when those are unset.",
       obskit_env="OBSKIT_RESOURCE_ATTRIBUTES", otel_env="OTEL_RESOURCE_ATTRIBUTES", arg=False, secret=True,
       accepted="k=v,k2=v2"),
    _o("otlp_endpoint", _p_url, None, "Collector base URL; `/v1/traces`, `/v1/logs`, `/v1/metrics` are "
       "appended for HTTP. Unset: nothing is exported.",
       obskit_env="OBSKIT_OTLP_ENDPOINT", otel_env="OTEL_EXPORTER_OTLP_ENDPOINT",
       accepted="http(s) URL, e.g. http://localhost:4317"),
    _o("otlp_traces_endpoint", _p_url, None, "Full URL for spans only (used as is).",
       otel_env="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", arg=False, accepted="http(s) URL"),
    _o("otlp_metrics_endpoint", _p_url, None, "Full URL for metrics only (used as is).",
       otel_env="OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", arg=False, accepted="http(s) URL"),
    _o("otlp_logs_endpoint", _p_url, None, "Full URL for log records only (used as is).",
       otel_env="OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", arg=False, accepted="http(s) URL"),
    _o("otlp_protocol", _p_protocol, None, "OTLP transport. Unset: `http/protobuf` when the endpoint's port "
       "is 4318, else `grpc`.",
       obskit_env="OBSKIT_OTLP_PROTOCOL", otel_env="OTEL_EXPORTER_OTLP_PROTOCOL",
       accepted="grpc, http/protobuf"),
    _o("otlp_headers", _p_headers, {}, "Headers sent with every export (e.g. an API key), over gRPC and HTTP "
       "alike; `OBSKIT_OTLP_HEADERS` replaces `OTEL_EXPORTER_OTLP_HEADERS`, never merges with it. Masked in "
       "reprs.",
       obskit_env="OBSKIT_OTLP_HEADERS", otel_env="OTEL_EXPORTER_OTLP_HEADERS", secret=True,
       accepted="k=v,k2=v2 (URL-encoded) or a dict; header names, printable ASCII values"),
    _o("otlp_compression", _p_compression, "none", "Compression of export requests.",
       obskit_env="OBSKIT_OTLP_COMPRESSION", otel_env="OTEL_EXPORTER_OTLP_COMPRESSION", arg=False,
       accepted="gzip, deflate, none"),
    _o("otlp_certificate", _p_file, None, "CA certificate (PEM) that verifies an `https` collector.",
       otel_env="OTEL_EXPORTER_OTLP_CERTIFICATE", arg=False, accepted="path of a readable file"),
    _o("otlp_client_certificate", _p_file, None, "Client certificate (PEM) for mutual TLS.",
       otel_env="OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", arg=False, accepted="path of a readable file"),
    _o("otlp_client_key", _p_file, None, "Client private key (PEM) for mutual TLS.",
       otel_env="OTEL_EXPORTER_OTLP_CLIENT_KEY", arg=False, accepted="path of a readable file"),
    _o("export_timeout", _p_timeout_s, 10.0, "Seconds one export call may take. The OTel variable is in "
       "milliseconds, as the spec says.",
       obskit_env="OBSKIT_EXPORT_TIMEOUT", arg=False, accepted="0.001 to 3600 (seconds)"),
    _o("export_timeout_otel", _p_timeout_ms, None, "Same as `export_timeout`, in milliseconds.",
       otel_env="OTEL_EXPORTER_OTLP_TIMEOUT", arg=False, accepted="1 to 3600000 (milliseconds)"),
    _o("traces", _p_bool, True, "Set up tracing.", obskit_env="OBSKIT_TRACES", accepted="bool"),
    _o("logs", _p_bool, True, "Set up logging (structlog + stdlib) and, with an endpoint, OTLP log export.",
       obskit_env="OBSKIT_LOGS", accepted="bool"),
    _o("metrics", _p_bool, True, "Set up metrics exposition and, with an endpoint, OTLP metric export.",
       obskit_env="OBSKIT_METRICS", accepted="bool"),
    _o("traces_exporter", _p_exporter, "otlp", "Where spans go (`none` keeps tracing but exports nothing).",
       otel_env="OTEL_TRACES_EXPORTER", arg=False, accepted="otlp, console, none"),
    _o("logs_exporter", _p_exporter, "otlp", "Where log records go besides the console.",
       otel_env="OTEL_LOGS_EXPORTER", arg=False, accepted="otlp, console, none"),
    _o("metrics_exporter", _p_exporter, "otlp", "Where metrics are pushed besides `/metrics`.",
       otel_env="OTEL_METRICS_EXPORTER", arg=False, accepted="otlp, console, none"),
    _o("disabled", _p_bool, False, "Turn the OpenTelemetry SDK off: spans are no-ops, nothing is exported; "
       "logs still print and `/metrics` still serves.",
       obskit_env="OBSKIT_DISABLED", otel_env="OTEL_SDK_DISABLED", arg=False, accepted="bool"),
    _o("sample_ratio", _p_ratio, None, "Fraction of new traces sampled (parent-based: children follow their "
       "parent). Unset: from `OTEL_TRACES_SAMPLER`/`_ARG`, else 1.0.",
       obskit_env="OBSKIT_SAMPLE_RATIO", accepted="0.0 to 1.0"),
    _o("traces_sampler", _p_sampler, None, "OTel sampler name, used when `sample_ratio` is unset.",
       otel_env="OTEL_TRACES_SAMPLER", arg=False,
       accepted="always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, "
                "parentbased_traceidratio"),
    _o("traces_sampler_arg", _p_ratio, None, "Ratio for the `*traceidratio` samplers.",
       otel_env="OTEL_TRACES_SAMPLER_ARG", arg=False, accepted="0.0 to 1.0"),
    _o("log_level", _p_level, logging.INFO, "Lowest level printed (structlog and stdlib).",
       obskit_env="OBSKIT_LOG_LEVEL", accepted="DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    _o("log_format", _p_format, "auto", "`json`: one object per line; `console`: readable, "
       "coloured on a TTY; `auto`: console on a TTY, else JSON.",
       obskit_env="OBSKIT_LOG_FORMAT", accepted="json, console, auto"),
    _o("log_stream", _p_stream, None, "File object lines are written to (default `sys.stdout`).",
       accepted="a text stream (has write())"),
    _o("metrics_port", _p_port, None, "Serve `/metrics` on this port in a background thread "
       "(0: any free port).",
       obskit_env="OBSKIT_METRICS_PORT", accepted="0-65535"),
    _o("metrics_addr", _p_host, "127.0.0.1", "Bind address of the `/metrics` server; "
       "containers set `0.0.0.0`.",
       obskit_env="OBSKIT_METRICS_ADDR", arg=False, accepted="host or IP of this machine"),
    _o("metric_export_interval", _p_interval_ms, 60.0, "Interval between OTLP metric pushes (stored in "
       "seconds).",
       otel_env="OTEL_METRIC_EXPORT_INTERVAL", arg=False, accepted="100 to 86400000 (milliseconds)"),
    _o("metrics_max_label_sets", _p_label_sets, 2000, "Label sets one metric may hold before new ones fold "
       "into an `_other` overflow series.",
       obskit_env="OBSKIT_METRICS_MAX_LABEL_SETS", arg=False, accepted="1 to 1000000"),
    _o("multiproc_dir", _p_dir, None, "Directory for prometheus-client multiprocess files (multi-worker "
       "servers). Created and wiped at start by obskit.",
       obskit_env="OBSKIT_MULTIPROC_DIR", otel_env="PROMETHEUS_MULTIPROC_DIR", arg=False,
       accepted="a writable directory"),
    _o("integrations", _p_integrations, "auto", "Which integrations to enable: `auto` (every one whose "
       "library is importable), `none`, or a list of names.",
       obskit_env="OBSKIT_INTEGRATIONS", accepted="auto, none, or comma-separated integration names"),
    _o("excluded_paths", _p_paths, ("/metrics", "/health", "/healthz", "/ready"), "Request paths that get "
       "no server span, no HTTP metrics and no access line at INFO (health checks, the scrape); exact "
       "paths, a trailing `*` matches a prefix.",
       obskit_env="OBSKIT_EXCLUDED_PATHS", arg=False,
       accepted="comma-separated paths starting with /, or none"),
    _o("access_log_export", _p_bool, False, "Also export servers' access lines (uvicorn, gunicorn, "
       "hypercorn, aiohttp, Django's runserver, werkzeug) as OTLP log records. Off: they are printed, "
       "correlated, but not exported, as each repeats its request's server span (method, route, status, "
       "duration) and exporting it would double the telemetry cost of a request.",
       obskit_env="OBSKIT_ACCESS_LOG_EXPORT", accepted="bool"),
    _o("operation_spans", _p_bool, False, "Keep frameworks' spans inside a request (FastAPI's native "
       "telemetry: dependency resolution, endpoint, serialization). Off: one span per request, FastAPI's "
       "own setting is overridden.",
       obskit_env="OBSKIT_OPERATION_SPANS", accepted="bool"),
    _o("db_query_literals", _p_bool, False, "Keep literal values in the SQL text database spans record "
       "(`db.query.text`); off: every literal becomes `?`, as values in SQL are often personal data.",
       obskit_env="OBSKIT_DB_QUERY_LITERALS", arg=False, accepted="bool"),
    _o("redact", _p_names, (), "Extra keys whose values become `[REDACTED]` wherever obskit writes or "
       "exports them, and sensitive URL parameters (added to the built-in list).",
       obskit_env="OBSKIT_REDACT", accepted="comma-separated keys"),
    _o("redact_exceptions", _p_bool, False, "Also scrub exception messages and tracebacks (URL credentials, "
       "sensitive `name=value` parameters); off by default, as they are what a developer needs.",
       obskit_env="OBSKIT_REDACT_EXCEPTIONS", accepted="bool"),
    _o("strict", _p_bool, False, "Raise `obskit.ConfigError` on a bad setting instead of warning.",
       obskit_env="OBSKIT_STRICT", accepted="bool"),
)

_BY_NAME = {o.name: o for o in OPTIONS}
INIT_ARGS: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.arg)


@dataclasses.dataclass(frozen=True, repr=False)
class Config:
    """The resolved settings. Read-only; secrets are masked in ``repr``."""

    service_name: str
    service_version: str | None
    environment: str | None
    resource_attributes: Mapping[str, str]
    otlp_endpoint: str | None
    otlp_traces_endpoint: str | None
    otlp_metrics_endpoint: str | None
    otlp_logs_endpoint: str | None
    otlp_protocol: str
    otlp_headers: Mapping[str, str]
    otlp_compression: str
    otlp_certificate: str | None
    otlp_client_certificate: str | None
    otlp_client_key: str | None
    export_timeout: float
    traces: bool
    logs: bool
    metrics: bool
    traces_exporter: str
    logs_exporter: str
    metrics_exporter: str
    disabled: bool
    sample_ratio: float
    parent_based: bool
    log_level: int
    log_format: str
    log_stream: IO[str] | None
    metrics_port: int | None
    metrics_addr: str
    metric_export_interval: float
    metrics_max_label_sets: int
    multiproc_dir: str | None
    integrations: tuple[str, ...] | str
    excluded_paths: tuple[str, ...]
    access_log_export: bool
    operation_spans: bool
    db_query_literals: bool
    redact: tuple[str, ...]
    redact_exceptions: bool
    strict: bool
    # Problems found while resolving, already phrased for the user; obskit logs each once after logging is up.
    warnings: tuple[str, ...] = ()

    def endpoint_for(self, signal: str) -> str | None:
        """The URL one signal's exporter should use, or None when that signal is not exported.

        A per-signal URL is used as is; the base URL gets ``/v1/<signal>`` appended to its path for HTTP
        (a query string, such as an ``api_key`` some vendors take, stays after it).
        """
        specific = {"traces": self.otlp_traces_endpoint, "metrics": self.otlp_metrics_endpoint,
                    "logs": self.otlp_logs_endpoint}[signal]
        if specific:
            return specific
        if not self.otlp_endpoint:
            return None
        if self.otlp_protocol == "http/protobuf":
            u = urllib.parse.urlsplit(self.otlp_endpoint)
            return urllib.parse.urlunsplit(u._replace(path=f"{u.path.rstrip('/')}/v1/{signal}"))
        return self.otlp_endpoint

    def exports(self, signal: str) -> bool:
        """Whether ``signal`` ("traces", "logs", "metrics") is pushed over OTLP."""
        enabled = {"traces": self.traces, "logs": self.logs, "metrics": self.metrics}[signal]
        exporter = {"traces": self.traces_exporter, "logs": self.logs_exporter,
                    "metrics": self.metrics_exporter}[signal]
        return enabled and not self.disabled and exporter == "otlp" and self.endpoint_for(signal) is not None

    def __repr__(self) -> str:
        """Every field, redacted as any other exit is (``obskit config`` prints this): header values
        masked, resource attributes by key, URLs without credentials or sensitive parameters."""
        red = Redactor(self.redact)
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "otlp_headers":
                value = {k: _MASK for k in value}
            elif isinstance(value, Mapping | str | tuple):
                value = red.redact_value(value)
            parts.append(f"{f.name}={value!r}")
        return f"Config({', '.join(parts)})"


def _default_service_name() -> str:
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return f"unknown_service:{prog}" if prog else "unknown_service"


def resolve(args: Mapping[str, Any], environ: Mapping[str, str] | None = None, *,
            integration_names: Collection[str] | None = None) -> Config:
    """Resolve every option from ``args`` (``None`` means unset), then the environment, then defaults.

    ``integration_names`` (what the integrations registry knows, given by ``init()`` and ``obskit config``)
    lets a list naming an unknown integration be rejected like any other bad value.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []

    strict_opt = _BY_NAME["strict"]
    strict = bool(_take(strict_opt, args, env, problems))

    checks: dict[str, Callable[[Any], None]] = {}
    if integration_names is not None:
        checks["integrations"] = _integrations_check(integration_names)
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        values[opt.name] = strict if opt is strict_opt else _take(opt, args, env, problems,
                                                                   checks.get(opt.name))

    attrs = dict(values["resource_attributes"])
    service_name = values["service_name"] or attrs.get("service.name") or _default_service_name()
    service_version = values["service_version"] or attrs.get("service.version")
    environment = (values["environment"] or attrs.get("deployment.environment.name")
                   or attrs.get("deployment.environment"))

    protocol = values["otlp_protocol"]
    if protocol is None:
        base = values["otlp_endpoint"] or ""
        protocol = "http/protobuf" if urllib.parse.urlsplit(base).port == 4318 else "grpc"
    if protocol == "grpc":  # gRPC has no place for URL credentials: its exporter would print them instead
        for name in ("otlp_endpoint", "otlp_traces_endpoint", "otlp_metrics_endpoint", "otlp_logs_endpoint"):
            url = values[name]
            if url and "@" in urllib.parse.urlsplit(url).netloc:
                values[name] = None
                problems.append(
                    f"obskit: invalid {_where(_BY_NAME[name], args, env)}; expected a URL without "
                    "credentials (user:password@) over gRPC, which cannot send them: send an authorization "
                    "header with OBSKIT_OTLP_HEADERS instead. Nothing is exported there.")

    # An endpoint passed in code wins over per-signal variables; otherwise the more specific variable wins.
    per_signal = {s: values[f"otlp_{s}_endpoint"] for s in ("traces", "metrics", "logs")}
    if args.get("otlp_endpoint") is not None:
        per_signal = dict.fromkeys(per_signal)

    timeout = values["export_timeout"]
    if _source(_BY_NAME["export_timeout"], args, env) == "default" and values["export_timeout_otel"]:
        timeout = values["export_timeout_otel"]

    ratio = values["sample_ratio"]
    parent_based = True
    if ratio is None:
        sampler = values["traces_sampler"]
        if sampler is not None:
            parent_based, fixed = sampler
            ratio = fixed if fixed is not None else (values["traces_sampler_arg"]
                                                     if values["traces_sampler_arg"] is not None else 1.0)
        else:
            ratio = 1.0

    if problems and strict:
        raise ConfigError("invalid obskit configuration: " + "; ".join(problems))

    derived: dict[str, Any] = {
        "service_name": service_name, "service_version": service_version, "environment": environment,
        "resource_attributes": attrs, "otlp_protocol": protocol, "export_timeout": timeout,
        "sample_ratio": ratio, "parent_based": parent_based, "strict": strict, "warnings": tuple(problems),
        **{f"otlp_{signal}_endpoint": url for signal, url in per_signal.items()},
    }
    # Every other Config field is the option of the same name, as resolved.
    same = {f.name: values[f.name] for f in dataclasses.fields(Config) if f.name not in derived}
    return Config(**same, **derived)


def _source(opt: Option, args: Mapping[str, Any], env: Mapping[str, str]) -> str:
    if opt.arg and args.get(opt.name) is not None:
        return "argument"
    for var in opt.variables:
        if env.get(var, "").strip():
            return var
    return "default"


def _where(opt: Option, args: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """Where the value in force came from, as a warning names it."""
    source = _source(opt, args, env)
    return f"argument {opt.name}" if source == "argument" else f"environment variable {source}"


def _integrations_check(known: Collection[str]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if isinstance(value, tuple) and any(n.lower() not in known for n in value):
            raise _Invalid(f"auto, none, or comma-separated names from: {', '.join(sorted(known))}")

    return check


def _take(opt: Option, args: Mapping[str, Any], env: Mapping[str, str], problems: list[str],
          check: Callable[[Any], None] | None = None) -> Any:
    """The first source that parses wins; a source that fails to parse is reported and has no effect."""
    candidates: list[tuple[str, Any]] = []
    if opt.arg and args.get(opt.name) is not None:
        candidates.append((f"argument {opt.name}", args[opt.name]))
    for var in opt.variables:
        raw = env.get(var)
        if raw is not None and raw.strip():
            candidates.append((f"environment variable {var}", raw))
    for where, raw in candidates:
        try:
            value = opt.parse(raw)
            if check is not None:
                check(value)
            return value
        except _Invalid as exc:
            shown = "" if opt.secret or opt.parse is _p_url else f" (got {_short(raw)})"
            problems.append(f"obskit: invalid {where}{shown}; expected {exc}. Using the "
                            f"{'next source' if (where, raw) != candidates[-1] else 'default'} instead.")
    return opt.default


def _short(raw: Any) -> str:
    """The rejected value as a warning quotes it: short, and scrubbed like any text obskit writes."""
    text = Redactor().scrub_text(repr(raw))
    return text if len(text) <= 40 else text[:37] + "..."
