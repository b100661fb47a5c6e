"""HTTP throughput of a hello-world app: bare, with obskit, and with the raw OpenTelemetry contrib setup.

FastAPI on uvicorn (1 worker), Flask under gunicorn (``-w 2``, sync workers) and Django under gunicorn
(``-w 2``, sync workers; a one-file project: ``settings.configure()`` in the module, which is its own
``ROOT_URLCONF``, one route, ``application = get_wsgi_application()``), each loaded by ``wrk`` (Debian's
package) on loopback, one variant after the other in the same run:

- ``bare``: the app alone, the server's defaults (its access lines on);
- ``obskit``: ``obskit.init()`` and nothing else (for Django in the module, before
  ``get_wsgi_application()``): server span, RED metrics, the access line correlated and printed as JSON,
  spans exported over OTLP/HTTP to a loopback receiver (this process);
- ``contrib``: what a user of OpenTelemetry's own packages writes for the same: ``TracerProvider`` +
  ``BatchSpanProcessor`` + ``OTLPSpanExporter``, ``MeterProvider`` + ``PeriodicExportingMetricReader`` +
  ``OTLPMetricExporter``, ``LoggingInstrumentor`` for correlated lines, and ``FastAPIInstrumentor`` (FastAPI)
  or contrib's WSGI middleware (Flask: ``opentelemetry-instrumentation-flask`` is built on it and has no
  release in the series the other contrib packages here are at). For FastAPI the instrumentor's ASGI
  receive and send spans are left out (``exclude_spans``): one span per request, as obskit makes. Django:
  ``DjangoInstrumentor().instrument()`` before ``get_wsgi_application()`` when
  ``opentelemetry-instrumentation-django`` is installed and requires the ``opentelemetry-*`` versions
  installed, else the WSGI middleware around ``application``, as for Flask (:func:`django_instrumentor`
  decides; the run prints which);
- ``contrib_default`` (FastAPI only): the same with ``FastAPIInstrumentor.instrument_app(app)`` as a user
  writes it, no option: a receive and a send span beside the server span, 3 spans per request (what
  issue 12's table measured as the raw contrib setup). Flask's and Django's contrib make one span anyway.

Peers, each only when its package is importable (``pip install -e '.[bench]'``; else reported absent), set
up the way its documentation shows for the framework and pointed at a loopback receiver, so it really sends:

- ``logfire``: ``logfire.configure(service_name=..., send_to_logfire=False)`` with
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` (it then adds OTLP span, metric and log exporters) and
  ``logfire.instrument_fastapi(app)``; for Flask ``logfire.instrument_wsgi`` (``instrument_flask`` needs
  ``opentelemetry-instrumentation-flask``, whose only release pins an older instrumentation core than the
  one installed); for Django ``logfire.instrument_django()`` where contrib uses ``DjangoInstrumentor`` (it is
  built on it), else ``logfire.instrument_wsgi`` around ``application``; its console output left on, as by
  default;
- ``sentry``: ``sentry_sdk.init(dsn=..., traces_sample_rate=1.0)`` before the app (its FastAPI/Flask/Django
  integrations switch on by themselves), the DSN naming a loopback HTTP server (:class:`SentryReceiver`)
  that accepts envelopes and counts the transactions in them;
- ``ddtrace``: the server started under ``ddtrace-run`` with ``DD_SERVICE`` and ``OTEL_TRACES_EXPORTER=otlp``
  (ddtrace's own OTLP/HTTP trace export, to the same receiver as the others; no Datadog agent runs).

Every figure is requests/s from one wrk run; the ratios are against ``bare`` of the same run. The load
starts once every worker has booted (the session has all its processes and is idle), so no worker's
start-up is counted in its CPU. Beside each instrumented figure: spans delivered to the receiver / requests
served, the SERVER spans counted once the server has shut down (so what was still queued is either
delivered or lost, not pending); under gunicorn each worker exports its own, all under the variant's
service name. "Served" is wrk's count of completed responses plus the warm-up request: the up to
``connections`` requests still in flight when wrk stops are served (and traced) but not counted, so a
fraction can exceed 100% by that much. Servers are stopped with SIGTERM, as a deployment stops them:
uvicorn then ends the process with the default SIGTERM handler, past ``atexit``, so the contrib setup loses
what its batch processor still held (obskit flushes when uvicorn's shutdown returns); a short run can show
it delivering nothing. gunicorn's master passes SIGTERM on to its workers, which finish their request and
leave through ``sys.exit``: ``atexit`` runs there, and each worker's exporters flush (obskit's and
contrib's alike).
Beside each: p99 latency (``wrk --latency``), and for the peers obskit's CPU per request over theirs.
Run: ``python tests/benchmarks/bench_http.py [seconds] [connections] [rounds] [--no-peers]``.
Targets: obskit >= 0.75x bare req/s, and server CPU per request (every process of the server: master and
workers) <= 0.5x contrib's (reported over both FastAPI contrib variants). Where the bare app's own CPU per
request is above half of contrib's (Flask and Django under gunicorn: 0.50-0.58x here), no instrumented
variant can meet that ratio, so the run also prints the CPU each variant adds to bare's, obskit's over
contrib's.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))

from otlp_receiver import OTLPReceiver, attributes

BIN = Path(sys.executable).parent

FASTAPI = {
    "bare": """
        from fastapi import FastAPI
        app = FastAPI()
        """,
    "obskit": """
        from fastapi import FastAPI
        import obskit
        app = FastAPI()
        obskit.init(service_name="bench-fastapi-obskit")
        """,
    "contrib": """
        from fastapi import FastAPI
        from contrib_setup import setup
        app = FastAPI()
        setup("bench-fastapi-contrib")
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        FastAPIInstrumentor.instrument_app(app, exclude_spans=["receive", "send"])
        """,
    "contrib_default": """
        from fastapi import FastAPI
        from contrib_setup import setup
        app = FastAPI()
        setup("bench-fastapi-contrib_default")
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        FastAPIInstrumentor.instrument_app(app)
        """,
    "logfire": """
        from fastapi import FastAPI
        import logfire
        app = FastAPI()
        logfire.configure(service_name="bench-fastapi-logfire", send_to_logfire=False)
        logfire.instrument_fastapi(app)
        """,
    "sentry": """
        import os
        import sentry_sdk
        sentry_sdk.init(dsn=os.environ["BENCH_SENTRY_DSN"], traces_sample_rate=1.0)
        from fastapi import FastAPI
        app = FastAPI()
        """,
    "ddtrace": """
        from fastapi import FastAPI
        app = FastAPI()
        """,  # instrumented by ddtrace-run (RUNNERS)
}
FASTAPI_ROUTE = """

    @app.get("/hello/{name}")
    async def hello(name: str) -> dict:
        return {"hello": name}
    """

FLASK = {
    "bare": """
        from flask import Flask
        app = Flask("bench")
        """,
    "obskit": """
        from flask import Flask
        import obskit
        app = Flask("bench")
        obskit.init(service_name="bench-flask-obskit")
        """,
    "contrib": """
        from flask import Flask
        from contrib_setup import setup
        app = Flask("bench")
        setup("bench-flask-contrib")
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
        app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)
        """,
    "logfire": """
        from flask import Flask
        import logfire
        app = Flask("bench")
        logfire.configure(service_name="bench-flask-logfire", send_to_logfire=False)
        app.wsgi_app = logfire.instrument_wsgi(app.wsgi_app)
        """,
    "sentry": """
        import os
        import sentry_sdk
        sentry_sdk.init(dsn=os.environ["BENCH_SENTRY_DSN"], traces_sample_rate=1.0)
        from flask import Flask
        app = Flask("bench")
        """,
    "ddtrace": """
        from flask import Flask
        app = Flask("bench")
        """,  # instrumented by ddtrace-run (RUNNERS)
}
FLASK_ROUTE = """

    @app.get("/hello/<name>")
    def hello(name):
        return {"hello": name}
    """

# Django: a one-file project. Every variant starts with DJANGO_SETTINGS and ends with DJANGO_ROUTE; the
# URLconf (this module) is read at the first request, so its patterns may follow ``application``.
DJANGO_SETTINGS = """
    from django.conf import settings
    settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="bench", DEBUG=False)
    """
DJANGO = {
    "bare": """
        from django.core.wsgi import get_wsgi_application
        application = get_wsgi_application()
        """,
    "obskit": """
        import obskit
        obskit.init(service_name="bench-django-obskit")
        from django.core.wsgi import get_wsgi_application
        application = get_wsgi_application()
        """,
    "contrib": """
        from contrib_setup import setup
        setup("bench-django-contrib")
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        DjangoInstrumentor().instrument()
        from django.core.wsgi import get_wsgi_application
        application = get_wsgi_application()
        """,
    "logfire": """
        import logfire
        logfire.configure(service_name="bench-django-logfire", send_to_logfire=False)
        logfire.instrument_django()
        from django.core.wsgi import get_wsgi_application
        application = get_wsgi_application()
        """,
    "sentry": """
        import os
        import sentry_sdk
        sentry_sdk.init(dsn=os.environ["BENCH_SENTRY_DSN"], traces_sample_rate=1.0)
        from django.core.wsgi import get_wsgi_application
        application = get_wsgi_application()
        """,
    "ddtrace": """
        from django.core.wsgi import get_wsgi_application
        application = get_wsgi_application()
        """,  # instrumented by ddtrace-run (RUNNERS)
}
# Without a usable opentelemetry-instrumentation-django (see django_instrumentor()): the WSGI middleware
# around the application, as for Flask.
DJANGO_WSGI = {
    "contrib": """
        from contrib_setup import setup
        setup("bench-django-contrib")
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
        from django.core.wsgi import get_wsgi_application
        application = OpenTelemetryMiddleware(get_wsgi_application())
        """,
    "logfire": """
        import logfire
        logfire.configure(service_name="bench-django-logfire", send_to_logfire=False)
        from django.core.wsgi import get_wsgi_application
        application = logfire.instrument_wsgi(get_wsgi_application())
        """,
}
DJANGO_ROUTE = """

    from django.http import JsonResponse
    from django.urls import path


    def hello(request, name):
        return JsonResponse({"hello": name})


    urlpatterns = [path("hello/<str:name>", hello)]
    """


def django_instrumentor() -> str:
    """Why contrib's Django app cannot use ``DjangoInstrumentor`` here, or "" when it can: the package is
    installed and every ``opentelemetry-*`` package it requires is installed at a version it accepts (its
    releases pin the instrumentation core exactly; pip would move every other instrumentation to match)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        dist = metadata.distribution("opentelemetry-instrumentation-django")
    except metadata.PackageNotFoundError:
        return "opentelemetry-instrumentation-django is not installed"
    if importlib.util.find_spec("opentelemetry.instrumentation.django") is None:
        return "opentelemetry.instrumentation.django is not importable"
    for line in dist.requires or ():
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's (its "instruments": Django itself)
        if not requirement.name.startswith("opentelemetry-"):
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            return f"opentelemetry-instrumentation-django {dist.version} needs {requirement}, not installed"
        if not requirement.specifier.contains(version, prereleases=True):
            return (f"opentelemetry-instrumentation-django {dist.version} needs {requirement}, "
                    f"{version} is installed")
    return ""


def django_contrib() -> str:
    """What contrib's Django app instruments itself with here, and why, for the output."""
    why = django_instrumentor()
    return "WSGI middleware (" + why + ")" if why else "DjangoInstrumentor"


def _sources(framework: str) -> tuple[str, dict[str, str], str]:
    """(code before every variant's, each variant's code, the route after it) of ``framework``'s app."""
    if framework == "fastapi":
        return "", FASTAPI, FASTAPI_ROUTE
    if framework == "flask":
        return "", FLASK, FLASK_ROUTE
    return DJANGO_SETTINGS, DJANGO | (DJANGO_WSGI if django_instrumentor() else {}), DJANGO_ROUTE


CONTRIB_SETUP = """
import logging

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def setup(service):
    resource = Resource.create({"service.name": service})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[
        PeriodicExportingMetricReader(OTLPMetricExporter())]))
    LoggingInstrumentor().instrument(set_logging_format=True)  # trace ids in every line's format
    for name in ("uvicorn.access", "gunicorn.access", "gunicorn.error"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(logging.Formatter(logging.root.handlers[0].formatter._fmt))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                resp.read()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not come up")


def _wait_booted(sid: int, processes: int, timeout: float = 30) -> None:
    """Wait until session ``sid`` has ``processes`` processes and has used at most a clock tick of CPU over
    a quarter of a second: with two sync workers the first request answered may come from one while the
    other is still importing the app, and that start-up is no request's CPU. Gives up quietly after
    ``timeout`` (a machine too loaded to go idle)."""
    deadline = time.monotonic() + timeout
    last = _session_cpu(sid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        cpu = _session_cpu(sid)
        if len(session_pids(sid)) >= processes and cpu - last <= 1 / _TICK:
            return
        last = cpu


_WRK = re.compile(r"(\d+) requests in .*?Requests/sec:\s+([\d.]+)", re.S)
_P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.M)  # from --latency's distribution
_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(url: str, seconds: float, connections: int) -> tuple[int, float, float]:
    """(responses completed, requests/s, p99 latency in ms) of one wrk run."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian package 'wrk')")
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    match, p99 = _WRK.search(out), _P99.search(out)
    if match is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output: {out}")
    return int(match.group(1)), float(match.group(2)), float(p99.group(1)) * _MS[p99.group(2)]


_TICK = os.sysconf("SC_CLK_TCK")


def session_pids(sid: int) -> list[int]:
    """Every live process in session ``sid``: a server started with ``start_new_session`` and its workers."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is fields[0]
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            pids.append(int(entry.name))
    return pids


def _session_cpu(sid: int) -> float:
    """CPU seconds (user + system) of every live process in session ``sid``: the server and its workers."""
    total = 0
    for pid in session_pids(sid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def _server_spans(rx: OTLPReceiver, service: str) -> int:
    return sum(1 for r in rx.requests("traces") for rs in r.resource_spans
               if attributes(rs.resource.attributes).get("service.name") == service
               for ss in rs.scope_spans for s in ss.spans if s.kind == 2)  # OTLP SPAN_KIND_SERVER


def envelope_items(body: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(item header, payload) of each item of a Sentry envelope: a header line, then per item a header line
    and a payload of ``length`` bytes (or up to the next newline when the header gives no length)."""
    pos = body.find(b"\n") + 1
    while 0 < pos < len(body):
        end = body.find(b"\n", pos)
        end = len(body) if end < 0 else end
        line, pos = body[pos:end], end + 1
        if not line.strip():
            continue
        header = json.loads(line)
        length = header.get("length")
        if length is None:
            end = body.find(b"\n", pos)
            end = len(body) if end < 0 else end
            payload, pos = body[pos:end], end + 1
        else:
            payload, pos = body[pos:pos + int(length)], pos + int(length) + 1
        yield header, payload


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-request (a server stopped while its SDK sends) is no error here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SentryReceiver:
    """A loopback Sentry: accepts envelopes at ``/api/<project>/envelope/`` and counts their transactions
    per project (one project per app, so that each variant's deliveries are told apart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transactions: dict[str, int] = {}
        self.arrivals: list[float] = []  # time.monotonic() of each envelope received
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    def __enter__(self) -> SentryReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body waits for the client's delayed
            # ACK (40 ms), and a client that sends one envelope at a time would be held to 25 a second.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                project = self.path.strip("/").split("/")[1] if self.path.startswith("/api/") else ""
                found = sum(1 for header, _ in envelope_items(body) if header.get("type") == "transaction")
                with receiver._lock:
                    receiver._transactions[project] = receiver._transactions.get(project, 0) + found
                    receiver.arrivals.append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _QuietServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="sentry-receiver", daemon=True).start()
        self._server = server
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def dsn(self, project: int) -> str:
        return f"http://bench@127.0.0.1:{self.port}/{project}"

    def transactions(self, project: int) -> int:
        with self._lock:
            return self._transactions.get(str(project), 0)


VARIANTS = ("bare", "obskit", "contrib")
# FastAPI's instrumentor as a user gets it, with no option: an ASGI receive and a send span beside the server
# span (3 spans per request), which is what issue 12 measured as "raw contrib"; ``contrib`` leaves them out
# (exclude_spans), the same one span per request as obskit.
EXTRA_VARIANTS = {"fastapi": ("contrib_default",)}
PEERS = ("logfire", "sentry", "ddtrace")
PEER_MODULES = {"logfire": "logfire", "sentry": "sentry_sdk", "ddtrace": "ddtrace"}
SENTRY_PROJECT = {"fastapi": 1, "flask": 2, "django": 3}
FRAMEWORKS = ("fastapi", "flask", "django")
WORKERS = {"fastapi": 1, "flask": 2, "django": 2}  # uvicorn's; gunicorn's sync workers
LABELS = {"fastapi": "FastAPI on uvicorn", "flask": "Flask under gunicorn", "django": "Django under gunicorn"}


def installed(peer: str) -> bool:
    """Whether ``peer``'s package can be imported here (``pip install -e '.[bench]'`` brings all three)."""
    return importlib.util.find_spec(PEER_MODULES[peer]) is not None


def peer_args(argv: list[str] | None) -> tuple[list[str], bool]:
    """A benchmark's positional arguments, and whether the peers run (``--no-peers`` leaves them out)."""
    args = sys.argv[1:] if argv is None else argv
    return [a for a in args if a != "--no-peers"], "--no-peers" not in args


def print_absent(peers: bool) -> None:
    """A line for each peer asked for but not installed."""
    for peer in PEERS if peers else ():
        if not installed(peer):
            print(f"{NAMES[peer]}: absent (pip install -e '.[bench]')")


def _env(endpoint: str) -> dict[str, str]:
    """This process's environment less every telemetry setting, plus the benchmark's OTLP receiver."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_", "DD_", "SENTRY_", "LOGFIRE_"))}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    return env


@contextmanager
def serve(framework: str, variant: str, endpoint: str, *, sentry_dsn: str = "", prelude: str = "",
          extra_env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``variant``'s app of ``framework`` serving on a free loopback port, up (a first request answered), its
    telemetry sent to ``endpoint``; ``prelude`` is code run before the app's own; stopped with SIGTERM."""
    head, sources, route = _sources(framework)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        cwd = Path(tmp)
        (cwd / "app.py").write_text(textwrap.dedent(prelude) + textwrap.dedent(head)
                                    + textwrap.dedent(sources[variant]) + textwrap.dedent(route))
        (cwd / "contrib_setup.py").write_text(CONTRIB_SETUP)
        port = _free_port()
        env = _env(endpoint)
        env.update(PYTHONPATH=str(cwd), OBSKIT_LOG_FORMAT="json",
                   OTEL_SEMCONV_STABILITY_OPT_IN="http", OTEL_METRIC_EXPORT_INTERVAL="5000")
        runner: list[str] = []
        if variant == "sentry":
            env["BENCH_SENTRY_DSN"] = sentry_dsn
        elif variant == "ddtrace":
            runner = [str(BIN / "ddtrace-run")]
            env.update(DD_SERVICE=f"bench-{framework}-ddtrace", OTEL_TRACES_EXPORTER="otlp")
        if variant != "logfire":
            # The bench extra's logfire registers a Pydantic plugin that every FastAPI app would import (with
            # rich): without it, the other variants run as where logfire is not installed.
            env["PYDANTIC_DISABLE_PLUGINS"] = "logfire-plugin"
        env.update(extra_env or {})
        workers = WORKERS[framework]
        if framework == "fastapi":
            cmd = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers)]
        else:
            cmd = [str(BIN / "gunicorn"), "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{port}",
                   "--access-logfile", "-", "app:application" if framework == "django" else "app:app"]
        with open(os.devnull, "wb") as sink:
            proc = subprocess.Popen(runner + cmd, cwd=cwd, env=env, stdout=sink, stderr=sink,
                                    start_new_session=True)
            try:
                _wait_up(f"http://127.0.0.1:{port}/hello/warm", proc)
                # uvicorn with one worker serves in its own process; gunicorn has a master besides
                _wait_booted(proc.pid, workers + (framework != "fastapi"))
                yield proc, port
            finally:
                proc.send_signal(signal.SIGTERM)  # both servers stop gracefully on it; obskit flushes
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _measure(framework: str, variant: str, rx: OTLPReceiver, sentry: SentryReceiver, seconds: float,
             connections: int) -> dict[str, float]:
    project = SENTRY_PROJECT[framework]
    with serve(framework, variant, rx.endpoint, sentry_dsn=sentry.dsn(project)) as (proc, port):
        cpu = _session_cpu(proc.pid)
        served, rps, p99 = _wrk(f"http://127.0.0.1:{port}/hello/world", seconds, connections)
        cpu = _session_cpu(proc.pid) - cpu
    time.sleep(0.5)  # the last export request, sent as the server exited, is being decoded
    delivered = (sentry.transactions(project) if variant == "sentry"
                 else _server_spans(rx, f"bench-{framework}-{variant}"))
    return {"rps": rps, "served": float(served + 1), "delivered": float(delivered),
            "cpu_us": 1e6 * cpu / max(served, 1), "p99_ms": p99}


def run(seconds: float = 10.0, connections: int = 32, rounds: int = 1, peers: bool = True,
        frameworks: tuple[str, ...] = FRAMEWORKS) -> dict[str, float]:
    """For each of ``frameworks``: every variant's requests/s, server CPU per request and p99 latency
    (medians over ``rounds``, the variants' order rotated each round so that a drift in the machine's load
    hits each alike), the ratios to bare, and spans delivered/served summed over the rounds. ``peers``: also
    the installed peers (logfire, sentry, ddtrace); the absent ones have no figures."""
    out: dict[str, float] = {}
    with OTLPReceiver("http") as rx, SentryReceiver() as sentry:
        for framework in frameworks:
            variants = (VARIANTS + EXTRA_VARIANTS.get(framework, ())
                        + tuple(p for p in PEERS if peers and installed(p)))
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            seen = dict.fromkeys(variants, 0.0)
            for r in range(rounds):
                k = r % len(variants)
                for variant in variants[k:] + variants[:k]:
                    figures = _measure(framework, variant, rx, sentry, seconds, connections)
                    total = figures["delivered"]
                    figures["delivered"], seen[variant] = total - seen[variant], total
                    runs[variant].append(figures)
            got = {v: {k: statistics.median(f[k] for f in runs[v]) for k in ("rps", "cpu_us", "p99_ms")}
                   | {k: sum(f[k] for f in runs[v]) for k in ("served", "delivered")} for v in variants}
            for variant, figures in got.items():
                out[f"{framework}_{variant}_rps"] = figures["rps"]
                out[f"{framework}_{variant}_cpu_us"] = figures["cpu_us"]
                out[f"{framework}_{variant}_p99_ms"] = figures["p99_ms"]
            for variant in variants[1:]:
                out[f"{framework}_{variant}_ratio"] = got[variant]["rps"] / got["bare"]["rps"]
                out[f"{framework}_{variant}_cpu_ratio"] = got[variant]["cpu_us"] / got["bare"]["cpu_us"]
                out[f"{framework}_{variant}_served"] = got[variant]["served"]
                out[f"{framework}_{variant}_delivered"] = got[variant]["delivered"]
                out[f"{framework}_{variant}_delivered_fraction"] = (got[variant]["delivered"]
                                                                    / got[variant]["served"])
            bare_cpu = got["bare"]["cpu_us"]
            for other in variants[2:]:
                out[f"{framework}_obskit_cpu_vs_{other}"] = got["obskit"]["cpu_us"] / got[other]["cpu_us"]
                # what each adds to the bare app's CPU per request (can be <= 0 in a short, noisy run)
                out[f"{framework}_obskit_added_cpu_vs_{other}"] = ((got["obskit"]["cpu_us"] - bare_cpu)
                                                                   / (got[other]["cpu_us"] - bare_cpu))
    return out


NAMES = {"obskit": "obskit", "contrib": "OTel contrib", "contrib_default": "OTel contrib, 3 spans",
         "logfire": "Logfire", "sentry": "sentry-sdk", "ddtrace": "ddtrace"}


def main(argv: list[str] | None = None) -> int:
    args, peers = peer_args(argv)
    seconds = float(args[0]) if args else 10.0
    connections = int(args[1]) if len(args) > 1 else 32
    rounds = int(args[2]) if len(args) > 2 else 3
    r: dict[str, Any] = run(seconds, connections, rounds, peers)
    print(f"wrk -t1 -c{connections} -d{seconds:g}s --latency on loopback; uvicorn 1 worker, gunicorn 2 sync "
          f"workers; medians of {rounds} rounds, variants interleaved")
    print(f"Django contrib: {django_contrib()}")
    print(f"{'app':<44}{'req/s':>8}{'x bare':>8}{'CPU us/req':>12}{'x bare':>8}{'p99 ms':>8}"
          "   delivered/served")
    for framework in FRAMEWORKS:
        label = LABELS[framework]
        print(f"{label + ', bare':<44}{r[f'{framework}_bare_rps']:>8.0f}{1.0:>8.2f}"
              f"{r[f'{framework}_bare_cpu_us']:>12.0f}{1.0:>8.2f}{r[f'{framework}_bare_p99_ms']:>8.1f}   -")
        for variant, name in NAMES.items():
            if f"{framework}_{variant}_rps" not in r:
                continue
            delivered = int(r[f"{framework}_{variant}_delivered"])
            served = int(r[f"{framework}_{variant}_served"])
            print(f"{label + ', ' + name:<44}{r[f'{framework}_{variant}_rps']:>8.0f}"
                  f"{r[f'{framework}_{variant}_ratio']:>8.2f}{r[f'{framework}_{variant}_cpu_us']:>12.0f}"
                  f"{r[f'{framework}_{variant}_cpu_ratio']:>8.2f}{r[f'{framework}_{variant}_p99_ms']:>8.1f}"
                  f"   {delivered}/{served} ({r[f'{framework}_{variant}_delivered_fraction']:.0%})")
        others = [p for p in ("contrib", "contrib_default", *PEERS) if f"{framework}_obskit_cpu_vs_{p}" in r]
        print(f"{label}: obskit CPU per request / " + "; / ".join(
            f"{NAMES[p]}'s: {r[f'{framework}_obskit_cpu_vs_{p}']:.2f}" for p in others))
        print(f"{label}: CPU obskit adds to bare's / what " + "; / what ".join(
            f"{NAMES[p]} adds: {r[f'{framework}_obskit_added_cpu_vs_{p}']:.2f}" for p in others))
    print_absent(peers)
    print("Targets: obskit >= 0.75x bare req/s; CPU per request <= 0.5x contrib's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
