"""The resolved settings as rows a person reads: option, value, and where the value came from.

``obskit config`` prints these rows and ``obskit doctor`` starts from them. The source is found the way
``resolve()`` picks a value: the argument, then each variable in order, the first that parses winning;
a value nobody set but ``resolve()`` worked out from others (the protocol from the endpoint's port, the
service name from the program) says ``derived``. Every value is masked as any other exit is: header values
become ``****``, URL credentials and sensitive parameters ``REDACTED``, resource attributes by key.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from ._config import OPTIONS, Config, Option
from ._runtime._redact import Redactor

__all__ = ["MASK", "Row", "render_value", "rows", "source_of", "table"]

MASK = "****"


@dataclasses.dataclass(frozen=True)
class Row:
    """One option as shown: ``value`` is already masked and JSON-friendly; ``source`` is ``argument``,
    a variable's name, ``default`` or ``derived``."""

    option: str
    value: Any
    source: str
    variables: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"option": self.option, "value": self.value, "source": self.source,
                "variables": list(self.variables)}


def _parses(opt: Option, raw: Any) -> tuple[bool, Any]:
    try:
        return True, opt.parse(raw)
    except ValueError:  # the options table's parse errors are ValueErrors
        return False, None


def source_of(opt: Option, args: Mapping[str, Any], env: Mapping[str, str]) -> tuple[str, Any]:
    """(where the value in force came from, that value as parsed); ``("default", default)`` when no source
    parses."""
    if opt.arg and args.get(opt.name) is not None:
        ok, value = _parses(opt, args[opt.name])
        if ok:
            return "argument", value
    for var in opt.variables:
        raw = env.get(var)
        if raw is not None and raw.strip():
            ok, value = _parses(opt, raw)
            if ok:
                return var, value
    return "default", opt.default


def _masked(name: str, value: Any, red: Redactor) -> Any:
    """The value as obskit may print it, in JSON-friendly types."""
    if name == "otlp_headers":
        return {k: MASK for k in value}
    if name == "log_level" and isinstance(value, int):
        return logging.getLevelName(value)
    if name == "log_stream":
        return None if value is None else type(value).__name__
    if isinstance(value, Mapping):
        return dict(red.redact_value(dict(value)))
    if isinstance(value, tuple):
        return list(red.redact_value(value))
    if isinstance(value, str):
        return red.redact_value(value)
    return value


def rows(config: Config, env: Mapping[str, str], args: Mapping[str, Any] | None = None) -> list[Row]:
    """One row per option of the options table, in its order, with the value ``config`` resolved."""
    args = args or {}
    red = Redactor(config.redact)
    fields = {f.name for f in dataclasses.fields(Config)}
    out = []
    for opt in OPTIONS:
        source, parsed = source_of(opt, args, env)
        value = getattr(config, opt.name) if opt.name in fields else parsed
        if source == "default" and value != opt.default:
            source = "derived"
        elif source != "default" and opt.name in fields and value != parsed:
            # Set, but overridden by a more specific setting (an endpoint given in code beats per-signal
            # variables) or rejected by a check beyond parsing: what is in force is not that source's value.
            source = "default" if value == opt.default else "derived"
        out.append(Row(opt.name, _masked(opt.name, value, red), source, opt.variables))
    return out


def render_value(value: Any) -> str:
    """A row's value as one line of text: mappings as ``k=v,...``, lists comma-separated, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def table(items: list[Row]) -> str:
    """The rows as an aligned three-column text table."""
    lines = [("option", "value", "source"), *((r.option, render_value(r.value), r.source) for r in items)]
    w0 = max(len(a) for a, _, _ in lines)
    w1 = min(max(len(b) for _, b, _ in lines), 60)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in lines)
