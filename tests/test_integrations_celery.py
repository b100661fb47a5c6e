"""The celery integration for real: ``celery worker`` subprocesses taking tasks from the local RabbitMQ,
results in the local Redis, spans and log records exported to a loopback OTLP receiver, ``/metrics`` scraped.

Batch delays are longer than any test (10 minutes), so what arrives was flushed by a process as it exited:
prefork children replaced under ``--max-tasks-per-child`` included. Each test has its own queue and worker
name, deletes its queue and forgets its results, and stops its worker with SIGTERM (warm shutdown).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import require
from otlp_receiver import OTLPReceiver, any_value, attributes
from prometheus_client.parser import text_string_to_metric_families
from served import free_port
from test_run import OBSKIT, kill_worker, reachable, run_env, stop_worker

pytestmark = pytest.mark.slow

BROKER = "amqp://guest:guest@127.0.0.1:5672//"
PRODUCER, CONSUMER = 4, 5  # OTLP span kinds
N = 10

TASKS = """
import logging, os
from celery import Celery
from opentelemetry import metrics
{init}
app = Celery("tasks", broker="{broker}", backend="redis://127.0.0.1:6379/0")
app.conf.task_default_queue = os.environ["TASK_QUEUE"]
app.conf.result_expires = 600
# A series initialised at zero in the worker's main process (as Prometheus advises), before the pool forks;
# every child then adds to it.
STARTED = metrics.get_meter("tasks").create_counter("tasks.started")
STARTED.add(0)


@app.task
def add(x, y):
    STARTED.add(1)
    logging.getLogger("tasks").warning("adding %s %s in %s", x, y, os.getpid())
    return x + y


@app.task
def fail():
    raise ValueError("boom")


@app.task(bind=True)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(countdown=0, max_retries=2, exc=RuntimeError("not yet"))
    return "ok"
"""

PRODUCE = """
import json, sys

import obskit

obskit.init(service_name="producer")

from opentelemetry import trace

import tasks

n, extra = int(sys.argv[1]), sys.argv[2] == "1"
tracer = trace.get_tracer("producer")
adds = []
for i in range(n):
    with tracer.start_as_current_span(f"produce {i}"):
        adds.append(tasks.add.delay(i, i))
if extra:
    with tracer.start_as_current_span("produce fail"):
        fail = tasks.fail.delay()
    with tracer.start_as_current_span("produce flaky"):
        flaky = tasks.flaky.delay()
for i, r in enumerate(adds):
    assert r.get(timeout=120) == 2 * i
out = {"add": [r.id for r in adds]}
if extra:
    fail.get(timeout=120, propagate=False)
    assert fail.failed(), fail.state
    assert flaky.get(timeout=120) == "ok"
    out.update(fail=fail.id, flaky=flaky.id)
for r in adds + ([fail, flaky] if extra else []):
    r.forget()
print("ids", json.dumps(out))
"""


@dataclass
class Run:
    """What one worker run left behind: task ids, the worker's output, one scrape, spans and records."""

    ids: dict[str, Any]
    output: str
    scrape: list[Any]
    spans: list[Any]
    records: list[Any]

    def lines(self) -> list[dict[str, Any]]:
        """The worker's JSON log lines."""
        return [json.loads(line) for line in self.output.splitlines() if line.startswith("{")]

    def sample(self, name: str, **labels: str) -> float:
        """The value of ``name`` summed over the samples carrying ``labels``."""
        return sum(s.value for s in self.scrape if s.name == name
                   and all(s.labels.get(k) == v for k, v in labels.items()))

    def run_spans(self, task_id: str) -> list[Any]:
        """The worker's ``run`` spans of one task, first attempt first."""
        spans = [s for s in self.spans if s.kind == CONSUMER and attributes(s.attributes).get(
            "messaging.message.id") == task_id]
        return sorted(spans, key=lambda s: s.start_time_unix_nano)

    def sends(self, task_id: str) -> list[Any]:
        """The PRODUCER spans that sent one task (a retry sends it again)."""
        return [s for s in self.spans if s.kind == PRODUCER and attributes(s.attributes).get(
            "messaging.message.id") == task_id]


def one(items: list[Any], what: str, run: Run) -> Any:
    """The single item of ``items``, else a failure saying what was counted, with the worker's output."""
    assert len(items) == 1, f"{len(items)} x {what}\n{run.output[-4000:]}"
    return items[0]


def scrape(port: int) -> list[Any]:
    """Every sample of one scrape (none while the worker is not serving yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            body = resp.read().decode()
    except OSError:
        return []
    return [s for fam in text_string_to_metric_families(body) for s in fam.samples]


def delete_queue(queue: str) -> None:
    from kombu import Connection

    with Connection(BROKER) as conn:
        conn.default_channel.queue_delete(queue)


def run_worker(tmp: Path, pool: list[str], *, via_run: bool, n: int, extra: bool) -> Run:
    """Start a worker, send ``n`` adds (and, with ``extra``, a failing and a retrying task) from a producer
    with obskit, scrape once every execution is counted, stop the worker with SIGTERM; collect."""
    pytest.importorskip("celery")
    require(reachable(5672), "RabbitMQ is not reachable on 127.0.0.1:5672")
    require(reachable(6379), "Redis is not reachable on 127.0.0.1:6379")
    init = "" if via_run else 'import obskit\nobskit.init(service_name="tasks")'
    (tmp / "tasks.py").write_text(TASKS.format(init=init, broker=BROKER))
    (tmp / "produce.py").write_text(textwrap.dedent(PRODUCE))
    queue, mport = f"obskit-celery-{secrets.token_hex(6)}", free_port()
    expected = {("tasks.add", "success"): n}
    if extra:
        expected.update({("tasks.fail", "failure"): 1, ("tasks.flaky", "retry"): 1,
                         ("tasks.flaky", "success"): 1})
    with OTLPReceiver("http") as rx:
        env = run_env(rx, tmp, OBSKIT_METRICS_PORT=str(mport), TASK_QUEUE=queue,
                      OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_BLRP_SCHEDULE_DELAY="600000")  # only exits flush
        cmd = ["celery", "-A", "tasks", "worker", *pool, "-n", f"{queue}@%h",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]
        log = tmp / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen([OBSKIT, "run", "--", *cmd] if via_run else cmd, cwd=tmp, env=env,
                                      stdout=out, stderr=subprocess.STDOUT)
        try:
            producer_env = {k: v for k, v in env.items() if k != "OBSKIT_METRICS_PORT"}  # the worker's
            sent = subprocess.run([sys.executable, "produce.py", str(n), "1" if extra else "0"], cwd=tmp,
                                  env=producer_env, capture_output=True, text=True, timeout=180)
            assert sent.returncode == 0, sent.stdout + sent.stderr + log.read_text()[-3000:]
            (ids,) = [json.loads(ln[4:]) for ln in sent.stdout.splitlines() if ln.startswith("ids ")]
            # A result is stored just before the execution is recorded: poll until every one is counted.
            deadline, samples = time.monotonic() + 60, None
            while time.monotonic() < deadline:
                samples = Run(ids, "", scrape(mport), [], [])
                if all(samples.sample("celery_task_duration_seconds_count", task_name=t, outcome=o) >= c
                       for (t, o), c in expected.items()):
                    break
                time.sleep(0.1)
            stop_worker(worker, log)
        finally:
            kill_worker(worker)
            delete_queue(queue)
        assert samples is not None
        return Run(ids, log.read_text(), samples.scrape, rx.spans(), rx.log_records())


def check_tasks_traced_counted_and_logged(run: Run, n: int) -> None:
    """Every add: its run span continues its producer's span, with the attributes; it is counted once on the
    one scrape; its line carries the span's ids and the task's name and id, once; Celery's lines are
    obskit's, once each."""
    assert run.sample("celery_task_duration_seconds_count", task_name="tasks.add", outcome="success") == n
    assert run.sample("celery_task_duration_seconds_count", task_name="tasks.add") == n
    assert run.sample("celery_task_queue_wait_seconds_count", task_name="tasks.add") == n
    assert run.sample("flower_task_runtime_seconds_count") == 0  # the instrumentor's duplicate is off
    lines = run.lines()
    traces = set()
    for task_id in run.ids["add"]:
        span = one(run.run_spans(task_id), f"run span of {task_id}", run)
        producer = one(run.sends(task_id), f"send of {task_id}", run)
        assert span.name == "run/tasks.add" and span.trace_id == producer.trace_id, run.output[-3000:]
        assert span.parent_span_id == producer.span_id
        traces.add(span.trace_id)
        attrs = attributes(span.attributes)
        assert attrs["celery.task_name"] == "tasks.add" and attrs["celery.task_id"] == task_id
        assert attrs["celery.retries"] == 0 and attrs["celery.outcome"] == "success"
        line = one([ln for ln in lines if ln["event"].startswith("adding ") and ln.get("task_id") == task_id],
                   f"line of {task_id}", run)
        assert line["task_name"] == "tasks.add"
        assert (line["trace_id"], line["span_id"]) == (span.trace_id.hex(), span.span_id.hex())
        record = one([r for r in run.records if str(any_value(r.body)).startswith("adding ")
                      and attributes(r.attributes).get("task_id") == task_id], f"record of {task_id}", run)
        assert (record.trace_id, record.span_id) == (span.trace_id, span.span_id)
        for what in ("received", "succeeded"):  # Celery's own lines, through obskit once each
            assert len([ln for ln in lines if f"[{task_id}] {what}" in ln["event"]]) == 1, what
    assert len(traces) == n  # one producer trace each
    assert len([ln for ln in lines if ln["event"].startswith("adding ")]) == n
    assert len([ln for ln in lines if ln["event"].endswith(" ready.")]) == 1
    wrapped = [ln for ln in run.output.splitlines() if "/ForkPoolWorker-" in ln or "/MainProcess]" in ln]
    assert not wrapped, wrapped  # Celery's own format around obskit's lines: its logging was not left alone
    assert "Traceback" not in "".join(ln for ln in run.output.splitlines() if not ln.startswith("{"))


@pytest.mark.parametrize("via_run", [False, True], ids=["init-in-tasks-module", "obskit-run"])
def test_prefork_acceptance(tmp_path: Path, via_run: bool) -> None:
    """Prefork, 2 children replaced every 3 tasks: 10 of 10 run spans join their producers' traces, one scrape
    counts 10 (summed over children), a failure and a retry counted by outcome, nothing lost at child exit."""
    run = run_worker(tmp_path, ["--pool=prefork", "-c", "2", "--max-tasks-per-child=3"], via_run=via_run, n=N,
                     extra=True)
    check_tasks_traced_counted_and_logged(run, N)
    children = {ln["event"].rsplit(" in ", 1)[1] for ln in run.lines() if ln["event"].startswith("adding ")}
    assert len(children) >= 4, children  # 10 adds, at most 3 per child: children were replaced
    # An OpenTelemetry API series first recorded in the main process, before the fork, still sums children.
    assert run.sample("tasks_started_total") == N

    # The failing task: counted as a failure; its span is an error; Celery's line has the exception and trace.
    assert run.sample("celery_task_duration_seconds_count", task_name="tasks.fail", outcome="failure") == 1
    span = one(run.run_spans(run.ids["fail"]), "run span of the failing task", run)
    assert attributes(span.attributes)["celery.outcome"] == "failure" and span.status.code == 2
    line = one([ln for ln in run.lines() if ln.get("task_id") == run.ids["fail"] and ln["level"] == "error"],
               "the failing task's error line", run)
    assert line["logger"] == "celery.app.trace" and line["task_name"] == "tasks.fail"
    assert "ValueError" in json.dumps(line["exception"]) and "boom" in json.dumps(line["exception"])
    assert (line["trace_id"], line["span_id"]) == (span.trace_id.hex(), span.span_id.hex())
    record = one([r for r in run.records if r.severity_number >= 17 and r.trace_id == span.trace_id],
                 "the failing task's error record", run)
    assert "ValueError" in attributes(record.attributes).get("exception.type", "")

    # The retrying task: retry then success; attempt 2 is a child of the send that attempt 1's retry() made.
    assert run.sample("celery_task_duration_seconds_count", task_name="tasks.flaky", outcome="retry") == 1
    assert run.sample("celery_task_duration_seconds_count", task_name="tasks.flaky", outcome="success") == 1
    assert run.sample("celery_task_queue_wait_seconds_count", task_name="tasks.flaky") == 2
    first, second = run.run_spans(run.ids["flaky"])
    a1, a2 = attributes(first.attributes), attributes(second.attributes)
    assert (a1["celery.retries"], a1["celery.outcome"]) == (0, "retry")
    assert (a2["celery.retries"], a2["celery.outcome"]) == (1, "success")
    sends = run.sends(run.ids["flaky"])
    (resend,) = [s for s in sends if s.parent_span_id == first.span_id]
    (original,) = [s for s in sends if s is not resend]
    assert first.parent_span_id == original.span_id and second.parent_span_id == resend.span_id
    assert first.trace_id == second.trace_id == original.trace_id


@pytest.mark.parametrize("pool", [["--pool=threads", "-c", "2"], ["--pool=solo"]], ids=["threads", "solo"])
def test_threads_and_solo_pools(tmp_path: Path, pool: list[str]) -> None:
    """The threads and solo pools (tasks in the main process): spans join producers, each execution counted
    once on /metrics, every line in a task carries its trace and name, Celery's lines once each."""
    run = run_worker(tmp_path, pool, via_run=False, n=4, extra=False)
    check_tasks_traced_counted_and_logged(run, 4)
