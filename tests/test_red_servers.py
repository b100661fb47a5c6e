"""RED metrics from real servers: FastAPI on uvicorn, scraped over HTTP, spans received by a loopback
collector. N requests give a count of N under the route template on one scrape; a failing route counts
under 500 with ``error_type``; the exemplar is a trace the collector received; no series carries a raw path;
``/metrics`` and ``/healthz`` make no span, no series and no access line at INFO."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from otlp_receiver import OTLPReceiver, attributes
from red_metrics import count, exemplar_trace_ids, series_labels
from red_servers import WebApp, app_env, free_port, trace_ids

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
