"""Nothing finished is lost on a graceful stop (issue 8): N requests, SIGTERM, then the collector has it all.

Each server runs as an operator runs it, exporting to a loopback OTLP receiver with batch delays far longer
than the test, so what arrives was flushed by the stop itself: N server spans and N request log lines, for
uvicorn alone, gunicorn's sync workers and gunicorn's uvicorn workers, with and without ``--preload``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from otlp_receiver import OTLPReceiver, any_value
from served import Served, free_port

pytestmark = pytest.mark.slow

N = 10

LIFESPAN = """
async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
"""

ASGI_APP = LIFESPAN + """
import obskit
from obskit.integrations.asgi import ObskitASGIMiddleware

obskit.init(service_name="stop", log_format="json", integrations="none")
log = obskit.get_logger("app")


async def inner(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    log.info("handling", path=scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


app = ObskitASGIMiddleware(inner)
"""

WSGI_APP = """
import obskit
from obskit.integrations.wsgi import ObskitWSGIMiddleware

obskit.init(service_name="stop", log_format="json", integrations="none")
log = obskit.get_logger("app")


def inner(environ, start_response):
    log.info("handling", path=environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = ObskitWSGIMiddleware(inner)
"""


# uvicorn.run() in a script that called init() (in app.py) before it imported uvicorn at all.
MAIN = """
from app import app
import uvicorn

uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]))
"""


def uvicorn_worker_class() -> str:
    """The UvicornWorker gunicorn can load: the ``uvicorn-worker`` package's, else uvicorn's own."""
    return ("uvicorn_worker.UvicornWorker" if importlib.util.find_spec("uvicorn_worker")
            else "uvicorn.workers.UvicornWorker")


def server_env(rx: OTLPReceiver, tmp: Path) -> dict[str, str]:
    """Export to ``rx`` only; batches wait 10 minutes, so only a flush at the stop can deliver them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    env.update(PYTHONPATH=str(tmp), OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
               OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_METRICS_EXPORTER="none",
               OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_BLRP_SCHEDULE_DELAY="600000")
    return env


def serve(tmp: Path, rx: OTLPReceiver, source: str, cmd: list[str]) -> Served:
    (tmp / "app.py").write_text(textwrap.dedent(source))
    (tmp / "main.py").write_text(MAIN)
    port = free_port()
    return Served([c.replace("{port}", str(port)) for c in cmd], tmp, server_env(rx, tmp), port)


def gunicorn(*extra: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "--graceful-timeout", "20",
            "--no-control-socket", *extra, "app:app"]


def bodies(rx: OTLPReceiver) -> list[Any]:
    return [any_value(r.body) for r in rx.log_records()]


SERVERS = {
    "uvicorn": (ASGI_APP, [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                           "--port", "{port}"]),
    "uvicorn-run-imported-after-init": (ASGI_APP, [sys.executable, "main.py", "{port}"]),
    "gunicorn-sync": (WSGI_APP, gunicorn()),
    "gunicorn-sync-preload": (WSGI_APP, gunicorn("--preload")),
    "gunicorn-uvicorn-workers": (ASGI_APP, gunicorn("-k", uvicorn_worker_class())),
    "gunicorn-uvicorn-workers-preload": (ASGI_APP, gunicorn("-k", uvicorn_worker_class(), "--preload")),
}


@pytest.mark.parametrize("server", list(SERVERS))
def test_sigterm_flushes_every_finished_request(tmp_path: Path, server: str) -> None:
    """N requests then SIGTERM: the collector holds N server spans and the N request log records."""
    source, cmd = SERVERS[server]
    with OTLPReceiver("http") as rx:
        served = serve(tmp_path, rx, source, cmd)
        try:
            for i in range(N):
                assert served.get(f"/work/{i}") == "ok"
            assert rx.spans() == [] and rx.log_records() == []  # the batches are still waiting
            served.terminate()
        finally:
            served.kill()
        spans = [s for s in rx.spans() if s.name.startswith("GET")]
        handling = [b for b in bodies(rx) if b == "handling"]
    assert len(spans) == N, (server, [s.name for s in spans], served.output()[-3000:])
    assert len(handling) == N, (server, bodies(rx), served.output()[-3000:])


def test_stop_hook_is_put_back_by_reset(fresh: None) -> None:
    """init() wraps uvicorn's Server.shutdown to flush; reset() puts the original back."""
    from uvicorn.server import Server

    import obskit
    from obskit.testing import reset

    original = Server.__dict__["shutdown"]
    obskit.init(service_name="stop", integrations="none", metrics=False, otlp_endpoint=None)
    assert Server.__dict__["shutdown"].__wrapped__ is original
    reset()
    assert Server.__dict__["shutdown"] is original
