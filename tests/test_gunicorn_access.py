"""gunicorn writes its access line after the WSGI app returned and the request's span ended; it must still
carry that request's trace_id and span_id (issue 8, defect 10), as uvicorn's does, with no config file."""

from __future__ import annotations

import os
import secrets
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from served import Served, free_port

from obskit.testing import capture

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import obskit
    from obskit.integrations.wsgi import ObskitWSGIMiddleware

    obskit.init(log_format="json", service_name="guni", integrations="none", otlp_endpoint=None)
    log = obskit.get_logger("app")


    def inner(environ, start_response):
        log.info("handling", path=environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


    app = ObskitWSGIMiddleware(inner)
    """
)


@pytest.mark.parametrize("extra", [[], ["--preload"], ["-k", "gthread", "--threads", "4"],
                                   ["-c", "python:obskit.integrations.gunicorn"]],
                         ids=["sync", "sync-preload", "gthread", "with-obskit-config"])
def test_gunicorn_access_line_carries_its_requests_trace(tmp_path: Path, extra: list[str]) -> None:
    """Each gunicorn access line has the trace_id and span_id of its own request's server span."""
    (tmp_path / "app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", *extra, "--no-control-socket", "-w", "2",
           "-b", f"127.0.0.1:{port}", "--access-logfile", "-", "app:app"]
    server = Served(cmd, tmp_path, env, port)
    sent = {f"/r{i}": secrets.token_hex(16) for i in range(12)}
    try:
        server.wait_for_lines("Booting worker", 2)  # a SIGTERM to a worker still booting is lost
        with ThreadPoolExecutor(4) as pool:  # concurrent requests: no line may take another's ids
            list(pool.map(lambda p: server.get(p, {"traceparent": f"00-{sent[p]}-{secrets.token_hex(8)}-01"}),
                          sent))
        server.terminate()
    finally:
        server.kill()
    lines = server.json_lines()
    handling = {e["path"]: e for e in lines if e["event"] == "handling"}
    access = {e["event"].split('"')[1].split()[1]: e for e in lines if e["logger"] == "gunicorn.access"}
    assert sorted(access) == sorted(sent), server.output()
    for path, trace_id in sent.items():
        assert access[path]["trace_id"] == trace_id == handling[path]["trace_id"], access[path]
        assert access[path]["span_id"] == handling[path]["span_id"], access[path]


@pytest.fixture
def patched() -> Iterator[Any]:
    """obskit initialised in-process with the gunicorn patches installed, reset afterwards."""
    pytest.importorskip("gunicorn")
    import gunicorn.glogging
    import gunicorn.http.wsgi

    with capture() as cap:
        yield cap
    assert not hasattr(gunicorn.http.wsgi.Response.start_response, "__obskit_hooks__")
    assert not hasattr(gunicorn.glogging.Logger.access, "__obskit_hooks__")


def test_gunicorn_patches_are_installed_by_init_and_removed_by_reset(patched: Any) -> None:
    """init() patches gunicorn's Response.start_response and Logger.access; reset() puts them back."""
    import gunicorn.glogging
    import gunicorn.http.wsgi

    assert hasattr(gunicorn.http.wsgi.Response.start_response, "__obskit_hooks__")
    assert hasattr(gunicorn.glogging.Logger.access, "__obskit_hooks__")


def test_default_access_line_is_gunicorns_own() -> None:
    """For gunicorn's default access format obskit builds only the atoms that are not headers or environ
    entries: the line, and every atom the format and obskit's excluded-paths filter read, are what
    gunicorn's own ``Logger.access`` gives; a custom format still goes through gunicorn's."""
    import datetime
    import logging

    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from obskit.integrations import gunicorn as hooks

    class Resp:
        status, sent, headers = "200 OK", 17, [("Content-Type", "application/json")]

    class Req:
        headers = [("HOST", "example"), ("USER-AGENT", 'wrk "quoted"')]

    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "GET", "RAW_URI": "/a/b?c=1",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/a/b", "QUERY_STRING": "c=1",
               "HTTP_USER_AGENT": 'wrk "quoted"', "HTTP_REFERER": "http://ref/",
               "HTTP_AUTHORIZATION": "Basic dXNlcjpwdw=="}
    took = datetime.timedelta(seconds=1, microseconds=2345)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    cfg = Config()
    cfg.set("accesslog", "-")
    logger = Logger(cfg)
    logger.now = lambda: "[01/Dec/2026:00:00:00 +0000]"  # type: ignore[method-assign]
    logger.access_log.addHandler(Keep())
    logger.access_log.propagate = False
    assert hooks._default_format_only(logger)
    Logger.access(logger, Resp(), Req(), environ, took)
    hooks._default_access(logger, Resp(), Req(), environ, took)
    theirs, ours = records
    assert ours.getMessage() == theirs.getMessage()
    assert '"GET /a/b?c=1 HTTP/1.1" 200 17 "http://ref/" "wrk \\"quoted\\""' in ours.getMessage()
    for atom in ("h", "l", "u", "t", "r", "s", "b", "f", "a", "U", "m", "q", "H", "B", "T", "D", "M", "L"):
        assert ours.args[atom] == theirs.args[atom], atom  # type: ignore[index,call-overload]
    cfg.set("access_log_format", '%(h)s "%({user-agent}i)s"')
    assert not hooks._default_format_only(logger)
