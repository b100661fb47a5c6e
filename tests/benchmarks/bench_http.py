"""HTTP throughput of a hello-world app: bare, with obskit, and with the raw OpenTelemetry contrib setup.

FastAPI on uvicorn (1 worker) and Flask under gunicorn (1 sync worker), each loaded by ``wrk`` (Debian's
package) on loopback, one variant after the other in the same run:

- ``bare``: the app alone, the server's defaults (its access lines on);
- ``obskit``: ``obskit.init()`` and nothing else: server span, RED metrics, the access line correlated and
  printed as JSON, spans exported over OTLP/HTTP to a loopback receiver (this process);
- ``contrib``: what a user of OpenTelemetry's own packages writes for the same: ``TracerProvider`` +
  ``BatchSpanProcessor`` + ``OTLPSpanExporter``, ``MeterProvider`` + ``PeriodicExportingMetricReader`` +
  ``OTLPMetricExporter``, ``LoggingInstrumentor`` for correlated lines, and ``FastAPIInstrumentor`` (FastAPI)
  or contrib's WSGI middleware (Flask: ``opentelemetry-instrumentation-flask`` is built on it and has no
  release in the series the other contrib packages here are at).

Every figure is requests/s from one wrk run; the ratios are against ``bare`` of the same run. Beside each
instrumented figure: spans delivered to the receiver / requests served, the SERVER spans counted once the
server has shut down (so what was still queued is either delivered or lost, not pending). "Served" is wrk's
count of completed responses plus the warm-up request: the up to ``connections`` requests still in flight
when wrk stops are served (and traced) but not counted, so a fraction can exceed 100% by that much. Servers
are stopped with SIGTERM, as a deployment stops them: uvicorn then ends the process with the default SIGTERM
handler, past ``atexit``, so the contrib setup loses what its batch processor still held (obskit flushes
when uvicorn's shutdown returns); a short run can show it delivering nothing.
Run: ``python tests/benchmarks/bench_http.py [seconds] [connections] [rounds]``. Targets: obskit >= 0.75x
bare req/s, and server CPU per request (every process of the server: master and workers) <= 0.5x contrib's.
"""

from __future__ import annotations

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
import time
import urllib.request
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
}
FLASK_ROUTE = """

    @app.get("/hello/<name>")
    def hello(name):
        return {"hello": name}
    """

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


_WRK = re.compile(r"(\d+) requests in .*?Requests/sec:\s+([\d.]+)", re.S)


def _wrk(url: str, seconds: float, connections: int) -> tuple[int, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian package 'wrk')")
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    match = _WRK.search(out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output: {out}")
    return int(match.group(1)), float(match.group(2))


_TICK = os.sysconf("SC_CLK_TCK")


def _session_cpu(sid: int) -> float:
    """CPU seconds (user + system) of every live process in session ``sid``: the server and its workers."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is fields[0]
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def _server_spans(rx: OTLPReceiver, service: str) -> int:
    return sum(1 for r in rx.requests("traces") for rs in r.resource_spans
               if attributes(rs.resource.attributes).get("service.name") == service
               for ss in rs.scope_spans for s in ss.spans if s.kind == 2)  # OTLP SPAN_KIND_SERVER


def _measure(framework: str, variant: str, rx: OTLPReceiver, seconds: float,
             connections: int) -> dict[str, float]:
    sources, route = (FASTAPI, FASTAPI_ROUTE) if framework == "fastapi" else (FLASK, FLASK_ROUTE)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        cwd = Path(tmp)
        (cwd / "app.py").write_text(textwrap.dedent(sources[variant]) + textwrap.dedent(route))
        (cwd / "contrib_setup.py").write_text(CONTRIB_SETUP)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
        env.update(PYTHONPATH=str(cwd), OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                   OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OBSKIT_LOG_FORMAT="json",
                   OTEL_SEMCONV_STABILITY_OPT_IN="http", OTEL_METRIC_EXPORT_INTERVAL="5000")
        if framework == "fastapi":
            cmd = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", "1"]
        else:
            cmd = [str(BIN / "gunicorn"), "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{port}",
                   "--access-logfile", "-", "app:app"]
        with open(os.devnull, "wb") as sink:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=sink, stderr=sink, start_new_session=True)
            try:
                _wait_up(f"http://127.0.0.1:{port}/hello/warm", proc)
                cpu = _session_cpu(proc.pid)
                served, rps = _wrk(f"http://127.0.0.1:{port}/hello/world", seconds, connections)
                cpu = _session_cpu(proc.pid) - cpu
            finally:
                proc.send_signal(signal.SIGTERM)  # both servers stop gracefully on it; obskit flushes
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    service = f"bench-{framework}-{variant}"
    time.sleep(0.5)  # the last export request, sent as the server exited, is being decoded
    return {"rps": rps, "served": float(served + 1), "delivered": float(_server_spans(rx, service)),
            "cpu_us": 1e6 * cpu / max(served, 1)}


VARIANTS = ("bare", "obskit", "contrib")


def run(seconds: float = 10.0, connections: int = 32, rounds: int = 1) -> dict[str, float]:
    """For each framework: every variant's requests/s and server CPU per request (medians over ``rounds``,
    the variants' order rotated each round so that a drift in the machine's load hits each alike), the
    ratios to bare, and spans delivered/served summed over the rounds."""
    out: dict[str, float] = {}
    with OTLPReceiver("http") as rx:
        for framework in ("fastapi", "flask"):
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
            seen = dict.fromkeys(VARIANTS, 0.0)
            for r in range(rounds):
                for variant in VARIANTS[r % 3:] + VARIANTS[:r % 3]:
                    figures = _measure(framework, variant, rx, seconds, connections)
                    total = figures["delivered"]
                    figures["delivered"], seen[variant] = total - seen[variant], total
                    runs[variant].append(figures)
            got = {v: {k: statistics.median(f[k] for f in runs[v]) for k in ("rps", "cpu_us")}
                   | {k: sum(f[k] for f in runs[v]) for k in ("served", "delivered")} for v in VARIANTS}
            for variant, figures in got.items():
                out[f"{framework}_{variant}_rps"] = figures["rps"]
                out[f"{framework}_{variant}_cpu_us"] = figures["cpu_us"]
            for variant in ("obskit", "contrib"):
                out[f"{framework}_{variant}_ratio"] = got[variant]["rps"] / got["bare"]["rps"]
                out[f"{framework}_{variant}_cpu_ratio"] = got[variant]["cpu_us"] / got["bare"]["cpu_us"]
                out[f"{framework}_{variant}_served"] = got[variant]["served"]
                out[f"{framework}_{variant}_delivered"] = got[variant]["delivered"]
                out[f"{framework}_{variant}_delivered_fraction"] = (got[variant]["delivered"]
                                                                    / got[variant]["served"])
            out[f"{framework}_obskit_cpu_vs_contrib"] = got["obskit"]["cpu_us"] / got["contrib"]["cpu_us"]
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 10.0
    connections = int(args[1]) if len(args) > 1 else 32
    rounds = int(args[2]) if len(args) > 2 else 3
    r: dict[str, Any] = run(seconds, connections, rounds)
    print(f"wrk -t1 -c{connections} -d{seconds:g}s on loopback; 1 worker each; medians of {rounds} rounds, "
          "variants interleaved")
    print(f"{'app':<34}{'req/s':>8}{'x bare':>8}{'CPU us/req':>12}{'x bare':>8}   spans delivered/served")
    for framework, label in (("fastapi", "FastAPI on uvicorn"), ("flask", "Flask under gunicorn")):
        print(f"{label + ', bare':<34}{r[f'{framework}_bare_rps']:>8.0f}{1.0:>8.2f}"
              f"{r[f'{framework}_bare_cpu_us']:>12.0f}{1.0:>8.2f}   -")
        for variant, name in (("obskit", "obskit"), ("contrib", "OTel contrib")):
            delivered = int(r[f"{framework}_{variant}_delivered"])
            served = int(r[f"{framework}_{variant}_served"])
            print(f"{label + ', ' + name:<34}{r[f'{framework}_{variant}_rps']:>8.0f}"
                  f"{r[f'{framework}_{variant}_ratio']:>8.2f}{r[f'{framework}_{variant}_cpu_us']:>12.0f}"
                  f"{r[f'{framework}_{variant}_cpu_ratio']:>8.2f}   {delivered}/{served} "
                  f"({r[f'{framework}_{variant}_delivered_fraction']:.0%})")
        print(f"{label}: obskit CPU per request / contrib's: {r[f'{framework}_obskit_cpu_vs_contrib']:.2f}")
    print("Targets: obskit >= 0.75x bare req/s; CPU per request <= 0.5x contrib's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
