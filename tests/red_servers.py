"""A web app run as its user runs it (uvicorn, gunicorn, ``manage.py runserver``), exporting spans to a
loopback OTLP receiver and serving ``/metrics``; what the RED tests of each framework share."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from otlp_receiver import OTLPReceiver
from red_metrics import Sample, samples, scrape
from server_process import ServerProcess

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_env(receiver: OTLPReceiver, cwd: Path, **extra: str) -> dict[str, str]:
    """The environment a deployment would set: OTLP endpoint, JSON logs; nothing inherited from the test."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_", "DJANGO_"))}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
               OTEL_LOGS_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OBSKIT_LOG_FORMAT="json",
               PYTHONPATH=str(cwd), PYTHONUNBUFFERED="1", **extra)
    return env


class WebApp(ServerProcess):
    """A server subprocess on ``port``; ready once a request to ``probe`` answers."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], port: int, probe: str = "/healthz",
                 metrics_port: int | None = None) -> None:
        super().__init__(cmd, cwd, r"(?!)", env=env)  # readiness is polled over HTTP instead
        self.port = port
        self.metrics_port = metrics_port or port
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.get(probe)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server did not come up: {''.join(self.stdout)}\n{self.stderr}")

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            exc.read()
            return int(exc.code)

    def scrape(self) -> list[Sample]:
        return samples(scrape(self.metrics_port))

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON line the app printed on stdout (``runserver`` also prints its banner there)."""
        return [json.loads(line) for line in self.stdout if line.startswith("{")]

    def wait_for_line(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.stdout) and time.monotonic() < deadline:
            time.sleep(0.02)


def trace_ids(receiver: OTLPReceiver) -> set[str]:
    return {s.trace_id.hex() for s in receiver.spans()}
