"""Django by ``init()`` alone, under ``runserver`` and gunicorn, with ``init()`` in ``manage.py``, ``wsgi.py``
or the settings, DEBUG on and off.

Each run: N requests counted N under the route template on one scrape, the failing view under 500 with
``error_type``, the exemplar a trace the collector received, no raw path; the view's unhandled exception is
ONE line (``django.request``, structured exception, the request's trace_id), never Django's plain-text
traceback; ``runserver``'s access lines are obskit lines, once, and none for ``/healthz`` at INFO.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from otlp_receiver import OTLPReceiver, attributes
from red_metrics import count, exemplar_trace_ids, series_labels
from red_servers import BIN, WebApp, app_env, free_port, trace_ids

pytest.importorskip("django")
pytest.importorskip("opentelemetry.instrumentation.wsgi")
pytestmark = pytest.mark.slow
N = 6

PROJECT = {
    "settings.py": """
        import os

        SECRET_KEY = "not-a-secret"
        DEBUG = os.environ["APP_DEBUG"] == "1"
        ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
        ROOT_URLCONF = "urls"
        INSTALLED_APPS = []
        MIDDLEWARE = []
        DATABASES = {}
        USE_TZ = True
        if os.environ["INIT_IN"] == "settings":
            import obskit
            obskit.init(service_name="shop")
        """,
    "urls.py": """
        import logging

        from django.http import HttpResponse, JsonResponse
        from django.urls import path


        def item(request, pk):
            logging.getLogger("shop.views").info("loading item %d", pk)
            return JsonResponse({"id": pk})


        def boom(request):
            raise ZeroDivisionError("boom")


        def health(request):
            return HttpResponse("ok")


        urlpatterns = [path("items/<int:pk>", item), path("boom", boom), path("healthz", health)]
        """,
    "wsgi.py": """
        import os

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
        if os.environ["INIT_IN"] == "wsgi":
            import obskit
            obskit.init(service_name="shop")
        from django.core.wsgi import get_wsgi_application

        application = get_wsgi_application()
        """,
    "manage.py": """
        import os
        import sys

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
        if os.environ["INIT_IN"] == "manage":
            import obskit
            obskit.init(service_name="shop")
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
        """,
}

CASES = [  # (server, where init() is called, DEBUG)
    ("runserver", "manage", "0"),
    ("runserver", "settings", "1"),
    ("gunicorn", "wsgi", "0"),
    ("gunicorn", "settings", "1"),
]


@pytest.mark.parametrize(("server", "init_in", "debug"), CASES,
                         ids=[f"{s}-init-in-{i}-debug-{d}" for s, i, d in CASES])
def test_django_by_init_alone(tmp_path: Path, server: str, init_in: str, debug: str) -> None:
    """RED series, route-named spans, one correlated error line, Django's loggers once."""
    for name, source in PROJECT.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    port, metrics_port = free_port(), free_port()
    if server == "runserver":
        cmd = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    else:
        pytest.importorskip("gunicorn")
        cmd = [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "wsgi:application"]
    with OTLPReceiver("http") as receiver:
        env = app_env(receiver, tmp_path, OBSKIT_METRICS_PORT=str(metrics_port), INIT_IN=init_in,
                      APP_DEBUG=debug)
        app = WebApp(cmd, tmp_path, env, port, metrics_port=metrics_port)
        try:
            assert [app.get(f"/items/{i}") for i in range(N)] == [200] * N
            assert app.get("/boom") == 500
            assert app.get("/healthz") == 200
            found = app.scrape()
            exemplars = exemplar_trace_ids(found)
            assert receiver.wait_for(lambda rx: exemplars <= trace_ids(rx), timeout=15)
        finally:
            app.stop()
        assert receiver.wait_for(lambda rx: len(rx.spans()) >= N + 1, timeout=15)
        received = trace_ids(receiver)
    assert count(found, http_route="items/<int:pk>", http_request_method="GET",
                 http_response_status_code="200") == N, found
    assert count(found, http_route="boom", http_response_status_code="500",
                 error_type="ZeroDivisionError") == 1
    assert {lb.get("http_route") for lb in series_labels(found)} == {"items/<int:pk>", "boom"}
    assert exemplars and exemplars <= received
    spans = receiver.spans()
    assert sorted({s.name for s in spans}) == ["GET boom", "GET items/<int:pk>"]
    assert "/healthz" not in {attributes(s.attributes).get("url.path") for s in spans}

    logs = app.logs()
    errors = [e for e in logs if e.get("logger") == "django.request"]
    assert len(errors) == 1, errors
    assert errors[0]["level"] == "error" and errors[0]["trace_id"] in received
    assert "ZeroDivisionError" in json.dumps(errors[0]) and "Traceback" not in errors[0]["event"]
    assert "Traceback" not in app.stderr and "Internal Server Error" not in app.stderr, app.stderr
    lines = [e for e in logs if str(e.get("event", "")).startswith("loading item")]
    assert len(lines) == N and {e["trace_id"] for e in lines} <= received
    if server == "runserver":
        access = [e for e in logs if e.get("logger") == "django.server"]
        paths = sorted(e["event"].split()[1] for e in access)
        assert paths == sorted([f"/items/{i}" for i in range(N)] + ["/boom"]), access
        assert '"GET /items/' not in app.stderr, app.stderr


def test_management_command_lines_print_once(tmp_path: Path) -> None:
    """init() in manage.py, DEBUG on: a line Django's loggers write outside any request (a management
    command) is one obskit line, not also Django's console copy (its logging config is taken back)."""
    import subprocess

    for name, source in PROJECT.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    with OTLPReceiver("http") as receiver:
        env = app_env(receiver, tmp_path, INIT_IN="manage", APP_DEBUG="1")
        code = "import logging; logging.getLogger('django.request').warning('slow request')"
        proc = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [(e["logger"], e["event"]) for e in lines if e["event"] == "slow request"] == [
        ("django.request", "slow request")], proc.stdout
    assert "slow request" not in proc.stderr, proc.stderr
