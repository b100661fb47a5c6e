"""``obskit run -- <command>``: start any Python program with obskit set up from the environment.

Like ``opentelemetry-instrument``: the command runs in place of ``obskit run`` (same process, same pid, its
exit status and signals untouched) with obskit's ``_site`` folder first on ``PYTHONPATH``, so every Python
interpreter it starts, forks aside (``uvicorn --workers`` spawns fresh ones, so does ``multiprocessing``),
imports obskit's ``sitecustomize`` before the program: that calls ``obskit.init()`` from the ``OBSKIT_*`` /
``OTEL_*`` variables and gives servers what a config file would (see :mod:`obskit._run._bootstrap`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["SITE_DIR", "command_env", "run"]

SITE_DIR = str(Path(__file__).parent / "_site")
#: Set in the program's environment: the bootstrap acts only when obskit run put it on the path.
ACTIVE_ENV = "OBSKIT_RUN"

USAGE = "usage: obskit run [--] <command> [args...]   e.g. obskit run -- gunicorn -w 2 app:app"


def command_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with obskit's ``sitecustomize`` first on ``PYTHONPATH`` (kept once) and the marker set."""
    env = dict(environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != SITE_DIR]
    env["PYTHONPATH"] = os.pathsep.join([SITE_DIR, *parts])
    env[ACTIVE_ENV] = "1"
    return env


def run(argv: Sequence[str]) -> int:
    """Replace this process by ``argv`` (after an optional ``--``); returns only if that fails."""
    args = list(argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not args else sys.stdout)
        return 2 if not args else 0
    program = shutil.which(args[0]) or args[0]
    try:
        os.execve(program, args, command_env(os.environ))
    except OSError as exc:
        print(f"obskit run: cannot run {args[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execve does not return
