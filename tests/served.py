"""A server subprocess as an operator runs it: its own session, output (stdout and stderr) to a file, ready
when its port accepts connections, stopped with the signal the test chooses and killed if it hangs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A server subprocess (own session, output to a file) answering on ``port``; ``terminate`` = SIGTERM."""

    def __init__(self, cmd: list[str], tmp: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        self.log = tmp / "server.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited early:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(f"server did not come up:\n{self.output()}")
                time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_lines(self, text: str, count: int, timeout: float = 30) -> None:
        """Until ``count`` lines of the output contain ``text`` (gunicorn's "Booting worker" per worker).

        gunicorn loses a SIGTERM that reaches a worker it is still booting (the worker runs the master's
        inherited handler, which only queues the signal, until it installs its own), and the master then
        waits out its graceful timeout: a test stopping the server waits for every worker first."""
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.output().splitlines()) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"fewer than {count} lines with {text!r}:\n{self.output()}")
            time.sleep(0.05)
        time.sleep(0.3)  # the last worker's own signal handlers, installed right after that line

    def get(self, path: str, headers: dict[str, str] | None = None) -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return str(resp.read().decode())

    def terminate(self) -> int:
        """SIGTERM, as an orchestrator stops a container; returns the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server did not stop on SIGTERM:\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def json_lines(self) -> list[dict[str, Any]]:
        """Every JSON object line of the output (obskit's lines), in order."""
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]
