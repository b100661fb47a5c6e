"""Secrets inside text: URL credentials and the values of sensitive ``name=value`` (query) parameters.

Redaction by key cannot see a secret that travels inside a string: ``http://user:pw@host`` in an endpoint,
``/callback?token=...`` in ``url.full`` or in a server's access line, an exporter's error message quoting
the URL it failed to reach. This module finds those two shapes anywhere in a string and replaces the
secret part with ``REDACTED``, the word the OpenTelemetry semantic conventions prescribe for ``url.full``
(``https://REDACTED:REDACTED@host/p?sig=REDACTED``), so a scrubbed URL stays a valid URL.

Which parameter names are sensitive is decided by the caller (the redactor's key list), plus the signed-URL
parameters the semantic conventions name. A string without ``@`` and ``=`` is returned untouched after two
substring checks: this runs on every log line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote_plus

__all__ = ["IN_TEXT", "SIGNED_URL_PARAMS", "scrub_text"]

IN_TEXT = "REDACTED"

#: Query parameters of signed URLs (AWS, Azure, Google) that the semantic conventions say to redact.
SIGNED_URL_PARAMS = frozenset({"awsaccesskeyid", "signature", "sig", "x-goog-signature"})

# scheme://userinfo@ : the userinfo runs to the last "@" before the path, query, fragment or a blank, so a
# password holding a raw "@" is taken whole.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#\"'<>\\]+@")
# name=value where name starts the string or follows a separator (?, &, ;, #, a blank, a bracket, a quote,
# a comma). The value stops at the next parameter, fragment, blank, quote or backslash (a JSON escape).
_PARAM = re.compile(r"(?<![^?&;#\s,(\[{\"'])([\w.\-~%+\[\]]+)=([^&#;\s\"'<>\\]*)")


def _sensitive_param(name: str, is_sensitive: Callable[[str], bool]) -> bool:
    plain = unquote_plus(name) if "%" in name or "+" in name else name
    return plain.lower() in SIGNED_URL_PARAMS or is_sensitive(plain)


def scrub_text(text: str, is_sensitive: Callable[[str], bool]) -> str:
    """``text`` with URL userinfo and the values of sensitive ``name=value`` parameters replaced.

    Returns ``text`` itself (the same object) when there is nothing to replace, so callers can tell.
    """
    has_at = "@" in text
    has_eq = "=" in text
    if not (has_at or has_eq):
        return text
    out = text
    if has_at and "://" in out:
        out = _USERINFO.sub(r"\1REDACTED:REDACTED@", out)
    if has_eq:

        def value(m: re.Match[str]) -> str:
            if m.group(2) and m.group(2) != IN_TEXT and _sensitive_param(m.group(1), is_sensitive):
                return f"{m.group(1)}={IN_TEXT}"
            return m.group(0)

        out = _PARAM.sub(value, out)
    return text if out == text else out
