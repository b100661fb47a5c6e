"""Nothing lost across fork(): exports paused around a fork, children that flush, pushes of their own counts.

Real processes only: ``os.fork`` and ``multiprocessing`` children export to the loopback collector of the
test process. The forking program runs in a subprocess, so the collector's own gRPC server threads are not
in the process that forks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from otlp_receiver import OTLPReceiver, attributes

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

FORK_UNDER_LOAD = textwrap.dedent("""
    import io, os, sys, threading
    import obskit

    endpoint, forks = sys.argv[1], int(sys.argv[2])
    obskit.init(service_name="forker", otlp_endpoint=endpoint, otlp_protocol="grpc", log_stream=io.StringIO(),
                integrations="none", metrics=False, env={"OTEL_BSP_SCHEDULE_DELAY": "5",
                                                        "OTEL_BLRP_SCHEDULE_DELAY": "5"})
    stop = threading.Event()

    def load():
        log = obskit.get_logger("load")
        while not stop.is_set():
            with obskit.span("load"):
                log.info("load")

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    codes = []
    for i in range(forks):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with obskit.span("child", i=i):
                    pass
                code = 0 if obskit.shutdown(timeout=10) else 2
            finally:
                os._exit(code)
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    stop.set()
    print(" ".join(map(str, codes)))
    obskit.shutdown(timeout=5)
""")


def test_fifty_forks_under_grpc_export_load_abort_no_child() -> None:
    """50 forks while two threads keep the gRPC exporters busy: every child exits 0 and delivers its span."""
    forks = 50
    with OTLPReceiver("grpc") as rx:
        env = dict(os.environ, GRPC_VERBOSITY="INFO")
        proc = subprocess.run([sys.executable, "-c", FORK_UNDER_LOAD, rx.endpoint, str(forks)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        codes = [int(c) for c in proc.stdout.split()]
        assert codes == [0] * forks, codes  # -6 is SIGABRT, 2 a child whose export failed
        # gRPC prints this when a fork copies a call in flight: it skipped its fork handlers.
        assert "skipping fork() handlers" not in proc.stderr
        children = [attributes(s.attributes)["i"] for s in rx.spans() if s.name == "child"]
        assert sorted(children) == list(range(forks))


CHILDREN = textwrap.dedent("""
    import concurrent.futures, io, multiprocessing, os, sys
    import obskit

    endpoint, protocol = sys.argv[1], sys.argv[2]
    obskit.init(service_name="pool", otlp_endpoint=endpoint, otlp_protocol=protocol, log_stream=io.StringIO(),
                integrations="none", env={"OTEL_METRIC_EXPORT_INTERVAL": "600000"})  # no timed push
    jobs = obskit.counter("jobs", "Jobs done")
    latency = obskit.histogram("job_latency", "Job latency", unit="seconds")
    for _ in range(50):
        jobs.inc()  # before any fork: the parent's own count, inherited by every child
        latency.observe(0.5)

    def work(i):
        with obskit.span("child-work", i=i):
            obskit.get_logger("child").info("child-log", i=i)
        jobs.inc()
        latency.observe(0.01)
        return os.getpid()

    fork = multiprocessing.get_context("fork")
    with fork.Pool(4) as pool:
        pids = pool.map(work, range(15))
        pool.close()
        pool.join()
    with concurrent.futures.ProcessPoolExecutor(3, mp_context=fork) as executor:
        pids += list(executor.map(work, range(15, 20)))
    processes = [fork.Process(target=work, args=(i,)) for i in range(20, 25)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    with fork.Pool(2) as pool:  # leaving the block calls terminate(): SIGTERM to the idle workers
        pids += pool.map(work, range(25, 30))
    assert os.getpid() not in pids and all(p.exitcode == 0 for p in processes)
    assert obskit.shutdown(timeout=10)
""")


def _last_values(rx: OTLPReceiver, name: str) -> dict[str, Any]:
    """The last value each instance pushed for ``name`` (a counter's total, a histogram's count and sum)."""
    last: dict[str, Any] = {}
    for request in rx.metrics_requests():
        for rm in request.resource_metrics:
            instance = attributes(rm.resource.attributes)["service.instance.id"]
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name and m.HasField("sum"):
                        last[instance] = sum(p.as_double or p.as_int for p in m.sum.data_points)
                    elif m.name == name:
                        points = m.histogram.data_points
                        last[instance] = [(p.count, p.sum, sum(p.bucket_counts)) for p in points]
    return last


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_multiprocessing_children_deliver_everything_and_count_only_their_own(protocol: str) -> None:
    """Pool (closed or terminated), ProcessPoolExecutor and Process children flush spans, logs, points."""
    with OTLPReceiver("grpc" if protocol == "grpc" else "http") as rx:
        proc = subprocess.run([sys.executable, "-c", CHILDREN, rx.endpoint, protocol], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        spans = sorted(attributes(s.attributes)["i"] for s in rx.spans() if s.name == "child-work")
        logs = sorted(attributes(r.attributes)["i"] for r in rx.log_records()
                      if r.body.string_value == "child-log")
        assert spans == list(range(30)) and logs == list(range(30))
        pushed = _last_values(rx, "jobs")
        # The parent's 50 pre-fork increments once, plus one per task: not 50 again under every child's id.
        assert sum(pushed.values()) == 50 + 30, pushed
        assert len(pushed) > 1 and sorted(pushed.values())[-1] == 50
        histograms = [point for points in _last_values(rx, "job_latency").values() for point in points]
        assert sum(count for count, _, _ in histograms) == 50 + 30
        assert sum(buckets for _, _, buckets in histograms) == 50 + 30
        assert sum(total for _, total, _ in histograms) == pytest.approx(50 * 0.5 + 30 * 0.01)


OS_EXIT = textwrap.dedent("""
    import io, multiprocessing, os, sys
    import obskit

    obskit.init(service_name="exits", otlp_endpoint=sys.argv[1], otlp_protocol="grpc", log_format="json",
                integrations="none", metrics=False)

    def work(flush):
        with obskit.span("before-os-exit", flush=flush):
            obskit.get_logger("child").info("printed-before-os-exit", flush=flush)
        if flush:
            obskit.force_flush(timeout=10)
        os._exit(0)  # skips atexit and multiprocessing's finalizers alike

    fork = multiprocessing.get_context("fork")
    for flush in (True, False):
        p = fork.Process(target=work, args=(flush,))
        p.start()
        p.join()
    obskit.shutdown(timeout=10)
""")


def test_a_child_calling_os_exit_keeps_its_printed_lines_and_what_it_flushed() -> None:
    """os._exit runs no hook: printed lines are already written; spans survive if force_flush() came first."""
    with OTLPReceiver("grpc") as rx:
        proc = subprocess.run([sys.executable, "-c", OS_EXIT, rx.endpoint], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("printed-before-os-exit") == 2  # each line is flushed as it is written
        flushed = [attributes(s.attributes)["flush"] for s in rx.spans() if s.name == "before-os-exit"]
        assert True in flushed


# Forks while another thread holds ``locks`` (as an export thread may at that moment); prints the child's exit
# code, which is what ``in_child()`` returns (a child that hangs on one of those locks never prints).
FORK_HOLDING = textwrap.dedent("""
    import os, threading

    def fork_holding(locks, in_child):
        held, release = threading.Event(), threading.Event()

        def hold():
            for lock in locks:
                lock.acquire()
            held.set()
            release.wait()
            for lock in locks:
                lock.release()

        threading.Thread(target=hold, daemon=True).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            code = 4
            try:
                code = in_child()
            finally:
                os._exit(code)
        release.set()
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
""")

FORK_WHILE_LOCKED = FORK_HOLDING + textwrap.dedent("""
    import io
    import obskit
    from obskit._runtime import _health, _safe

    obskit.init(service_name="locked", log_stream=io.StringIO(), integrations="none", metrics=False)

    def child():  # counting a failure and reporting one, as an export thread was doing at the fork
        _health.record_export_failure("traces")
        _safe.report_internal_error("child after fork", RuntimeError("reported"))
        return 0 if _health.counts().get(("export_failures", "traces")) == 1 else 3

    fork_holding([_health._lock, _safe._lock], child)
""")


def test_a_fork_while_another_thread_holds_the_runtime_locks_leaves_the_child_working() -> None:
    """gunicorn --preload forks its workers while obskit's threads run: a child forked while another
    thread held the self-telemetry or error-report lock still counts and reports (it would hang for good
    on a lock held by a thread that does not exist in it)."""
    proc = subprocess.run([sys.executable, "-c", FORK_WHILE_LOCKED], capture_output=True, text=True,
                          timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"
    assert "child after fork" in proc.stderr


FORK_WHILE_METRICS_LOCKED = FORK_HOLDING + textwrap.dedent("""
    import io
    import obskit
    from opentelemetry import metrics
    from obskit._metrics import _instruments

    obskit.init(service_name="locked", log_stream=io.StringIO(), integrations="none")
    failures = obskit.counter("locked_failures", "f", labels=["signal"])
    latency = obskit.histogram("locked_latency_seconds", "l")
    api = metrics.get_meter("t").create_histogram("locked.api.duration", unit="s")
    failures.inc(signal="traces")
    latency.observe(0.1)
    api.record(0.1, {"route": "/a"})
    child = failures._children[("traces",)]
    api_child = next(iter(next(iter(_instruments.instruments()[-1]._variants.values()))._metrics.values()))

    def in_child():
        failures.inc(signal="traces")
        failures.inc(signal="logs")
        latency.observe(0.001)
        api.record(0.2, {"route": "/a"})
        obskit.counter("locked_new", "n").inc()
        return 0 if child._value.get() == 2 else 3

    # what an export thread counting and the OTLP push reading hold: registry, instrument, value, histogram
    fork_holding([_instruments._lock, failures._lock, child._value._lock, latency._prom._sum._lock,
                  latency._prom._buckets[0]._lock, api_child._sum._lock], in_child)
""")


def test_a_fork_while_another_thread_holds_metric_locks_leaves_the_child_counting() -> None:
    """A child forked while another thread held a metric's locks (the registry's, an instrument's, a
    counter value's, a histogram's sum and bucket, an OpenTelemetry API histogram's) counts and records on
    all of them, and defines new metrics."""
    proc = subprocess.run([sys.executable, "-c", FORK_WHILE_METRICS_LOCKED], capture_output=True, text=True,
                          timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0", proc.stderr


FORK_WHILE_MULTIPROCESS_LOCKED = FORK_HOLDING + textwrap.dedent("""
    import io
    import obskit
    from prometheus_client import values

    obskit.init(service_name="locked", log_stream=io.StringIO(), integrations="none")
    assert values.ValueClass._multiprocess  # OBSKIT_MULTIPROC_DIR: every value lives in the shared files
    jobs = obskit.counter("locked_jobs", "j")
    jobs.inc()
    # the one lock every multiprocess value takes: a variable of the function that made their class
    inc = values.ValueClass.inc
    shared = inc.__closure__[inc.__code__.co_freevars.index("lock")].cell_contents

    def in_child():
        jobs.inc()
        obskit.counter("locked_new", "n").inc()
        return 0 if jobs._prom._value.get() == 1 else 3  # the child's own file starts from nothing

    fork_holding([shared], in_child)
""")


def test_a_fork_while_another_thread_holds_the_multiprocess_lock_leaves_the_child_counting(
        tmp_path: Any) -> None:
    """In multiprocess mode (gunicorn's workers) prometheus-client guards every value with one lock shared
    by the whole process: a worker forked while the master's push or export thread held it still counts
    (it would hang on its first increment, on a request thread)."""
    env = {**os.environ, "OBSKIT_MULTIPROC_DIR": str(tmp_path / "prom")}
    proc = subprocess.run([sys.executable, "-c", FORK_WHILE_MULTIPROCESS_LOCKED], capture_output=True,
                          text=True, timeout=20, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0", proc.stderr


FORK_WHILE_SPAN_ATTRIBUTES_LOCKED = FORK_HOLDING + textwrap.dedent("""
    import io
    import obskit
    from obskit._traces import _lean
    from obskit.integrations import _server_span

    obskit.init(service_name="locked", log_stream=io.StringIO(), integrations="none",
                env={"OTEL_TRACES_EXPORTER": "none"})

    def server_span(name):
        span, token = _server_span.start_server_span(name, {"http.request.method": "GET"}, None)
        assert isinstance(span, _lean.LeanSpan)
        return span, token

    before, before_token = server_span("GET /before")  # current in the forking thread

    def in_child():
        before.set_attribute("inherited", 1)  # a span the child inherited
        span, token = server_span("GET /child")
        span.set_attribute("made", 1)
        _server_span.end_server_span(span, token, 200, None)
        return 0 if before.attributes["inherited"] == 1 and span.attributes["made"] == 1 else 3

    fork_holding([_lean._ATTRIBUTES_LOCK], in_child)
    _server_span.end_server_span(before, before_token, 200, None)
""")


def test_a_fork_while_another_thread_sets_a_span_attribute_leaves_the_child_tracing() -> None:
    """Every lean span's attributes share one lock: a child forked while another thread of the parent held
    it (setting an attribute) still sets attributes, on the spans it inherited and on its own (it would
    hang on the first, on a request thread of a forked worker)."""
    proc = subprocess.run([sys.executable, "-c", FORK_WHILE_SPAN_ATTRIBUTES_LOCKED], capture_output=True,
                          text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0", proc.stderr


SIGTERM_ON_ANOTHER_THREAD = textwrap.dedent("""
    import io, multiprocessing, signal, sys, threading, time
    import obskit

    obskit.init(service_name="relay", otlp_endpoint=sys.argv[1], otlp_protocol="http/protobuf",
                log_stream=io.StringIO(), integrations="none", metrics=False)
    fork = multiprocessing.get_context("fork")
    held, ready = fork.Lock(), fork.Event()

    def child():
        with obskit.span("before-sigterm"):
            pass
        other = threading.Thread(target=threading.Event().wait, daemon=True)
        other.start()

        def signal_the_other_thread():
            time.sleep(0.5)  # the main thread waits on the lock by then
            signal.pthread_kill(other.ident, signal.SIGTERM)  # the kernel may hand it to any thread

        threading.Thread(target=signal_the_other_thread, daemon=True).start()
        ready.set()
        held.acquire()  # held by the parent for good, as Pool.terminate() holds its task queue's lock

    held.acquire()
    process = fork.Process(target=child)
    process.start()
    ready.wait(10)
    process.join(20)
    print(process.exitcode)
    if process.exitcode is None:
        process.kill()
    obskit.shutdown(timeout=5)
""")


def test_a_child_dies_of_a_sigterm_that_lands_on_another_thread_while_its_main_thread_waits() -> None:
    """A multiprocessing child whose main thread waits in C (a Pool worker on the lock Pool.terminate()
    keeps) and whose SIGTERM lands on another thread still flushes and dies of it, instead of living on
    with the handler never run (terminate() then waited for it forever)."""
    with OTLPReceiver("http") as rx:
        proc = subprocess.run([sys.executable, "-c", SIGTERM_ON_ANOTHER_THREAD, rx.endpoint],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip() == "-15", proc.stderr[-3000:]
        assert [s.name for s in rx.spans()] == ["before-sigterm"]


SECOND_SIGTERM_DURING_THE_FLUSH = textwrap.dedent("""
    import io, multiprocessing, os, signal, sys, time
    import obskit
    from obskit._runtime import _fork

    marker = sys.argv[1]
    obskit.init(service_name="twice", log_stream=io.StringIO(), integrations="none", metrics=False,
                env={"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"})

    def slow_flush():
        time.sleep(1.0)
        with open(marker, "w") as f:
            f.write("flushed")

    _fork.register("slow flush", at_child_exit=slow_flush)
    fork = multiprocessing.get_context("fork")
    ready = fork.Event()

    def child():
        ready.set()
        time.sleep(30)

    process = fork.Process(target=child)
    process.start()
    ready.wait(10)
    time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    time.sleep(0.3)  # the child is flushing
    os.kill(process.pid, signal.SIGTERM)  # an impatient parent, or the relay's copy of the first
    process.join(20)
    print(process.exitcode)
""")


def test_a_second_sigterm_during_the_childs_flush_does_not_cut_it_short(tmp_path: Any) -> None:
    """SIGTERM in a multiprocessing child flushes, then dies of it: a second SIGTERM while it flushes is
    ignored (the flush is bounded by the shutdown's timeout), so what the child held still goes out."""
    marker = tmp_path / "flushed"
    proc = subprocess.run([sys.executable, "-c", SECOND_SIGTERM_DURING_THE_FLUSH, str(marker)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "-15", proc.stderr[-3000:]
    assert marker.read_text() == "flushed"
