"""``obskit run -- <command>`` for real: programs that never import obskit get spans, correlated logs and
(for pre-fork servers) metrics summed over their workers, exported to a loopback OTLP receiver.

Each app below uses only the standard library (and OpenTelemetry's API for a span of its own); the servers
run with no config file, as ``obskit run -- gunicorn -w 2 app:app`` and ``obskit run -- uvicorn --workers 2``;
a Celery worker takes tasks from the local RabbitMQ.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import require
from otlp_receiver import OTLPReceiver, any_value
from prometheus_client.parser import text_string_to_metric_families
from served import Served, free_port

pytestmark = pytest.mark.slow

OBSKIT = str(Path(sys.executable).parent / "obskit")
N = 12

WSGI_APP = """
import logging, os

log = logging.getLogger("app")


def app(environ, start_response):
    log.warning("handling %s", environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""

ASGI_APP = """
import logging, os, time

log = logging.getLogger("app")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    log.warning("handling %s", scope["path"])
    time.sleep(0.05)  # blocks this worker's loop, so that the other worker takes requests too
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
"""

SCRIPT = """
import logging
from opentelemetry import trace

with trace.get_tracer("script").start_as_current_span("job"):
    logging.getLogger("script").warning("inside the job")
print("done")
"""

SELF_INIT = """
import logging
import obskit
from obskit._setup import current

before = current()
tel = obskit.init(service_name="ignored")
assert before is not None and tel is before, (before, tel)
assert sum(type(h).__name__ == "ObskitHandler" for h in logging.getLogger().handlers) == 1
logging.getLogger("script").warning("once")
print("same telemetry")
"""


def run_env(rx: OTLPReceiver, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(tmp),
               OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
               OTEL_METRICS_EXPORTER="none", OBSKIT_LOG_FORMAT="json", OTEL_SERVICE_NAME="ran", **extra)
    return env


def hex_ids(rx: OTLPReceiver) -> dict[str, str]:
    """span_id -> trace_id of every span received, as hex."""
    return {s.span_id.hex(): s.trace_id.hex() for s in rx.spans()}


def handling_records(rx: OTLPReceiver) -> list[Any]:
    return [r for r in rx.log_records() if str(any_value(r.body)).startswith("handling")]


def scrape_sum(port: int, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        body = resp.read().decode()
    return sum(s.value for fam in text_string_to_metric_families(body) for s in fam.samples if s.name == name)


def send_until_both_workers_answer(served: Served) -> tuple[int, set[str]]:
    """At least N requests, 4 at a time, until both workers answered (a worker may still be starting);
    returns how many were sent and the pids that answered."""
    sent, pids = 0, set()
    with ThreadPoolExecutor(4) as pool:
        while sent < N or (len(pids) < 2 and sent < 40 * N):
            pids |= set(pool.map(lambda i: served.get(f"/r{i}"), range(sent, sent + 4)))
            sent += 4
    assert len(pids) == 2, pids
    return sent, pids


def kill_one_worker(pid: int, mp: Path) -> None:
    """SIGKILL a worker and wait until the master has folded its metric files into the totals."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while list(mp.glob(f"*_{pid}.db")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(mp.glob(f"*_{pid}.db")), sorted(p.name for p in mp.iterdir())


def serve_and_check(tmp: Path, source: str, cmd: list[str], kill_a_worker: bool = False) -> tuple[int, float]:
    """Start ``obskit run -- cmd`` serving ``source``, send requests (then, if asked, kill a worker that
    served some), scrape, SIGTERM; check what arrived. Returns (requests sent, requests counted by the
    scrape of the /metrics port)."""
    (tmp / "app.py").write_text(textwrap.dedent(source))
    port, mport = free_port(), free_port()
    mp = tmp / "metrics"
    with OTLPReceiver("http") as rx:
        env = run_env(rx, tmp, OBSKIT_METRICS_PORT=str(mport))
        if kill_a_worker:  # a directory of its own, to watch the dead worker's files go
            env.update(OBSKIT_MULTIPROC_DIR=str(mp), OTEL_BSP_SCHEDULE_DELAY="100",
                       OTEL_BLRP_SCHEDULE_DELAY="100")
        served = Served([OBSKIT, "run", "--", *[c.replace("{port}", str(port)) for c in cmd]], tmp, env, port)
        try:
            sent, pids = send_until_both_workers_answer(served)
            if kill_a_worker:  # a killed worker keeps only what it exported: wait for all of it first
                assert rx.wait_for(lambda r: len(handling_records(r)) == sent == len(r.spans()), 20)
                kill_one_worker(int(min(pids)), mp)
            # A request is counted when it ends, just after its client has the response: poll briefly.
            deadline = time.monotonic() + 10
            scraped = scrape_sum(mport, "http_server_request_duration_seconds_count")
            while scraped != sent and time.monotonic() < deadline:
                time.sleep(0.1)
                scraped = scrape_sum(mport, "http_server_request_duration_seconds_count")
            served.terminate()
        finally:
            served.kill()
        server_spans = [s for s in rx.spans() if s.kind == 2]  # OTLP SPAN_KIND_SERVER
        ids = hex_ids(rx)
        records = handling_records(rx)
    output = served.output()
    assert len(server_spans) == sent, ([s.name for s in rx.spans()], output[-3000:])
    assert len(records) == sent, output[-3000:]
    for record in records:  # each request's line carries its own server span's ids
        assert ids.get(record.span_id.hex()) == record.trace_id.hex(), record
    assert {s.span_id.hex() for s in server_spans} == {r.span_id.hex() for r in records}
    assert "Traceback" not in output, output[-3000:]
    return sent, scraped


@pytest.mark.parametrize("extra", [[], ["--preload"]], ids=["fork", "preload"])
def test_run_gunicorn_workers(tmp_path: Path, extra: list[str]) -> None:
    """obskit run -- gunicorn -w 2 app:app: spans, correlated lines, one scrape summing both workers, also
    after one of them was killed (gunicorn's child_exit hook, with no config file)."""
    cmd = ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "--no-control-socket", *extra, "app:app"]
    sent, scraped = serve_and_check(tmp_path, WSGI_APP, cmd, kill_a_worker=True)
    assert scraped == sent


def test_run_gunicorn_uvicorn_workers(tmp_path: Path) -> None:
    """obskit run -- gunicorn -k UvicornWorker: an ASGI app is traced the same way, metrics summed."""
    from test_graceful_stop import uvicorn_worker_class

    cmd = ["gunicorn", "-w", "2", "-k", uvicorn_worker_class(), "-b", "127.0.0.1:{port}", "app:app"]
    sent, scraped = serve_and_check(tmp_path, ASGI_APP, cmd)
    assert scraped == sent


def test_run_uvicorn_workers(tmp_path: Path) -> None:
    """obskit run -- uvicorn --workers 2 app:app: spawned workers set up too, metrics summed over them."""
    cmd = ["uvicorn", "--workers", "2", "--host", "127.0.0.1", "--port", "{port}", "app:app"]
    sent, scraped = serve_and_check(tmp_path, ASGI_APP, cmd)
    assert scraped == sent


TASKS = """
import logging, os, time
from celery import Celery

app = Celery("tasks", broker="amqp://guest:guest@127.0.0.1:5672//")
app.conf.task_default_queue = os.environ["TASK_QUEUE"]


@app.task
def add(x, y):
    logging.getLogger("tasks").warning("adding %s %s in %s", x, y, os.getpid())
    time.sleep(0.1)  # keeps this child busy, so the other one takes tasks too
    return x + y
"""

SEND = """
from tasks import add

for i in range(int(__import__("sys").argv[1])):
    add.delay(i, i)
"""


def test_run_celery_worker(tmp_path: Path) -> None:
    """obskit run -- celery -A tasks worker: a span per task, its lines in it, a scrape summing children."""
    pytest.importorskip("celery")
    require(reachable(5672), "RabbitMQ is not reachable on 127.0.0.1:5672")
    (tmp_path / "tasks.py").write_text(textwrap.dedent(TASKS))
    mport = free_port()
    with OTLPReceiver("http") as rx:
        queue = f"obskit-{secrets.token_hex(6)}"
        env = run_env(rx, tmp_path, OBSKIT_METRICS_PORT=str(mport), TASK_QUEUE=queue,
                      OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_BLRP_SCHEDULE_DELAY="600000")  # only exits flush
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen([OBSKIT, "run", "--", "celery", "-A", "tasks", "worker", "-c", "2",
                                       "--without-gossip", "--without-mingle", "--without-heartbeat"],
                                      cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            subprocess.run([sys.executable, "-c", SEND, str(N)], cwd=tmp_path, env={**env, "OBSKIT_RUN": ""},
                           check=True, timeout=60)
            deadline = time.monotonic() + 60
            while log.read_text().count('"adding ') < N and time.monotonic() < deadline:
                time.sleep(0.1)
            lines = [line for line in log.read_text().splitlines() if '"adding ' in line]
            assert len(lines) == N, log.read_text()[-3000:]
            children = {line.rsplit(" in ", 1)[1].split('"')[0] for line in lines}
            assert len(children) == 2, lines
            # A task's run time is recorded just after it returns: wait for the last ones.
            while scrape_sum(mport, "celery_task_duration_seconds_count") < N and time.monotonic() < deadline:
                time.sleep(0.1)
            assert scrape_sum(mport, "celery_task_duration_seconds_count") == N
            stop_worker(worker, log)
        finally:
            kill_worker(worker)
        spans = {s.span_id.hex(): s for s in rx.spans() if s.name == "run/tasks.add"}
        records = [r for r in rx.log_records() if str(any_value(r.body)).startswith("adding ")]
    assert len(spans) == N, [s.name for s in rx.spans()]
    assert len(records) == N
    for record in records:
        span = spans[record.span_id.hex()]
        assert record.trace_id == span.trace_id


def stop_worker(worker: subprocess.Popen[bytes], log: Path) -> None:
    """Warm shutdown (SIGTERM): children finish, flush and exit; the worker exits 0."""
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, log.read_text()[-3000:]


def kill_worker(worker: subprocess.Popen[bytes]) -> None:
    """Whatever happened, no worker outlives its test."""
    if worker.poll() is None:
        worker.kill()
        worker.wait(10)


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def run_script(tmp: Path, rx: OTLPReceiver, source: str) -> subprocess.CompletedProcess[str]:
    (tmp / "script.py").write_text(textwrap.dedent(source))
    return subprocess.run([OBSKIT, "run", "--", "python", "script.py"], cwd=tmp, env=run_env(rx, tmp),
                          capture_output=True, text=True, timeout=120)


def test_run_python_script(tmp_path: Path) -> None:
    """obskit run -- python script.py: its span and its correlated log line are exported at exit."""
    with OTLPReceiver("http") as rx:
        proc = run_script(tmp_path, rx, SCRIPT)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "done", proc.stdout + proc.stderr
    (span,) = [s for s in rx.spans() if s.name == "job"]
    (record,) = [r for r in rx.log_records() if any_value(r.body) == "inside the job"]
    assert record.trace_id == span.trace_id and record.span_id == span.span_id


def test_program_calling_init_itself_is_set_up_once(tmp_path: Path) -> None:
    """A program that calls obskit.init() under obskit run gets the running setup back, not a second one."""
    with OTLPReceiver("http") as rx:
        proc = run_script(tmp_path, rx, SELF_INIT)
    assert proc.returncode == 0 and "same telemetry" in proc.stdout, proc.stdout + proc.stderr
    assert len([line for line in proc.stdout.splitlines() if '"event":"once"' in line]) == 1, proc.stdout
    assert len([r for r in rx.log_records() if any_value(r.body) == "once"]) == 1
    warnings = [line for line in proc.stdout.splitlines() if "ignores service_name" in line]
    assert len(warnings) == 1, proc.stdout


def test_run_exit_status_and_missing_command(tmp_path: Path) -> None:
    """The command's exit status comes back unchanged; an unknown command is reported (127), none is a
    usage error (2)."""
    (tmp_path / "script.py").write_text("raise SystemExit(7)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    env["OTEL_SDK_DISABLED"] = "true"
    assert subprocess.run([OBSKIT, "run", sys.executable, "script.py"], cwd=tmp_path, env=env,
                          timeout=60).returncode == 7
    missing = subprocess.run([OBSKIT, "run", "--", "no-such-command-here"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 127 and "no-such-command-here" in missing.stderr
    bare = subprocess.run([OBSKIT, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "usage: obskit run" in bare.stderr
