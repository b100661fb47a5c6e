"""Flask by ``init()`` alone: a real werkzeug server in process, and gunicorn with 2 sync workers.

The app is never wrapped: the span is named by ``url_rule``, the RED series carry the rule, the exception
Flask turns into a 500 is one correlated line, and Flask's and werkzeug's loggers print once.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from otlp_receiver import OTLPReceiver
from red_metrics import OPENMETRICS, count, exemplar_trace_ids, samples, series_labels
from red_servers import BIN, WebApp, app_env, free_port, trace_ids

from obskit._metrics._exposition import render
from obskit.testing import capture

flask = pytest.importorskip("flask")
pytest.importorskip("opentelemetry.instrumentation.wsgi")
N = 5


def _app() -> Any:
    app = flask.Flask("shop")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        logging.getLogger("shop.views").info("loading item %d", item_id)
        return {"id": item_id}

    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError("boom")

    @app.get("/healthz")
    def health() -> str:
        return "ok"

    return app


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[int]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        server.shutdown()
        server.server_close()


def _get(port: int, path: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize("created", ["before-init", "after-init"])
def test_flask_app_is_traced_by_init_alone(created: str) -> None:
    """No wrapping: span named by url_rule, RED under the rule, app log lines carry the request's trace_id."""
    app = _app() if created == "before-init" else None
    with capture(integrations=["flask"]) as cap:
        app = app or _app()
        with _serving(app) as port:
            assert [_get(port, f"/items/{i}") for i in range(N)] == [200] * N
            assert _get(port, "/healthz") == 200
        found = samples(render(OPENMETRICS)[0].decode())
        spans = list(cap.spans)
        lines = cap.events("loading item 3")
    assert [s.name for s in spans] == ["GET /items/<int:item_id>"] * N
    assert count(found, http_route="/items/<int:item_id>", http_response_status_code="200") == N
    assert count(found) == N  # /healthz left out
    span_ids = {f"{s.context.trace_id:032x}" for s in spans}
    assert exemplar_trace_ids(found) and exemplar_trace_ids(found) <= span_ids
    assert len(lines) == 1 and lines[0]["trace_id"] in span_ids


@pytest.mark.parametrize("created", ["before-init", "after-init"])
def test_flask_exception_is_one_correlated_line_and_a_500(created: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """An unhandled exception: one line from Flask's logger with the traceback and the trace_id, counted under
    500 with error_type=ZeroDivisionError, recorded on the span; nothing on stderr."""
    app = _app() if created == "before-init" else None
    if app is not None:  # app.logger made before init(), with no handler around: Flask adds its own
        from flask.logging import default_handler

        if default_handler not in app.logger.handlers:  # pytest's root handler made Flask skip it
            app.logger.addHandler(default_handler)
    with capture(integrations=["flask"]) as cap:
        app = app or _app()
        with _serving(app) as port:
            assert _get(port, "/boom") == 500
        found = samples(render(OPENMETRICS)[0].decode())
        (span,) = cap.spans
        errors = [e for e in cap.logs if e.get("level") == "error"]
    assert span.name == "GET /boom" and any(e.name == "exception" for e in span.events)
    assert len(errors) == 1, errors
    assert errors[0]["logger"] == "shop" and errors[0]["trace_id"] == f"{span.context.trace_id:032x}"
    assert "ZeroDivisionError" in str(errors[0])
    assert count(found, http_route="/boom", http_response_status_code="500",
                 error_type="ZeroDivisionError") == 1
    assert "Traceback" not in capsys.readouterr().err


def test_werkzeug_access_lines_print_once_through_obskit(capsys: pytest.CaptureFixture[str]) -> None:
    """werkzeug's access line is an obskit line, once; /healthz's is not printed at INFO."""
    with capture(integrations=["flask"]) as cap:
        with _serving(_app()) as port:
            assert _get(port, "/items/1") == 200
            assert _get(port, "/healthz") == 200
        access = [e for e in cap.logs if e.get("logger") == "werkzeug" and "HTTP/1.1" in e["event"]]
    assert len(access) == 1 and "/items/1" in access[0]["event"], access
    assert "/items/1" not in capsys.readouterr().err


def test_flask_hook_waits_for_flask_to_be_imported(tmp_path: Path) -> None:
    """init() does not import Flask; an app created after a later import is traced all the same."""
    code = textwrap.dedent("""
        import io, sys
        import obskit
        tel = obskit.init(service_name="late", log_stream=io.StringIO(), integrations=["flask"])
        assert "flask" in tel.integrations and "flask" not in sys.modules, tel.integrations
        from flask import Flask
        app = Flask("late")
        app.get("/x/<name>")(lambda name: name)
        from werkzeug.test import Client
        assert Client(app).get("/x/y").status_code == 200
        from obskit.integrations import _flask_hook
        assert _flask_hook._original is not None
        print("ok")
    """)
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


FLASK_APP = textwrap.dedent(
    """
    import logging

    from flask import Flask

    import obskit

    app = Flask("shop")
    obskit.init(service_name="shop")  # no wrapping


    @app.get("/items/<int:item_id>")
    def item(item_id):
        logging.getLogger("shop.views").info("loading item %d", item_id)
        return {"id": item_id}


    @app.get("/boom")
    def boom():
        raise ZeroDivisionError("boom")


    @app.get("/healthz")
    def health():
        return "ok"
    """
)


def test_flask_under_gunicorn_two_sync_workers(tmp_path: Path) -> None:
    """gunicorn -w 2 (sync): N requests counted N on one scrape of the master's /metrics, under the rule;
    the failure under 500 with error_type; no raw path; every span reaches the collector."""
    pytest.importorskip("gunicorn")
    (tmp_path / "app.py").write_text(FLASK_APP)
    port, metrics_port = free_port(), free_port()
    with OTLPReceiver("http") as receiver:
        env = app_env(receiver, tmp_path, OBSKIT_METRICS_PORT=str(metrics_port))
        server = WebApp([str(BIN / "gunicorn"), "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}",
                         "-c", "python:obskit.integrations.gunicorn", "app:app"], tmp_path, env, port,
                        metrics_port=metrics_port)
        try:
            assert [server.get(f"/items/{i}") for i in range(N)] == [200] * N
            assert server.get("/boom") == 500
            found = server.scrape()
        finally:
            server.stop()
        assert receiver.wait_for(lambda rx: len(rx.spans()) >= N + 1, timeout=15)
        received = trace_ids(receiver)
    assert count(found, http_route="/items/<int:item_id>", http_response_status_code="200") == N, found
    assert count(found, http_route="/boom", http_response_status_code="500",
                 error_type="ZeroDivisionError") == 1
    assert {lb.get("http_route") for lb in series_labels(found)} == {"/items/<int:item_id>", "/boom"}
    assert sorted({s.name for s in receiver.spans()}) == ["GET /boom", "GET /items/<int:item_id>"]
    errors = [e for e in server.logs() if e.get("level") == "error" and e.get("logger") == "shop"]
    assert len(errors) == 1 and errors[0]["trace_id"] in received, errors
    lines = [e for e in server.logs() if e.get("event", "").startswith("loading item")]
    assert len(lines) == N and {e["trace_id"] for e in lines} <= received
