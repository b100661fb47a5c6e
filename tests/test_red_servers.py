"""RED metrics from real servers: FastAPI on uvicorn scraped over HTTP with spans received by a loopback
collector, and a real Prometheus running the RED query over FastAPI, Flask and Django (their own checks are
in test_flask.py and test_django.py). N requests give a count of N under the route template on one scrape;
a failing route counts under 500 with ``error_type``; the exemplar is a trace the collector received; no
series carries a raw path; ``/metrics`` and ``/healthz`` make no span, no series, no access line at INFO."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import require
from otlp_receiver import OTLPReceiver, attributes
from red_metrics import count, exemplar_trace_ids, series_labels
from red_servers import BIN, WebApp, app_env, free_port, trace_ids

pytestmark = pytest.mark.slow
N = 7

FASTAPI_APP = textwrap.dedent(
    """
    from fastapi import FastAPI

    import obskit

    app = FastAPI()  # before init(), as most apps are; no wiring
    obskit.init(service_name="catalog")
    app.mount("/metrics", obskit.metrics_asgi_app())
    log = obskit.get_logger("catalog")


    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        log.info("loading item", item_id=item_id)
        return {"id": item_id}


    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("boom")


    @app.get("/healthz")
    async def health() -> dict:
        return {"ok": True}
    """
)


def _check_red(server: WebApp, receiver: OTLPReceiver, route: str, failing_route: str) -> None:
    """The assertions every framework shares, made on one scrape after N + 1 requests."""
    found = server.scrape()
    assert count(found, http_route=route, http_request_method="GET", http_response_status_code="200",
                 url_scheme="http") == N, [s for s in found if s.name.endswith("_count")]
    assert count(found, http_route=failing_route, http_response_status_code="500") == 1
    (failed,) = [lb for lb in series_labels(found) if lb.get("http_response_status_code") == "500"]
    assert failed.get("error_type"), failed
    for labels in series_labels(found):
        assert labels.get("http_route") in (route, failing_route), labels  # no raw path, no /metrics
    assert [s for s in found if s.name == "http_server_active_requests"]
    exemplars = exemplar_trace_ids(found)
    assert receiver.wait_for(lambda rx: exemplars <= trace_ids(rx), timeout=15)
    assert exemplars, "no exemplar on the duration buckets"


def test_fastapi_on_uvicorn(tmp_path: Path) -> None:
    """FastAPI on uvicorn with init() alone: RED series, route-named spans, health and /metrics left out."""
    pytest.importorskip("fastapi")
    (tmp_path / "app.py").write_text(FASTAPI_APP)
    port = free_port()
    with OTLPReceiver("http") as receiver:
        server = WebApp([sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port",
                         str(port)], tmp_path, app_env(receiver, tmp_path), port)
        try:
            assert [server.get(f"/items/{i}") for i in range(N)] == [200] * N
            assert server.get("/boom") == 500
            assert server.get("/healthz") == 200
            server.wait_for_line("Exception in ASGI application")
            _check_red(server, receiver, "/items/{item_id}", "/boom")
        finally:
            server.stop()
    assert receiver.wait_for(lambda rx: len(rx.spans()) >= N + 1)
    names = sorted({s.name for s in receiver.spans() if s.kind == 2})  # OTLP SERVER
    assert names == ["GET /boom", "GET /items/{item_id}"], names
    paths = {attributes(s.attributes).get("url.path") for s in receiver.spans()}
    assert not paths & {"/healthz", "/metrics", "/metrics/"}, paths
    access = [e for e in server.logs() if e.get("logger") == "uvicorn.access"]
    assert {e["path"].split("?")[0] for e in access} == {f"/items/{i}" for i in range(N)} | {"/boom"}, access


# --- a real Prometheus scrapes each app: the RED query an operator writes returns data ---------------------


def _prometheus(tmp_path: Path, targets: dict[str, int]) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus")
    require(binary is not None, "prometheus not installed (Debian package 'prometheus')")
    assert binary is not None
    jobs = "".join(f"  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
                   for job, port in targets.items())
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n" + jobs)
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as out:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", "--log.level=warn"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            payload = json.loads(resp.read())
    except OSError:
        return []
    return list(payload["data"]["result"]) if payload.get("status") == "success" else []


RED_QUERY = "sum by (job, http_route) (rate(http_server_request_duration_seconds_count[1m]))"


def test_prometheus_red_query_returns_data_for_each_app(tmp_path: Path) -> None:
    """FastAPI on uvicorn, Flask under gunicorn (2 sync workers), Django under gunicorn, each scraped by a
    real Prometheus: the PromQL RED query returns a positive rate per app under its route template."""
    pytest.importorskip("fastapi")
    pytest.importorskip("flask")
    pytest.importorskip("django")
    from test_django import PROJECT
    from test_flask import FLASK_APP

    for name in ("fastapi", "flask", "django"):
        (tmp_path / name).mkdir()
    (tmp_path / "fastapi" / "app.py").write_text(FASTAPI_APP)
    (tmp_path / "flask" / "app.py").write_text(FLASK_APP)
    for name, source in PROJECT.items():
        (tmp_path / "django" / name).write_text(textwrap.dedent(source))
    ports = {name: (free_port(), free_port()) for name in ("fastapi", "flask", "django")}
    routes = {"fastapi": ("/items/{item_id}", "/items/{}"), "flask": ("/items/<int:item_id>", "/items/{}"),
              "django": ("items/<int:pk>", "/items/{}")}
    apps: list[WebApp] = []
    with OTLPReceiver("http") as receiver:
        try:
            port, mport = ports["fastapi"]
            apps.append(WebApp([sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port",
                                str(port)], tmp_path / "fastapi",
                               app_env(receiver, tmp_path / "fastapi"), port))
            port, mport = ports["flask"]
            apps.append(WebApp([str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "-c",
                                "python:obskit.integrations.gunicorn", "app:app"], tmp_path / "flask",
                               app_env(receiver, tmp_path / "flask", OBSKIT_METRICS_PORT=str(mport)), port,
                               metrics_port=mport))
            port, mport = ports["django"]
            apps.append(WebApp([str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}",
                                "wsgi:application"], tmp_path / "django",
                               app_env(receiver, tmp_path / "django", OBSKIT_METRICS_PORT=str(mport),
                                       INIT_IN="wsgi", APP_DEBUG="0"), port, metrics_port=mport))
            # FastAPI serves /metrics on its own port (mounted); the others on OBSKIT_METRICS_PORT.
            targets = {"fastapi": ports["fastapi"][0], "flask": ports["flask"][1],
                       "django": ports["django"][1]}
            prometheus, base = _prometheus(tmp_path, targets)
            try:
                found: dict[str, float] = {}
                deadline = time.monotonic() + 60
                i = 0
                while time.monotonic() < deadline and len(found) < 3:
                    for app, name in zip(apps, ("fastapi", "flask", "django"), strict=True):
                        assert app.get(routes[name][1].format(i)) == 200
                    i += 1
                    found = {r["metric"]["job"]: float(r["value"][1]) for r in _query(base, RED_QUERY)
                             if r["metric"].get("http_route") == routes[r["metric"]["job"]][0]
                             and float(r["value"][1]) > 0}
                    time.sleep(0.2)
            finally:
                prometheus.send_signal(signal.SIGTERM)
                prometheus.wait(15)
        finally:
            for app in apps:
                app.stop()
    assert set(found) == {"fastapi", "flask", "django"}, (found, _query_log(tmp_path))


def _query_log(tmp_path: Path) -> str:
    log = tmp_path / "prometheus.log"
    return log.read_text() if log.exists() else ""
