"""Whole-process start-up and exit: ``obskit.init()`` against the hand-written stack it replaces.

Each variant is a fresh Python process (a short script) started from here, the variants alternating round
after round (the order rotated each round), with a loopback OTLP/HTTP receiver up. The child prints
``time.monotonic()`` (one clock for every process on Linux) when its set-up returns, after its last
statement, and from the last ``atexit`` handler to run; this process takes the clock before starting it and
when it has been reaped (a blocking wait: ``Popen.wait(timeout)`` polls, sleeping up to 50 ms in between):

- ``start``: from the spawn to the end of the set-up: interpreter, imports and init;
- ``exit``: from the last statement to the process's end, minus nothing: flushing what is queued, the
  ``atexit`` shutdowns, interpreter teardown;
- ``export``: from the last statement to the arrival of the last export request at the receiver (the part
  of ``exit`` spent getting the queued telemetry out); ``after``: ``exit - export``, what the exit adds over
  the last export's own time; ``teardown``: the part of ``exit`` after every ``atexit`` handler has run
  (the interpreter's finalisation: freeing every module a stack imported, with the garbage collector's
  passes over everything still alive); ``atexit``: ``exit - teardown``, the stack's own exit work (flushing
  and its ``atexit`` shutdowns, the export included), which is what a stack controls: the teardown grows
  with the objects every imported library holds and, like any pass over the whole heap, with how slow the
  machine's memory is (here 37-39 ms for obskit on one machine, 73-104 ms on another).

Between the set-up and the last statement every child does the same work: one span, one log line inside
it, one counter increment; delivered/emitted counts what reached the receiver (spans and log records for the
child's service.name, transactions for Sentry) out of what the child emitted.

Variants: ``python`` (the interpreter alone: the floor of both figures), ``obskit``
(``import obskit; obskit.init(service_name=...)``), ``hand`` (what a user writes for the same by hand: OTel
SDK ``TracerProvider`` + ``BatchSpanProcessor`` + OTLP exporter, ``MeterProvider`` with a periodic OTLP
reader, ``LoggerProvider`` + OTLP log exporter + ``LoggingHandler``, structlog configured for JSON with the
trace ids, a prometheus-client counter), and when installed (``pip install -e '.[bench]'``) ``logfire``
(``logfire.configure(send_to_logfire=False)``, OTLP to the receiver), ``sentry`` (``sentry_sdk.init`` with
``traces_sample_rate=1.0``, a loopback DSN) and ``ddtrace`` (``import ddtrace.auto``, its OTLP trace export).
Before the first round obskit's own sources are byte-compiled (``compileall`` of its package folders,
quietly), as installing its wheel would have done: with obskit installed editable and
``PYTHONDONTWRITEBYTECODE=1`` set, every child would otherwise compile obskit's modules from source while the
libraries in site-packages, obskit's and the hand-written stack's alike, load the ``.pyc`` pip wrote.
Targets (issue 12): obskit's start <= 1.0x the hand-written stack's; obskit's ``after`` <= 50 ms.
Run: ``python tests/benchmarks/bench_startup.py [rounds]``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_http import (  # the same receivers and peers as bench_http
    PEERS,
    SentryReceiver,
    _env,
    installed,
    peer_args,
    print_absent,
)
from otlp_receiver import OTLPReceiver, attributes

SETUP = {
    "python": "",
    "obskit": """
        import obskit
        obskit.init(service_name="bench-startup-obskit")
        """,
    "hand": """
        import logging
        import structlog
        import prometheus_client
        from opentelemetry import _logs, metrics, trace
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": "bench-startup-hand"})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[
            PeriodicExportingMetricReader(OTLPMetricExporter())]))
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
        _logs.set_logger_provider(logger_provider)

        def add_trace_ids(logger, method, event):
            ctx = trace.get_current_span().get_span_context()
            if ctx.is_valid:
                event["trace_id"], event["span_id"] = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
            return event

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
        structlog.configure(
            processors=[structlog.stdlib.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                        add_trace_ids, structlog.processors.JSONRenderer()],
            logger_factory=structlog.stdlib.LoggerFactory(), cache_logger_on_first_use=True)
        work_total = prometheus_client.Counter("bench_work", "Units of work done.")
        """,
    "logfire": """
        import logfire
        logfire.configure(service_name="bench-startup-logfire", send_to_logfire=False)
        """,
    "sentry": """
        import os
        import sentry_sdk
        sentry_sdk.init(dsn=os.environ["BENCH_SENTRY_DSN"], traces_sample_rate=1.0)
        """,
    "ddtrace": """
        import ddtrace.auto
        """,
}
WORK = {
    "python": "",
    "obskit": """
        with obskit.span("work"):
            obskit.get_logger("bench").info("work done")
        obskit.counter("bench_work", "Units of work done.").inc()
        """,
    "hand": """
        with trace.get_tracer("bench").start_as_current_span("work"):
            structlog.get_logger("bench").info("work done")
        work_total.inc()
        """,
    "logfire": """
        with logfire.span("work"):
            logfire.info("work done")
        logfire.metric_counter("bench_work").add(1)
        """,
    "sentry": """
        import logging
        with sentry_sdk.start_transaction(name="work"):
            logging.getLogger("bench").warning("work done")
        """,
    "ddtrace": """
        import logging
        from ddtrace.trace import tracer
        with tracer.trace("work"):
            logging.getLogger("bench").warning("work done")
        """,
}
# What each child emits that a receiver can count: a span (a Sentry transaction) and, where the stack exports
# logs, the log record.
EMITTED = {"python": 0, "obskit": 2, "hand": 2, "logfire": 2, "sentry": 1, "ddtrace": 1}
NAMES = {"python": "python alone", "obskit": "obskit", "hand": "hand-written OTel stack",
         "logfire": "Logfire", "sentry": "sentry-sdk", "ddtrace": "ddtrace"}


class TimedReceiver(OTLPReceiver):
    """The tests' OTLP/HTTP receiver, noting when each export request arrived (``time.monotonic()``)."""

    def __init__(self) -> None:
        super().__init__("http")
        self.arrivals: list[float] = []

    def __enter__(self) -> TimedReceiver:
        super().__enter__()
        # Its answer goes out in two writes (headers, body); with Nagle on, the body waits for the exporter's
        # delayed ACK, 40 ms that would be counted as the exit's.
        if self._http is not None:
            self._http.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        return self

    def _record(self, signal: str, request: Any, headers: dict[str, str]) -> None:
        super()._record(signal, request, headers)
        with self._lock:
            self.arrivals.append(time.monotonic())

    def delivered(self, service: str) -> int:
        """Spans and log records received from ``service``."""
        spans = sum(1 for r in self.requests("traces") for rs in r.resource_spans
                    if attributes(rs.resource.attributes).get("service.name") == service
                    for ss in rs.scope_spans for s in ss.spans
                    if not any(a.key == "logfire.span_type" and a.value.string_value == "pending_span"
                               for a in s.attributes))  # Logfire's placeholder sent as a span starts
        logs = sum(len(sl.log_records) for r in self.requests("logs") for rl in r.resource_logs
                   if attributes(rl.resource.attributes).get("service.name") == service
                   for sl in rl.scope_logs)
        return spans + logs


def _child(variant: str) -> str:
    return (textwrap.dedent("""
        import atexit
        import time
        # Registered first, so run last of the atexit handlers: what is left after it is the teardown.
        atexit.register(lambda: print("done", time.monotonic(), flush=True))
        """) + textwrap.dedent(SETUP[variant]) + 'print("init", time.monotonic(), flush=True)\n'
            + textwrap.dedent(WORK[variant]) + 'print("last", time.monotonic(), flush=True)\n')


def _once(variant: str, rx: TimedReceiver, sentry: SentryReceiver) -> dict[str, float]:
    env = _env(rx.endpoint)
    env.update(OTEL_SEMCONV_STABILITY_OPT_IN="http", BENCH_SENTRY_DSN=sentry.dsn(3),
               DD_SERVICE="bench-startup-ddtrace", OTEL_TRACES_EXPORTER="otlp")
    if variant != "ddtrace":
        del env["OTEL_TRACES_EXPORTER"]  # ddtrace's switch to OTLP; the OTel SDK's default is otlp anyway
    before = {"otlp": len(rx.arrivals), "sentry": len(sentry.arrivals),
              "delivered": rx.delivered(f"bench-startup-{variant}") if variant != "sentry"
              else sentry.transactions(3)}
    # Output to a file, not a pipe: a process the child starts (ddtrace's crash tracker) would hold a pipe
    # open past the child's end; the end is when the child itself is reaped.
    # The child is a script file, not ``-c``: Logfire reads the caller's source to format its messages and
    # warns (in two more log records) when there is none.
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp, tempfile.TemporaryFile() as output:
        script = Path(tmp) / "child.py"
        script.write_text(_child(variant))
        spawned = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp, stdout=output,
                                stderr=subprocess.STDOUT)
        # A blocking wait, with a timer as the time limit: Popen.wait(timeout) polls, sleeping up to 50 ms
        # between polls, and that sleep would be counted as the child's exit.
        watchdog = threading.Timer(120, proc.kill)
        watchdog.start()
        try:
            proc.wait()
        finally:
            ended = time.monotonic()
            watchdog.cancel()
        output.seek(0)
        out = output.read().decode(errors="replace")
    marks = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()
             if line.startswith(("init ", "last ", "done "))}
    if proc.returncode != 0 or set(marks) != {"init", "last", "done"}:
        raise RuntimeError(f"{variant} child failed ({proc.returncode}): {out[-2000:]}")
    time.sleep(0.2)  # a request that arrived as the child ended is being decoded
    arrivals = (sentry.arrivals[before["sentry"]:] if variant == "sentry" else rx.arrivals[before["otlp"]:])
    last_export = max((t for t in arrivals if t >= marks["last"]), default=marks["last"])
    delivered = (sentry.transactions(3) if variant == "sentry"
                 else rx.delivered(f"bench-startup-{variant}")) - before["delivered"]
    return {"start_ms": 1e3 * (marks["init"] - spawned), "exit_ms": 1e3 * (ended - marks["last"]),
            "export_ms": 1e3 * (last_export - marks["last"]), "after_ms": 1e3 * (ended - last_export),
            "teardown_ms": 1e3 * (ended - marks["done"]), "atexit_ms": 1e3 * (marks["done"] - marks["last"]),
            "delivered": float(delivered)}


def compile_obskit() -> None:
    """Byte-compile obskit's packages (``obskit`` and ``obskit.integrations``, which an editable install maps
    to two folders) where the children will find them, as a wheel install does; ``compileall`` writes the
    ``.pyc`` whatever ``PYTHONDONTWRITEBYTECODE`` says. Done in a child, so this process imports no obskit."""
    subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import compileall, sys
        import obskit, obskit.integrations
        folders = [*obskit.__path__, *obskit.integrations.__path__]
        sys.exit(0 if all(compileall.compile_dir(f, quiet=1) for f in folders) else 1)
        """)], check=True)


def run(rounds: int = 10, peers: bool = True) -> dict[str, float]:
    """Per variant: medians over ``rounds`` of start, exit, export and after (ms), delivered and emitted
    summed; obskit's start and exit over the hand-written stack's and over each installed peer's."""
    compile_obskit()
    variants = ("python", "obskit", "hand", *(p for p in PEERS if peers and installed(p)))
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with TimedReceiver() as rx, SentryReceiver() as sentry:
        for r in range(rounds):
            k = r % len(variants)
            for variant in variants[k:] + variants[:k]:
                runs[variant].append(_once(variant, rx, sentry))
    out: dict[str, float] = {}
    for variant, figures in runs.items():
        for key in ("start_ms", "exit_ms", "export_ms", "after_ms", "teardown_ms", "atexit_ms"):
            out[f"{variant}_{key}"] = statistics.median(f[key] for f in figures)
        out[f"{variant}_delivered"] = sum(f["delivered"] for f in figures)
        out[f"{variant}_emitted"] = float(EMITTED[variant] * rounds)
    for other in variants[2:]:
        out[f"start_vs_{other}"] = out["obskit_start_ms"] / out[f"{other}_start_ms"]
        out[f"exit_vs_{other}"] = out["obskit_exit_ms"] / out[f"{other}_exit_ms"]
    return out


def main(argv: list[str] | None = None) -> int:
    args, peers = peer_args(argv)
    rounds = int(args[0]) if args else 10
    r = run(rounds, peers)
    print(f"fresh Python processes, variants alternating, medians of {rounds} rounds; OTLP/HTTP "
          "receiver on loopback")
    print(f"{'stack':<26}{'start ms':>10}{'exit ms':>10}{'export ms':>11}{'after ms':>10}{'teardown':>10}"
          f"{'atexit':>8}   delivered/emitted")
    for variant, name in NAMES.items():
        if f"{variant}_start_ms" not in r:
            continue
        emitted = int(r[f"{variant}_emitted"])
        print(f"{name:<26}{r[f'{variant}_start_ms']:>10.0f}{r[f'{variant}_exit_ms']:>10.0f}"
              f"{r[f'{variant}_export_ms']:>11.0f}{r[f'{variant}_after_ms']:>10.0f}"
              f"{r[f'{variant}_teardown_ms']:>10.0f}{r[f'{variant}_atexit_ms']:>8.0f}   "
              + (f"{int(r[f'{variant}_delivered'])}/{emitted}" if emitted else "-"))
    for other in ("hand", *PEERS):
        if f"start_vs_{other}" in r:
            print(f"obskit / {NAMES[other]}: start {r[f'start_vs_{other}']:.2f}x, "
                  f"exit {r[f'exit_vs_{other}']:.2f}x")
    print_absent(peers)
    print("Targets: obskit start <= 1.0x the hand-written stack's; obskit after (exit - export) <= 50 ms "
          "(atexit: the part of exit before the interpreter's teardown)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
