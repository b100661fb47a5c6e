"""The one redaction mechanism, applied at every exit: log lines, OTLP log records, span attributes and
events, the resource, metric labels, ``obskit config`` and obskit's own messages.

Two rules, one list of sensitive names:

- **by key**: a value is replaced with ``[REDACTED]`` when its key names a secret. The key is split into
  segments at ``.``, ``_``, ``-``, blanks and camelCase humps, and it matches when a run of its segments
  spells a listed name: ``http.request.header.authorization``, ``db.password``, ``aws_secret_access_key``,
  ``X-Api-Key`` and ``clientSecret`` all match, ``sessions_count`` and ``author`` do not.
- **in text**: every string is scrubbed of URL userinfo and of the values of sensitive ``name=value``
  (query) parameters (see ``_urls``), wherever the string sits.

Containers of every kind are walked (mappings, lists, tuples and lists of ``(name, value)`` pairs, named
tuples, dataclasses, attrs and pydantic models, sets, deques) with a bound on depth and on the number of
values visited per call, so a huge or cyclic value costs a bounded amount of work.

Exception messages and stack traces are left as they are unless ``scrub_exceptions`` is set: they are what
a developer needs, and obskit never puts local variables in them.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._urls import scrub_text

__all__ = ["DEFAULT_KEYS", "EXCEPTION_KEYS", "REDACTED", "Redactor", "current", "install"]

REDACTED = "[REDACTED]"
TOO_DEEP = "[TOO DEEP]"
TRUNCATED = "[TRUNCATED]"

#: The union of what sentry-sdk (``DEFAULT_DENYLIST``) and logfire (``DEFAULT_PATTERNS``) scrub by default,
#: written as segment runs, plus a few names both miss (``passphrase``, ``access_key``, ``bearer``, ``cvv``).
DEFAULT_KEYS: tuple[str, ...] = (
    "password", "passwd", "passphrase", "mysql_pwd", "secret", "token", "api_key", "apikey", "access_key",
    "auth", "authorization", "authentication", "bearer", "credential", "credentials", "cookie", "set_cookie",
    "session", "sessionid", "phpsessid", "connect.sid", "symfony", "csrf", "csrftoken", "xsrf", "jwt",
    "private_key", "privatekey", "credit_card", "card_number", "cvv", "cvc", "social_security", "ssn",
    "x_forwarded_for",
)

#: Attributes holding an exception's text: left as they are unless exceptions are scrubbed too.
EXCEPTION_KEYS = frozenset({"exception.message", "exception.stacktrace"})

_MAX_DEPTH = 32
_MAX_VALUES = 10_000  # values visited per redact call; past that, strings and containers are cut
_SCALARS = frozenset({int, float, bool, type(None)})
_SEP = re.compile(r"[\s._\-/:]+")
_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _segments(key: str) -> str:
    """``"X-Api-Key"`` -> ``"_x_api_key_"``: lowercase segments joined and fenced by ``_``."""
    parts = _SEP.split(_HUMP.sub("_", key).lower())
    return "_" + "_".join(p for p in parts if p) + "_"


def _names(extra: Iterable[str] | str) -> tuple[str, ...]:
    """The user's keys: a list, or one comma-separated string (``redact="ssn"`` means one key, ``ssn``)."""
    items = extra.split(",") if isinstance(extra, str) else [str(x) for x in extra]
    return tuple(x.strip() for x in items if x and x.strip())


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = _MAX_VALUES


class Redactor:
    """Decides which keys are sensitive and returns redacted copies, leaving the input untouched."""

    __slots__ = ("_cache", "_match", "keys", "scrub_exceptions")

    def __init__(self, extra: Iterable[str] | str = (), *, scrub_exceptions: bool = False) -> None:
        self.keys: tuple[str, ...] = tuple(dict.fromkeys((*DEFAULT_KEYS, *_names(extra))))
        fenced = sorted({_segments(k) for k in self.keys if _segments(k) != "__"}, key=len, reverse=True)
        self._match = re.compile("|".join(re.escape(f) for f in fenced)).search
        self._cache: dict[str, bool] = {}
        self.scrub_exceptions = bool(scrub_exceptions)

    # --- keys and text --------------------------------------------------------------------------------

    def is_sensitive(self, key: object) -> bool:
        """Whether a value under ``key`` is a secret (see the module docstring for the matching rule)."""
        if not isinstance(key, str):
            return False
        hit = self._cache.get(key)
        if hit is None:
            hit = self._match(_segments(key)) is not None
            if len(self._cache) < 4096:  # bounded: keys are code, but stay safe against dynamic keys
                self._cache[key] = hit
        return hit

    def scrub_text(self, text: str) -> str:
        """``text`` without URL credentials and sensitive parameter values (the same object if clean)."""
        return scrub_text(text, self.is_sensitive)

    def exception_text(self, text: str) -> str:
        """An exception's message or traceback: scrubbed only when ``scrub_exceptions`` is set."""
        return scrub_text(text, self.is_sensitive) if self.scrub_exceptions else text

    # --- structured values ----------------------------------------------------------------------------

    def needs_redaction(self, data: Mapping[str, Any]) -> bool:
        """Cheap pre-check so the common case (clean keys, scalar values, plain text) copies nothing.

        Types are compared exactly first: an ABC ``isinstance`` costs ~0.4 us per value, and this runs for
        every log line.
        """
        is_sensitive = self.is_sensitive
        for key, value in data.items():
            if is_sensitive(key):
                return True
            kind = type(value)
            if kind is str:
                if "=" in value or "@" in value:
                    return True
            elif kind not in _SCALARS and _walkable(value):
                return True
        return False

    def redact(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``data`` with sensitive values replaced, walking every container inside it."""
        return self._mapping(data, 0, _Budget())

    def redact_value(self, value: Any) -> Any:
        """``value`` redacted: a string scrubbed, a container walked (returns plain dicts and lists)."""
        return self._value(value, 0, _Budget())

    def redact_attributes(self, attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """OpenTelemetry attributes (scalars and sequences of scalars) redacted, or None if none changed.

        The exception attributes keep their text unless ``scrub_exceptions`` is set.
        """
        if not attrs:
            return None
        out: dict[str, Any] = {}
        changed = False
        for key, value in attrs.items():
            new = value
            if self.is_sensitive(key):
                new = REDACTED
            elif key in EXCEPTION_KEYS and not self.scrub_exceptions:
                pass
            elif type(value) is str:
                new = self.scrub_text(value)
            elif isinstance(value, list | tuple) and any(type(x) is str for x in value):
                scrubbed = tuple(self.scrub_text(x) if type(x) is str else x for x in value)
                if scrubbed != tuple(value):
                    new = scrubbed
            changed = changed or new is not value
            out[key] = new
        return out if changed else None

    def _mapping(self, data: Mapping[Any, Any], depth: int, budget: _Budget) -> dict[Any, Any]:
        is_sensitive = self.is_sensitive
        return {k: REDACTED if is_sensitive(k) else self._value(v, depth, budget) for k, v in data.items()}

    def _value(self, v: Any, depth: int, budget: _Budget) -> Any:
        kind = type(v)
        if kind in _SCALARS:
            return v
        budget.left -= 1
        if budget.left < 0:
            return TRUNCATED
        if kind is str:
            return self.scrub_text(v)
        if depth >= _MAX_DEPTH:  # deep or cyclic structures: cut, rather than recurse without end
            return TOO_DEEP
        depth += 1
        if isinstance(v, Mapping):
            return self._mapping(v, depth, budget)
        fields = _fields_of(v)
        if fields is not None:
            return self._mapping(fields, depth, budget)
        named: Any = type(v)
        if isinstance(v, tuple) and hasattr(named, "_fields"):  # a named tuple: its field names are keys
            items = self._mapping(dict(zip(named._fields, v, strict=False)), depth, budget)
            try:
                return named._make(items.values())
            except Exception:
                return items
        if isinstance(v, list | tuple):
            if v and all(type(x) in (tuple, list) and len(x) == 2 and isinstance(x[0], str) for x in v):
                pairs = [(k, REDACTED if self.is_sensitive(k) else self._value(x, depth, budget))
                         for k, x in v]
                return pairs if type(v) is list else tuple(pairs)
            items_list = [self._value(x, depth, budget) for x in v]
            return items_list if type(v) is list else tuple(items_list)
        if isinstance(v, set | frozenset | collections.deque):
            return [self._value(x, depth, budget) for x in v]
        if isinstance(v, bytes | bytearray) and (b"=" in v or b"@" in v):
            return self.scrub_text(bytes(v).decode("utf-8", "replace"))
        return v


def _fields_of(v: Any) -> dict[str, Any] | None:
    """The fields of a dataclass, attrs or pydantic instance, by name; None for anything else."""
    cls = type(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: getattr(v, f.name, None) for f in dataclasses.fields(v)}
    attrs_fields = getattr(cls, "__attrs_attrs__", None)
    if attrs_fields is not None and not isinstance(v, type):
        return {a.name: getattr(v, a.name, None) for a in attrs_fields}
    model_fields = getattr(cls, "model_fields", None)  # pydantic 2 (1: __fields__)
    if model_fields is None:
        model_fields = getattr(cls, "__fields__", None)
    if isinstance(model_fields, Mapping) and hasattr(v, "__dict__") and not isinstance(v, type):
        return {name: getattr(v, name, None) for name in model_fields}
    return None


def _walkable(v: Any) -> bool:
    """Values redaction walks into or scrubs (see ``Redactor._value``)."""
    return (isinstance(v, Mapping | list | tuple | set | frozenset | collections.deque)
            or (isinstance(v, bytes | bytearray) and (b"=" in v or b"@" in v))
            or _fields_of(v) is not None)


_current = Redactor()


def current() -> Redactor:
    """The redactor ``init()`` configured (the default list before it): what metric labels, span export
    and obskit's own messages use."""
    return _current


def install(redactor: Redactor) -> None:
    """Make ``redactor`` the process-wide one (``init()``; the default one again on reset)."""
    global _current
    _current = redactor
