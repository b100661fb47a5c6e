"""Imported by Python at start-up in every interpreter ``obskit run`` starts: run the ``sitecustomize`` this
one shadows (a distribution's or a virtualenv's), if there is one, then set obskit up."""

from __future__ import annotations

import importlib
import os
import sys


def _start() -> None:
    if os.environ.get("OBSKIT_RUN") != "1":
        return
    try:
        from obskit._run._bootstrap import start
    except ImportError:  # an interpreter without obskit installed: run the program as it is
        return
    start()


def _chain() -> None:
    """Import the next ``sitecustomize`` on the path, as if this folder were not there."""
    here = os.path.dirname(os.path.abspath(__file__))
    saved = sys.path[:]
    module = sys.modules.pop("sitecustomize", None)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        importlib.import_module("sitecustomize")
    except ModuleNotFoundError as exc:
        if exc.name != "sitecustomize":
            raise
    finally:
        sys.path[:] = saved
        if module is not None:
            sys.modules["sitecustomize"] = module


try:
    _chain()
finally:
    _start()
