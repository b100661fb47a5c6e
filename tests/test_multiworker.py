"""Multi-worker servers for real: gunicorn (sync, uvicorn workers, --preload) and uvicorn --workers.

Each test writes a tiny app into tmp_path, starts the server on a free loopback port and checks that one
scrape returns the sum over every worker.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import require
from otlp_receiver import OTLPReceiver, attributes
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
N = 60

WSGI_APP = """
import os, time
import obskit
if os.environ.get("APP_INIT"):
    obskit.init(service_name="mw", logs=False, traces=False)
hits = obskit.counter("hits", "Requests handled", labels=["path"])
busy = obskit.gauge("busy", "Requests in progress")
metrics = obskit.metrics_wsgi_app()

def app(environ, start_response):
    if environ["PATH_INFO"] == "/metrics":
        return metrics(environ, start_response)
    busy.inc()
    hits.inc(path="/work")
    time.sleep(0.02)  # keep this worker busy so the others take requests too
    busy.dec()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""

ASGI_APP = """
import asyncio, os
import obskit
hits = obskit.counter("hits", "Requests handled", labels=["path"])
metrics = obskit.metrics_asgi_app()

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/metrics":
        return await metrics(scope, receive, send)
    hits.inc(path="/work")
    await asyncio.sleep(0.02)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early:\n{log.read_text()}")
        try:
            http_get(url)
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"server did not come up:\n{log.read_text()}")


def sample(body: str, name: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


class Server:
    """A server subprocess in its own process group, stopped (and reaped) at the end."""

    def __init__(self, cmd: list[str], tmp: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        self.log = tmp / "server.log"
        self.env = {**os.environ, "PYTHONPATH": str(tmp), **env}
        for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OBSKIT_OTLP_ENDPOINT", "OBSKIT_METRICS_PORT"):
            if k not in env:
                self.env.pop(k, None)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=tmp, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_up(self.url("/metrics"), self.proc, self.log)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hit(self, n: int) -> set[str]:
        with ThreadPoolExecutor(8) as pool:
            return set(pool.map(lambda _: http_get(self.url("/work")), range(n)))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[object]:
    servers: list[Server] = []

    def start(app: str, cmd: list[str], env: dict[str, str] | None = None, port: int | None = None) -> Server:
        (tmp_path / "app.py").write_text(textwrap.dedent(app))
        port = port or free_port()
        full = [c.replace("{port}", str(port)) for c in cmd]
        server = Server(full, tmp_path, env or {}, port)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def gunicorn(*extra: str) -> list[str]:
    return [str(BIN / "gunicorn"), "-c", "python:obskit.integrations.gunicorn", "-w", "3",
            "-b", "127.0.0.1:{port}", "--graceful-timeout", "2", *extra, "app:app"]


@pytest.mark.parametrize("extra", [(), ("--preload",)], ids=["fork", "preload"])
def test_gunicorn_sync_workers_aggregate(run: object, extra: tuple[str, ...]) -> None:
    """gunicorn, 3 sync workers: N increments spread over workers read exactly N in one scrape."""
    server = run(WSGI_APP, gunicorn(*extra))  # type: ignore[operator]
    pids = server.hit(N)
    assert len(pids) >= 2, "requests should have reached several workers"
    body = http_get(server.url("/metrics"))
    assert sample(body, "hits_total", path="/work") == N
    assert sample(body, "busy") == 0
    rss_pids = {s.labels["pid"] for fam in text_string_to_metric_families(body) for s in fam.samples
                if s.name == "process_resident_memory_bytes"}
    assert {str(p) for p in pids} <= rss_pids  # every worker's process metrics, by pid
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool not installed (Debian package 'prometheus')")
    lint = subprocess.run([str(promtool), "check", "metrics"], input=body, capture_output=True, text=True,
                          timeout=60)
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr


def test_gunicorn_uvicorn_workers_aggregate(run: object) -> None:
    """gunicorn with uvicorn workers (ASGI app) aggregates the same way."""
    server = run(ASGI_APP, gunicorn("-k", "uvicorn.workers.UvicornWorker"))  # type: ignore[operator]
    server.hit(N)
    assert sample(http_get(server.url("/metrics")), "hits_total", path="/work") == N


def test_uvicorn_workers_aggregate(run: object, tmp_path: Path) -> None:
    """uvicorn --workers 3 (spawned interpreters) with OBSKIT_MULTIPROC_DIR aggregates too."""
    mp = tmp_path / "mp"
    mp.mkdir()
    (mp / "counter_999999.db").write_bytes(b"stale")  # a previous run's leftovers are wiped at start
    server = run(ASGI_APP, [str(BIN / "uvicorn"), "--workers", "3", "--host", "127.0.0.1", "--port", "{port}",
                            "--log-level", "warning", "app:app"],  # type: ignore[operator]
                 {"OBSKIT_MULTIPROC_DIR": str(mp)})
    server.hit(N)
    assert sample(http_get(server.url("/metrics")), "hits_total", path="/work") == N
    assert not (mp / "counter_999999.db").exists()


def test_dead_worker_counts_kept_and_files_folded(run: object, tmp_path: Path) -> None:
    """Killing two workers in turn keeps both one's counts in the total and folds their files away."""
    mp = tmp_path / "mp"
    server = run(WSGI_APP, gunicorn(), {"OBSKIT_MULTIPROC_DIR": str(mp)})  # type: ignore[operator]
    pids = server.hit(N)
    assert len(pids) >= 2, pids  # two workers that both counted requests
    totals = []
    for victim in sorted(int(p) for p in pids)[:2]:
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and glob.glob(str(mp / f"*_{victim}.db")):
            time.sleep(0.1)
        assert not glob.glob(str(mp / f"*_{victim}.db")), os.listdir(mp)
        assert (mp / "counter_archive.db").exists()
        server.hit(6)
        totals.append(sample(http_get(server.url("/metrics")), "hits_total", path="/work"))
    assert totals == [N + 6, N + 12]


def test_gunicorn_master_serves_metrics_port(run: object) -> None:
    """With OBSKIT_METRICS_PORT, the master serves the aggregate on that port."""
    mport = free_port()
    server = run(WSGI_APP, gunicorn(), {"OBSKIT_METRICS_PORT": str(mport)})  # type: ignore[operator]
    server.hit(N)
    body = http_get(f"http://127.0.0.1:{mport}/metrics")
    assert sample(body, "hits_total", path="/work") == N


@pytest.mark.parametrize("extra", [(), ("--preload",)], ids=["fork", "preload"])
def test_otlp_per_worker_instance_ids_sum_to_scrape(run: object, extra: tuple[str, ...]) -> None:
    """Each worker pushes with its own service.instance.id; the pushed values sum to the scrape."""
    with OTLPReceiver("http") as rx:
        env = {"APP_INIT": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
               "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
        server = run(WSGI_APP, gunicorn(*extra), env)  # type: ignore[operator]
        pids = server.hit(N)
        scraped = sample(http_get(server.url("/metrics")), "hits_total", path="/work")

        def latest_by_instance() -> dict[str, float]:
            out: dict[str, float] = {}
            for req in rx.metrics_requests():
                for rm in req.resource_metrics:
                    inst = attributes(rm.resource.attributes).get("service.instance.id")
                    for sm in rm.scope_metrics:
                        for m in sm.metrics:
                            if m.name == "hits":
                                out[inst] = sum(p.as_double for p in m.sum.data_points)
            return out

        pushed = rx.wait_for(lambda _: sum(latest_by_instance().values()) == N, timeout=20)
        assert pushed, latest_by_instance()
    by_instance = latest_by_instance()
    assert scraped == N
    assert len([v for v in by_instance.values() if v]) == len(pids) >= 2


SCRIPT = """
import sys
from obskit._metrics import counter
from obskit._metrics._exposition import render
counter("side", "side").inc(int(sys.argv[1]))
sys.stdout.write(render()[0].decode())
sys.stdout.flush()
if len(sys.argv) > 2:
    sys.stdin.read()  # stay alive until the test closes stdin
"""


def test_process_joins_live_run_and_wipes_dead_one(tmp_path: Path) -> None:
    """A process beside a live owner adds to its files; after the owner dies a new run starts from zero."""
    mp = tmp_path / "mp"
    env = {**os.environ, "OBSKIT_MULTIPROC_DIR": str(mp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    owner = subprocess.Popen([sys.executable, "-c", SCRIPT, "5", "stay"], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        first = ""
        while "side_total" not in first:
            first += owner.stdout.readline()
        beside = subprocess.run([sys.executable, "-c", SCRIPT, "2"], env=env, capture_output=True, text=True,
                                timeout=60, check=True).stdout
        assert sample(beside, "side_total") == 7
    finally:
        assert owner.stdin is not None
        owner.stdin.close()
        owner.wait(20)
    fresh = subprocess.run([sys.executable, "-c", SCRIPT, "1"], env=env, capture_output=True, text=True,
                           timeout=60, check=True).stdout
    assert sample(fresh, "side_total") == 1


def test_successive_dead_processes_add_up_in_the_archive(tmp_path: Path) -> None:
    """Two processes of one run die in turn: the archive holds the sum of both, not the latest one."""
    from obskit._metrics import _multiprocess

    mp = tmp_path / "mp"
    _multiprocess.wipe(str(mp), os.getpid())  # this test owns the run, so each process joins it
    env = {**os.environ, "OBSKIT_MULTIPROC_DIR": str(mp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    totals = []
    for n in (5, 7):
        subprocess.run([sys.executable, "-c", SCRIPT, str(n)], env=env, capture_output=True, text=True,
                       timeout=60, check=True)
        scraped = _multiprocess.AggregateCollector(str(mp)).collect()  # a scrape folds the dead first
        totals.append(next(s.value for fam in scraped for s in fam.samples if s.name == "side_total"))
    assert totals == [5, 12]
    assert glob.glob(str(mp / "*_[0-9]*.db")) == [], os.listdir(mp)  # each dead process's files folded


def test_unusable_directory_reports_and_stays_per_process(tmp_path: Path) -> None:
    """A directory that cannot be created is reported once; the app runs and metrics stay per process."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = {**os.environ, "OBSKIT_MULTIPROC_DIR": str(blocker / "mp")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, "3"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sample(proc.stdout, "side_total") == 3
    assert "obskit: internal error in multiprocess metrics directory" in proc.stderr


def test_gunicorn_own_config_file_importing_hooks(run: object, tmp_path: Path) -> None:
    """A user's gunicorn.conf.py that imports the hooks gets the same aggregation."""
    (tmp_path / "gunicorn.conf.py").write_text(
        "from obskit.integrations.gunicorn import child_exit, on_exit, when_ready  # noqa: F401\n"
        "workers = 3\n")
    server = run(WSGI_APP, [str(BIN / "gunicorn"), "-c", str(tmp_path / "gunicorn.conf.py"),  # type: ignore[operator]
                            "-b", "127.0.0.1:{port}", "--graceful-timeout", "2", "app:app"])
    pids = server.hit(N)
    assert len(pids) >= 2
    assert sample(http_get(server.url("/metrics")), "hits_total", path="/work") == N
