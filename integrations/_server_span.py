"""The common HTTP request (ASGI or WSGI), traced in one pass: no per-request hooks, captured headers or
WebSocket events.

OpenTelemetry's ``OpenTelemetryMiddleware`` (ASGI and WSGI alike) serves every option a user can ask for
(request and response hooks, captured headers, ``receive``/``send`` spans, both generations of the HTTP
conventions), and pays for them on every request. When none is asked for, which is obskit's default, this
module starts the SERVER span with the stable HTTP attributes computed once from the scope or environ, makes
it current while the app runs, and ends it with the response's status: the same span, for a fraction of the
work. ``ObskitASGIMiddleware`` and ``ObskitWSGIMiddleware`` fall back to the contrib middleware as soon as an
option needs it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from obskit._traces import _lean

__all__ = ["asks_for_contrib", "end_server_span", "excluded_urls", "request_attributes", "start_server_span",
           "wsgi_request_attributes"]

Scope = MutableMapping[str, Any]

# Environment variables that switch on work only the contrib middleware does (captured headers).
_CONTRIB_ENV = ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
                "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE")
_ENVIRON_FIELDS: dict[str, str] = {}  # propagator field -> WSGI environ key (traceparent -> HTTP_TRACEPARENT)


def asks_for_contrib(options: dict[str, Any]) -> bool:
    """Whether the user's middleware options or environment need OpenTelemetry's middleware."""
    return bool(options) or any(os.environ.get(v) for v in _CONTRIB_ENV)


def excluded_urls(given: str | None, kind: str) -> Any:
    """OpenTelemetry's exclusion list for ``given`` (or its ``OTEL_PYTHON_<kind>_EXCLUDED_URLS``), or None
    when it excludes nothing: an empty list is still a true object, and the request's URL would be built
    on every request only to be matched against no pattern."""
    from opentelemetry.util.http import get_excluded_urls, parse_excluded_urls

    found = parse_excluded_urls(given) if given is not None else get_excluded_urls(kind)
    return found if getattr(found, "_excluded_urls", True) else None


class _HeadersGetter(Getter[dict[str, list[str]]]):
    def get(self, carrier: dict[str, list[str]], key: str) -> list[str] | None:
        return carrier.get(key)

    def keys(self, carrier: dict[str, list[str]]) -> list[str]:
        return list(carrier)


_GETTER = _HeadersGetter()
_tracer: trace.Tracer | None = None
_propagate: Any = None


def _propagation() -> Any:
    """``opentelemetry.propagate``, imported by the first request: importing it reads the configured
    propagators (entry points), a cost every ``init()`` paid when the registry read this integration."""
    global _propagate
    if _propagate is None:
        from opentelemetry import propagate

        _propagate = propagate
    return _propagate


_fields: list[Any] = [None, None, 0, frozenset()]  # textmap, its propagator list and length, their fields


def _propagated_fields() -> frozenset[str]:
    """The global propagator's header fields, read once per propagator: a ``CompositePropagator`` (the
    default) builds a new set from its members on every read. A changed global propagator, or members
    added to a composite's list, are read again."""
    textmap = (_propagate or _propagation()).get_global_textmap()
    members = getattr(textmap, "_propagators", None)
    cached = _fields
    if cached[0] is textmap and cached[1] is members and (members is None or cached[2] == len(members)):
        return cast(frozenset[str], cached[3])
    found = frozenset(textmap.fields)
    _fields[:] = [textmap, members, len(members) if members is not None else 0, found]
    return found


def _get_tracer() -> trace.Tracer:
    """The global provider's tracer, taken once: obskit's global provider forwards to whichever provider
    ``init()`` installed last, so a later re-initialisation is followed."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("obskit.integrations.asgi")
    return _tracer


def _latin1(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _set_host(attrs: dict[str, Any], host: str) -> None:
    """``server.address`` and ``server.port`` from a ``Host`` header (``[::1]:8000`` included)."""
    address, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if address and port.isdigit():
        attrs["server.address"], attrs["server.port"] = address, int(port)
    else:
        attrs["server.address"] = host


def request_attributes(scope: Scope, method: str,
                       route: str | None) -> tuple[dict[str, Any], otel_context.Context | None]:
    """The stable HTTP server attributes of the request, and the context its caller propagated (None: none).

    ``method`` is already normalised (``_OTHER`` for an unknown verb, whose original is kept as
    ``http.request.method_original``).
    """
    attrs: dict[str, Any] = {"http.request.method": method}
    raw_method = scope.get("method")
    if method == "_OTHER" and raw_method:
        attrs["http.request.method_original"] = raw_method
    scheme = scope.get("scheme")
    if scheme:
        attrs["url.scheme"] = scheme
    path = scope.get("path")
    if path:
        attrs["url.path"] = path
    query = scope.get("query_string")
    if query:
        attrs["url.query"] = _latin1(query)
    version = scope.get("http_version")
    if version:
        attrs["network.protocol.version"] = version
    if route:
        attrs["http.route"] = route
    client = scope.get("client")
    if client:  # client.port is opt-in in the HTTP conventions: a new value per connection, never grouped by
        attrs["client.address"] = client[0]
    host: str | None = None
    carrier: dict[str, list[str]] | None = None
    fields = _propagated_fields()
    for name, value in scope.get("headers") or ():
        if name == b"host":
            host = _latin1(value)
        elif name == b"user-agent":
            attrs["user_agent.original"] = _latin1(value)
        else:
            key = _latin1(name).lower()
            if key in fields:
                if carrier is None:
                    carrier = {}
                carrier.setdefault(key, []).append(_latin1(value))
    if host:
        _set_host(attrs, host)
    else:
        server = scope.get("server")
        if server:
            attrs["server.address"] = server[0]
            if len(server) > 1 and server[1] is not None:
                attrs["server.port"] = server[1]
    parent = (_propagate or _propagation()).extract(carrier, getter=_GETTER) if carrier is not None else None
    return attrs, parent


def wsgi_request_attributes(environ: MutableMapping[str, Any],
                            method: str) -> tuple[dict[str, Any], otel_context.Context | None]:
    """What :func:`request_attributes` gives for an ASGI scope, from a WSGI environ."""
    attrs: dict[str, Any] = {"http.request.method": method}
    raw_method = environ.get("REQUEST_METHOD")
    if method == "_OTHER" and raw_method:
        attrs["http.request.method_original"] = raw_method
    attrs["url.scheme"] = environ.get("wsgi.url_scheme", "http")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if path:
        attrs["url.path"] = path
    query = environ.get("QUERY_STRING")
    if query:
        attrs["url.query"] = query
    protocol = environ.get("SERVER_PROTOCOL", "")
    if protocol.startswith("HTTP/"):
        attrs["network.protocol.version"] = protocol[5:]
    host = environ.get("HTTP_HOST")
    if host:
        _set_host(attrs, host)
    elif environ.get("SERVER_NAME"):
        attrs["server.address"] = environ["SERVER_NAME"]
        port = str(environ.get("SERVER_PORT", ""))
        if port.isdigit():
            attrs["server.port"] = int(port)
    agent = environ.get("HTTP_USER_AGENT")
    if agent:
        attrs["user_agent.original"] = agent
    client = environ.get("REMOTE_ADDR")
    if client:  # client.port: opt-in, as above
        attrs["client.address"] = client
    carrier: dict[str, list[str]] | None = None
    for field in _propagated_fields():
        key = _ENVIRON_FIELDS.get(field)
        if key is None:
            key = _ENVIRON_FIELDS.setdefault(field, "HTTP_" + field.upper().replace("-", "_"))
        value = environ.get(key)
        if value:
            if carrier is None:
                carrier = {}
            carrier[field] = [value]
    parent = (_propagate or _propagation()).extract(carrier, getter=_GETTER) if carrier is not None else None
    return attrs, parent


_plain_samplers: dict[int, tuple[Any, bool]] = {}


def _ignores_attributes(sampler: Any) -> bool:
    """Whether ``sampler`` decides without reading the span's attributes: the SDK's stock samplers (always
    on/off, trace-id ratio, parent-based over those) do; a user's own sampler may not."""
    from opentelemetry.sdk.trace.sampling import ParentBased, StaticSampler, TraceIdRatioBased

    if type(sampler) in (StaticSampler, TraceIdRatioBased):
        return True
    if type(sampler) is ParentBased:
        delegates = ("_root", "_remote_parent_sampled", "_remote_parent_not_sampled", "_local_parent_sampled",
                     "_local_parent_not_sampled")
        return all(_ignores_attributes(getattr(sampler, d, None)) for d in delegates)
    return False


def _sdk_tracer(tracer: Any) -> Any:
    real = getattr(tracer, "_tracer", None)  # obskit's forwarding tracer: the SDK tracer it forwards to
    return real() if callable(real) else tracer


def _sdk_sampler(tracer: Any) -> Any:
    return getattr(_sdk_tracer(tracer), "sampler", None)


def _attributes_after_start(tracer: Any) -> bool:
    """Whether the attributes can be put into the span once it has started rather than passed to
    ``start_span`` (decided once per sampler object)."""
    sampler = _sdk_sampler(tracer)
    if sampler is None:
        return False
    hit = _plain_samplers.get(id(sampler))
    if hit is None or hit[0] is not sampler:
        if len(_plain_samplers) >= 16:
            _plain_samplers.clear()
        hit = _plain_samplers[id(sampler)] = (sampler, _ignores_attributes(sampler))
    return bool(hit[1])


def _put(span: Any, attrs: dict[str, Any]) -> None:
    """``span.set_attributes(attrs)`` for attributes this module built (str and int values, fewer than any
    limit): straight into the SDK's container when it is the plain one, skipping its per-value checks,
    which cost more than the rest of starting the span."""
    held = getattr(span, "_attributes", None)
    if (type(held) is BoundedAttributes and held._immutable is False and held.max_value_len is None
            and type(held._dict) is dict and not held._dict
            and (held.maxlen is None or len(attrs) <= held.maxlen)):
        held._dict.update(attrs)
    else:
        span.set_attributes(attrs)


def start_server_span(name: str, attrs: dict[str, Any],
                      parent: otel_context.Context | None) -> tuple[trace.Span, object]:
    """Start the SERVER span and make it current; returns it and the token :func:`end_server_span` needs.

    ``attrs`` hold only str and int values (``request_attributes``); when the sampler does not read them,
    the span is made by :mod:`obskit._traces._lean` (the SDK's span without its per-span bookkeeping), or
    they are put into the started span directly (:func:`_put`)."""
    tracer = _get_tracer()
    if _attributes_after_start(tracer):
        lean = _lean.start_span(_sdk_tracer(tracer), name, SpanKind.SERVER, attrs, parent)
        if lean is not None:
            span = lean
        else:
            span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
            if span.is_recording():
                _put(span, attrs)
    else:
        span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attrs)
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return span, token


def end_server_span(span: trace.Span, token: object, status: int | None, exc: BaseException | None) -> None:
    """Record the outcome (server spans are errors for 5xx and exceptions only), leave it and end it."""
    try:
        if span.is_recording():
            if status is not None:
                _lean.put(span, "http.response.status_code", status)
            if exc is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            elif status is not None and status >= 500:
                span.set_status(Status(StatusCode.ERROR))
                if "error.type" not in (getattr(span, "attributes", None) or {}):
                    span.set_attribute("error.type", str(status))
    finally:
        otel_context.detach(token)  # type: ignore[arg-type]
        span.end()
