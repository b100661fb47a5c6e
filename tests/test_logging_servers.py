"""Real uvicorn and gunicorn servers on loopback: their own lines appear once each, as obskit JSON."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from server_process import ServerProcess

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import obskit

    obskit.init(log_format="json", service_name="uvi", integrations="none")
    log = obskit.get_logger("app")


    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        log.info("handling", path=scope["path"])
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    """
)

# uvicorn.run() after init(): uvicorn's dictConfig runs after obskit's setup and is repaired, whether
# uvicorn was imported before init() or only after it.
MAIN = textwrap.dedent(
    """
    {imports}

    if __name__ == "__main__":
        uvicorn.run(app, host="127.0.0.1", port=0{extra})
    """
)

STARTUP = ("Started server process", "Waiting for application startup.", "Application startup complete.")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""),) if p)
    return env


class _Server(ServerProcess):
    def __init__(self, cmd: list[str], cwd: Path, ready: str) -> None:
        super().__init__(cmd, cwd, ready, env=_env())


def _get(port: int, path: str) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        assert resp.status == 200


def _parse(server: _Server) -> list[dict[str, Any]]:
    parsed: list[dict[str, Any]] = []
    for raw in server.stdout:
        try:
            parsed.append(json.loads(raw))
        except ValueError:
            pytest.fail(f"non-JSON line on stdout: {raw!r}")
    return parsed


def _check_uvicorn(server: _Server) -> None:
    parsed = _parse(server)
    stderr = server.stderr
    events = [(p["logger"], p["event"]) for p in parsed]
    for text in STARTUP:
        hits = [e for e in events if e[0] == "uvicorn.error" and e[1].startswith(text)]
        assert len(hits) == 1, (text, events)
    assert sum(1 for e in events if e[1].startswith("Uvicorn running on")) == 1
    access = [p for p in parsed if p["logger"] == "uvicorn.access"]
    assert sorted(p["path"] for p in access) == ["/a", "/b"], events
    assert all(p["status_code"] == 200 and p["service"] == "uvi" for p in access)
    assert sorted(p["path"] for p in parsed if p["event"] == "handling") == ["/a", "/b"]
    assert all(p["level"] in ("info", "warning") and "timestamp" in p for p in parsed)
    # Nothing in uvicorn's own format anywhere (its default handlers write "INFO:     ..." to stderr).
    assert "INFO:" not in stderr and "Started server process" not in stderr, stderr


def _serve(
    cmd: list[str], cwd: Path, ready: str = r"Uvicorn running on http://127\.0\.0\.1:(\d+)",
    stop: int = signal.SIGINT,
) -> _Server:
    server = _Server(cmd, cwd, ready)
    try:
        port = server.wait_ready()
        _get(port, "/a")
        _get(port, "/b")
    finally:
        server.stop(stop)
    return server


def test_uvicorn_cli_lines_appear_once_as_json(tmp_path: Path) -> None:
    """`python -m uvicorn app:app`: startup and access lines are JSON on stdout, once each."""
    (tmp_path / "app.py").write_text(APP)
    cmd = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "0"]
    _check_uvicorn(_serve(cmd, tmp_path))


@pytest.mark.parametrize(
    ("imports", "extra"),
    [
        ("import uvicorn\nfrom app import app", ""),
        ("from app import app\nimport uvicorn", ""),
        ("import uvicorn\nfrom app import app", ", log_config=None"),
    ],
    ids=["uvicorn-imported-first", "uvicorn-imported-after-init", "log-config-none"],
)
def test_uvicorn_run_after_init_lines_appear_once_as_json(tmp_path: Path, imports: str, extra: str) -> None:
    """uvicorn.run() after init(), however uvicorn was imported: still once each, as JSON."""
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "main.py").write_text(MAIN.format(imports=imports, extra=extra))
    _check_uvicorn(_serve([sys.executable, "main.py"], tmp_path))


WSGI = textwrap.dedent(
    """
    import obskit

    log = obskit.get_logger("app")


    def app(environ, start_response):
        log.info("handling", path=environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    """
)
INIT = 'import obskit\nobskit.init(log_format="json", service_name="guni", integrations="none")\n'


@pytest.mark.parametrize("where", ["preloaded-app", "config-file"])
def test_gunicorn_master_worker_and_access_lines_appear_once_as_json(tmp_path: Path, where: str) -> None:
    """gunicorn with init() in a preloaded app or in gunicorn.conf.py: every line is obskit JSON, once."""
    if where == "preloaded-app":
        (tmp_path / "wsgi.py").write_text(INIT + WSGI)
        extra = ["--preload"]
    else:
        (tmp_path / "wsgi.py").write_text(WSGI)
        (tmp_path / "gunicorn_conf.py").write_text(INIT)
        extra = ["-c", "gunicorn_conf.py"]
    cmd = [sys.executable, "-m", "gunicorn", *extra, "--no-control-socket", "-w", "1", "-b", "127.0.0.1:0"]
    # SIGTERM, gunicorn's graceful stop: on SIGINT (quick stop) a worker still writing the last response
    # exits mid-write, which gunicorn reports as an error with an extra 500 access line.
    server = _serve(
        [*cmd, "--access-logfile", "-", "wsgi:app"], tmp_path, r"Listening at: http://[\d.]+:(\d+)",
        stop=signal.SIGTERM,
    )
    parsed = _parse(server)
    events = [(p["logger"], p["event"]) for p in parsed]
    for text in ("Starting gunicorn", "Listening at", "Booting worker"):
        assert sum(1 for e in events if e[0] == "gunicorn.error" and e[1].startswith(text)) == 1, events
    access = [p for p in parsed if p["logger"] == "gunicorn.access"]
    assert len(access) == 2 and all('"GET /' in p["event"] for p in access), events
    assert sorted(p["path"] for p in parsed if p["event"] == "handling") == ["/a", "/b"]
    assert all(p["service"] == "guni" for p in parsed)
    assert "[INFO]" not in server.stderr, server.stderr
