"""One doctor check's outcome, and the one place its lines are written (scrubbed on the way out)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import IO

from .._runtime._redact import Redactor

__all__ = ["FAIL", "OK", "WARN", "Check", "exit_code", "write"]

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclasses.dataclass(frozen=True)
class Check:
    """``status`` is OK, WARN or FAIL; ``name`` what was checked; ``message`` what was found, in words a
    person acts on (what to change, not only what broke)."""

    status: str
    name: str
    message: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.message}"


def write(checks: Iterable[Check], out: IO[str], redactor: Redactor) -> None:
    """Each check on its own line. Every line is scrubbed again here: a message quoting an error from a
    server or a library could carry a URL with credentials, and this is the doctor's only exit."""
    for check in checks:
        out.write(redactor.scrub_text(check.line().replace("\n", " ")) + "\n")
    out.flush()


def exit_code(checks: Iterable[Check]) -> int:
    """1 when any check failed, else 0 (warnings alone do not fail)."""
    return 1 if any(c.status == FAIL for c in checks) else 0
