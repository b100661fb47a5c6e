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
