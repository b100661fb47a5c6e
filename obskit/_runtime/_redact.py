"""Redaction of sensitive values by key, for log events, span attributes and exported log records.

Matching is by key name (case-insensitive; ``-`` and ``_`` equivalent), on nested mappings and on mappings
inside lists too. It is a key match, not a substring search over values: cheap enough for every log line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEFAULT_KEYS", "REDACTED", "Redactor"]

REDACTED = "[REDACTED]"

DEFAULT_KEYS: tuple[str, ...] = (
    "password", "passwd", "secret", "token", "api_key", "apikey", "authorization", "cookie",
    "set-cookie", "session", "private_key", "credit_card", "card_number",
)


_FLAT = frozenset({str, int, float, bool, type(None)})
_MAX_DEPTH = 32
_TOO_DEEP = "[TOO DEEP]"


def _is_container(v: Any) -> bool:
    """Values redaction walks into: mappings, lists, tuples and dataclass instances."""
    return isinstance(v, Mapping | list | tuple) or (dataclasses.is_dataclass(v) and not isinstance(v, type))


def _norm(key: str) -> str:
    return key.lower().replace("-", "_")


class Redactor:
    """Decides which keys are sensitive and returns redacted copies, leaving the input untouched.

    A key is sensitive when, normalised, it equals a listed key or ends with ``_<listed key>``
    (``db_password``, ``x_api_key``, ``session`` but not ``sessions_count``).
    """

    __slots__ = ("_cache", "_keys", "_suffixes")

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._keys = frozenset(_norm(k) for k in (*DEFAULT_KEYS, *extra) if k)
        self._suffixes = tuple("_" + k for k in self._keys)
        self._cache: dict[str, bool] = {}

    def is_sensitive(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        hit = self._cache.get(key)
        if hit is None:
            n = _norm(key)
            hit = n in self._keys or n.endswith(self._suffixes)
            if len(self._cache) < 4096:  # bounded: keys are code, but stay safe against dynamic keys
                self._cache[key] = hit
        return hit

    def redact(self, data: Mapping[str, Any], _depth: int = 0) -> dict[str, Any]:
        """A copy of ``data`` with sensitive values replaced, recursing into mappings, lists, tuples
        (named ones keep their type) and dataclass instances (which become dicts of their fields)."""
        return {k: REDACTED if self.is_sensitive(k) else self._value(v, _depth) for k, v in data.items()}

    def needs_redaction(self, data: Mapping[str, Any]) -> bool:
        """Cheap pre-check so the common case (nothing sensitive, flat values) copies nothing.

        Flat values are recognised by exact type first: an ABC ``isinstance`` costs ~0.4 us per value, and
        this runs for every log line.
        """
        is_sensitive = self.is_sensitive
        for key, value in data.items():
            if is_sensitive(key) or (type(value) not in _FLAT and _is_container(value)):
                return True
        return False

    def redact_value(self, value: Any) -> Any:
        """``value`` with sensitive keys redacted inside it (a mapping, list, tuple or dataclass)."""
        return self._value(value, 0)

    def _value(self, v: Any, depth: int) -> Any:
        if type(v) in _FLAT:
            return v
        if depth >= _MAX_DEPTH:  # deep or cyclic structures: cut, rather than recurse without end
            return _TOO_DEEP
        if isinstance(v, Mapping):
            return self.redact(v, depth + 1)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return self.redact({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}, depth + 1)
        if isinstance(v, list | tuple):
            items = [self._value(x, depth + 1) for x in v]
            if type(v) is list:
                return items
            if type(v) is tuple:
                return tuple(items)
            make = getattr(type(v), "_make", None)  # a namedtuple rebuilds from an iterable this way
            return make(items) if make is not None else items
        return v
