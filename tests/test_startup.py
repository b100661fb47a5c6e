"""Start-up: ``init()`` under ``integrations="auto"`` imports no library the application has not imported;
each integration switches on when the application imports its library, before or after ``init()``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from obskit.integrations import _registry
from otlp_receiver import OTLPReceiver

import obskit

DEFERRED = sorted((n, i.module) for n, i in _registry.integrations().items() if i.module is not None)


def _run(code: str) -> dict[str, object]:
    env_code = textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "OBSKIT_LOG_LEVEL": "WARNING"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_auto_init_imports_no_instrumented_library() -> None:
    """A script that imports none of the libraries: ``init()`` imports none of them (nor Django or Celery,
    which other libraries' imports could pull in), though every integration whose library is installed is
    armed. (prometheus-client, which obskit uses itself, brings ``urllib.request``: not the application's.)"""
    # Integrations that hook their library's import themselves declare no module: named here.
    modules = [m for _, m in DEFERRED] + ["django", "flask", "kombu", "celery", "aiohttp", "grpc", "pika",
                                          "aio_pika"]
    result = _run(f"""
        import json, sys
        import obskit, prometheus_client
        before = set(sys.modules)
        tel = obskit.init(service_name="startup")
        imported = [m for m in {modules!r} if m in sys.modules and m not in before]
        print(json.dumps({{"imported": imported, "armed": sorted(tel.integrations)}}))
    """)
    assert result["imported"] == []
    assert {"redis", "sqlalchemy", "fastapi"} <= set(result["armed"])  # type: ignore[arg-type]


def test_library_imported_after_init_is_instrumented_on_import() -> None:
    """``import redis`` after ``init()`` switches the redis integration on at that moment; a library
    imported before ``init()`` is instrumented by ``init()`` itself."""
    result = _run("""
        import json
        import requests
        import obskit, obskit.testing
        obskit.init(service_name="startup")
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        before = RequestsInstrumentor().is_instrumented_by_opentelemetry
        import redis
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        after = RedisInstrumentor().is_instrumented_by_opentelemetry
        obskit.testing.reset()
        print(json.dumps({"before": before, "after": after,
                          "undone": RedisInstrumentor().is_instrumented_by_opentelemetry}))
    """)
    assert result == {"before": True, "after": True, "undone": False}


def test_shutdown_before_the_import_leaves_the_library_alone() -> None:
    """An integration armed by ``init()`` and disarmed by ``obskit.testing.reset()`` before its library is
    imported never instruments it."""
    result = _run("""
        import json
        import obskit, obskit.testing
        obskit.init(service_name="startup")
        obskit.testing.reset()
        import redis
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        print(json.dumps({"instrumented": RedisInstrumentor().is_instrumented_by_opentelemetry}))
    """)
    assert result == {"instrumented": False}


# What only an application's use of a library may import: the hooks of obskit's HTTP clients and
# OpenTelemetry's instrumentation machinery (the contrib instrumentors' base, wrapt, packaging).
HOOKS_AND_MACHINERY = ["obskit.integrations._urllib_hook", "obskit.integrations._urllib3_hook",
                       "obskit.integrations._http_client", "opentelemetry.instrumentation", "wrapt",
                       "packaging"]


def test_auto_init_imports_no_hook_for_a_library_obskit_itself_imported() -> None:
    """``urllib.request`` is in every process (prometheus-client imports it): ``init()`` arms the urllib
    integration without importing its hook, nor OpenTelemetry's instrumentation machinery or wrapt."""
    result = _run(f"""
        import json, sys, urllib.request
        import obskit
        handler = urllib.request.AbstractHTTPHandler
        original = handler.__dict__["do_open"]
        tel = obskit.init(service_name="startup", otlp_endpoint=None, metrics_port=None)
        print(json.dumps({{"imported": [m for m in {HOOKS_AND_MACHINERY!r} if m in sys.modules],
                          "armed": "urllib" in tel.integrations,
                          "waiting": handler.__dict__["do_open"] is not original}}))
    """)
    assert result == {"imported": [], "armed": True, "waiting": True}


_URLLIB_APP = """
    import json, sys, threading, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("traceparent"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/items/1"

    import obskit, obskit.testing
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    original = urllib.request.AbstractHTTPHandler.__dict__["do_open"]
    spans = InMemorySpanExporter()
    obskit.init(service_name="startup", otlp_endpoint=None, metrics_port=None,
                span_processors=[SimpleSpanProcessor(spans)])
    hook_before = "obskit.integrations._urllib_hook" in sys.modules
    """


def test_urllib_first_request_after_init_is_traced() -> None:
    """The first ``urlopen()`` after ``init()`` switches the urllib hook on and is itself a CLIENT span whose
    ``traceparent`` the server got; ``reset()`` puts the very original ``do_open`` back."""
    result = _run(_URLLIB_APP + """
    for _ in range(2):
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
    hook_after = "obskit.integrations._urllib_hook" in sys.modules
    got = [(s.name, s.kind.name, f"{s.context.trace_id:032x}") for s in spans.get_finished_spans()]
    obskit.testing.reset()
    print(json.dumps({"hook": [hook_before, hook_after], "spans": [g[:2] for g in got],
                      "traceparent": [t is not None and t.split("-")[1] for t in seen] == [g[2] for g in got],
                      "restored": urllib.request.AbstractHTTPHandler.__dict__["do_open"] is original}))
    """)
    assert result == {"hook": [False, True], "spans": [["GET", "CLIENT"]] * 2, "traceparent": True,
                      "restored": True}


def test_urllib_first_requests_from_many_threads_are_each_traced() -> None:
    """Eight threads' first requests at once: the hook is switched on once and every request is one span."""
    result = _run(_URLLIB_APP + """
    start = threading.Barrier(8)

    def get():
        start.wait()
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count = len(spans.get_finished_spans())
    obskit.testing.reset()
    print(json.dumps({"hook_before": hook_before, "spans": count, "requests": len(seen),
                      "with_traceparent": sum(t is not None for t in seen),
                      "restored": urllib.request.AbstractHTTPHandler.__dict__["do_open"] is original}))
    """)
    assert result == {"hook_before": False, "spans": 8, "requests": 8, "with_traceparent": 8,
                      "restored": True}


def test_otlp_http_export_imports_no_requests() -> None:
    """Over OTLP/HTTP, ``init()`` and an export to a collector import neither requests nor urllib3: the
    exporters send through obskit's ``http.client`` transport (requests alone costs ~50 ms of start-up)."""
    result = _run("""
        import json, os, sys, threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Collector(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
        import obskit
        obskit.init(service_name="x")
        with obskit.span("s"):
            pass
        delivered = obskit.shutdown(10)
        print(json.dumps({"delivered": delivered,
                          "http_exporter": "obskit._runtime._otlp_http" in sys.modules,
                          "imported": [m for m in ("requests", "urllib3") if m in sys.modules]}))
    """)
    assert result == {"delivered": True, "http_exporter": True, "imported": []}


def test_otlp_http_export_imports_no_protobuf() -> None:
    """Over OTLP/HTTP, ``init()``, exporting a span and a log line, and pushing metrics (a flush, then the
    final push of ``shutdown()``) import no protobuf, no OTLP exporter."""
    with OTLPReceiver("http") as rx:
        result = _run(f"""
            import json, logging, os, sys
            os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = {rx.endpoint!r}
            import obskit
            def imported():
                return sorted(m for m in sys.modules if m.startswith(
                    ("google.protobuf", "opentelemetry.exporter.otlp.proto", "opentelemetry.proto")))
            tel = obskit.init(service_name="x")
            orders = obskit.counter("startup_orders", "Orders", labels=["status"])
            orders.inc(status="ok")
            with obskit.span("checkout"):
                orders.inc(2, status="ok")
            logging.getLogger("app").warning("paid")
            flushed = tel._tracing.force_flush(10) and tel.logger_provider.force_flush(10_000)
            pushed = obskit.force_flush(10)
            after_flush = imported()
            orders.inc(status="ok")
            shut = obskit.shutdown(10)
            print(json.dumps({{"flushed": flushed, "pushed": pushed, "shut": shut,
                               "imported": after_flush, "at_exit": imported()}}))
        """)
        assert rx.wait_for(lambda r: bool(r.spans() and r.log_records() and len(r.metrics_requests()) >= 2))
        spans, records = rx.spans(), rx.log_records()
        last = rx.metrics_requests()[-1]
    assert result == {"flushed": True, "pushed": True, "shut": True, "imported": [], "at_exit": []}
    assert [s.name for s in spans] == ["checkout"]
    assert [r.body.string_value for r in records] == ["paid"]
    orders = [m for rm in last.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
              if m.name.startswith("startup_orders")]
    assert [[p.as_double for p in m.sum.data_points] for m in orders] == [[4.0]]  # the final push's value
    assert orders[0].sum.is_monotonic and orders[0].sum.data_points[0].exemplars  # the span's exemplar


def _typed_imports() -> dict[str, str]:
    """name -> module (relative, as written) of each import under obskit/__init__.py's ``TYPE_CHECKING``."""
    tree = ast.parse((Path(obskit.__file__)).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    return {alias.name: "." * node.level + (node.module or "") for node in block.body
            if isinstance(node, ast.ImportFrom) for alias in node.names}


def test_public_names_are_imported_on_first_use() -> None:
    """Each name of ``obskit.__all__`` is imported on first use from the module type checkers read it from:
    ``import obskit`` imports no obskit module, ``init()`` not the resilience guards."""
    assert _typed_imports() == obskit._MODULE_OF
    assert set(obskit._MODULE_OF) == set(obskit.__all__) - {"__version__"}
    result = _run("""
        import importlib, json, sys
        import obskit
        after_import = sorted(m for m in sys.modules if m.startswith("obskit."))
        obskit.init(service_name="startup", otlp_endpoint=None, metrics_port=None)
        resilience = "obskit._resilience" in sys.modules
        names = {}
        exec("from obskit import *", names)
        same = all(names[n] is getattr(importlib.import_module(m, "obskit"), n) is getattr(obskit, n)
                   for n, m in obskit._MODULE_OF.items())
        print(json.dumps({"after_import": after_import, "resilience_after_init": resilience,
                          "star": sorted(n for n in names if n != "__builtins__"), "same": same}))
    """)
    assert result == {"after_import": [], "resilience_after_init": False,
                      "star": sorted(obskit.__all__), "same": True}


def test_reading_the_declarations_imports_no_hook() -> None:
    """The registry reads every integration's declaration without importing a hook module or the recorders
    the hooks share (messaging, SQL, HTTP client): those wait for the application to use the library."""
    result = _run("""
        import json, sys
        from obskit.integrations import _registry
        before = set(sys.modules)
        found = _registry.integrations()
        shared = {"_messaging", "_sql", "_http_client"}
        hooks = [m for m in sorted(set(sys.modules) - before) if m.startswith("obskit.integrations._")
                 and (m.endswith("_hook") or m.rpartition(".")[2] in shared)]
        # The server integrations' request path reads the propagators on the first request.
        hooks += [m for m in ("opentelemetry.propagate",) if m in sys.modules]
        print(json.dumps({"found": len(found), "hooks": hooks}))
    """)
    assert result["hooks"] == [] and result["found"] == len(_registry.integrations())


def test_otlp_grpc_export_imports_no_grpc_instrumentation() -> None:
    """With OTLP/gRPC export ``init()`` imports grpc for the exporter, but neither the grpc integration's hook
    nor OpenTelemetry's instrumentors or wrapt: they come with the application's first server or channel."""
    result = _run(f"""
        import json, os, sys
        import obskit
        tel = obskit.init(service_name="startup", otlp_endpoint="http://127.0.0.1:9", otlp_protocol="grpc",
                          metrics_port=None)
        hooks = {[*HOOKS_AND_MACHINERY, "obskit.integrations._grpc_hook"]!r}
        imported = [m for m in hooks if m in sys.modules]
        import grpc
        from concurrent import futures
        grpc.server(futures.ThreadPoolExecutor(max_workers=1)).stop(None)
        from opentelemetry.instrumentation.grpc import GrpcInstrumentorServer
        print(json.dumps({{"grpc": "grpc" in tel.integrations, "imported": imported,
                          "server_traced": GrpcInstrumentorServer().is_instrumented_by_opentelemetry}}),
              flush=True)
        os._exit(0)  # no export to the closed port at exit
    """)
    assert result == {"grpc": True, "imported": [], "server_traced": True}


def test_init_imports_no_multiprocessing_and_arms_it_once_imported() -> None:
    """``init()`` does not import multiprocessing; once the application does, the children it forks are armed
    to flush at exit (tests/test_loss_fork.py checks the flush itself)."""
    result = _run("""
        import json, sys
        import obskit
        obskit.init(service_name="startup", otlp_endpoint=None, metrics_port=None)
        before = sorted(m for m in sys.modules if m.partition(".")[0] in ("multiprocessing", "glob"))
        import multiprocessing
        child = multiprocessing.get_context("fork").Process(target=lambda: None)
        child.start()
        child.join()
        import multiprocessing.util
        from obskit._runtime import _fork
        armed = [key[2] for key in multiprocessing.util._afterfork_registry].count(_fork._arm_child)
        print(json.dumps({"before": before, "armed": armed, "exitcode": child.exitcode}))
    """)
    assert result == {"before": [], "armed": 1, "exitcode": 0}


def test_registry_lists_the_modules_pkgutil_lists(tmp_path: Path) -> None:
    """The registry's quick folder listing names the public modules and packages ``pkgutil`` does."""
    import pkgutil

    for name in ("plain.py", "_private.py", "not-a-name.py", "notes.txt", "compiled.pyc"):
        (tmp_path / name).write_text("")
    for name, init in (("pkg", True), ("folder", False), ("_hidden", True)):
        (tmp_path / name).mkdir()
        if init:
            (tmp_path / name / "__init__.py").write_text("")
    path = (*obskit.integrations.__path__, str(tmp_path))
    listed = sorted(m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_"))
    assert list(_registry._public_modules(path)) == listed
    assert {"compiled", "pkg", "plain", "urllib"} <= set(listed)
