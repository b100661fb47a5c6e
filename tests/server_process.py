"""A server run as a subprocess, as a user would run it, with its output read line by line.

Each pipe has exactly one reader thread, read to its end on stop(), so no line is ever lost (reading a pipe
from two places, e.g. a thread and ``communicate()``, drops whatever the other one took).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest


class ServerProcess:
    """``cmd`` started in ``cwd``; ``ready`` is a regex whose group 1 is the port the server prints."""

    def __init__(self, cmd: list[str], cwd: Path, ready: str, env: dict[str, str] | None = None) -> None:
        if env is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stdout: list[str] = []
        self._err: list[str] = []
        self.port: int | None = None
        self._ready_re = re.compile(ready)
        self._ready = threading.Event()
        self._readers = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._readers:
            t.start()

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.stdout.append(raw)
            m = self._ready_re.search(raw)
            if m:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._err.append(raw)

    def wait_ready(self) -> int:
        self._ready.wait(30)
        if self.port is None:
            self.stop()
            pytest.fail(f"server did not start; stdout={self.stdout!r} stderr={self.stderr!r}")
        return self.port

    def stop(self, sig: int = signal.SIGINT) -> None:
        """SIGINT by default, as Ctrl+C would; both pipes are read to their end."""
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._readers:
            t.join(10)
