"""A loopback OTLP collector for tests: real gRPC and HTTP servers that decode real protobuf.

``mode="ok"`` answers every export; ``mode="hang"`` accepts the connection and the request, then never
answers (until the receiver stops), which is how a wedged collector looks to an exporter.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

_REQUEST_TYPES: dict[str, Any] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
}
_RESPONSE_TYPES: dict[str, Any] = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
}


class OTLPReceiver:
    """``with OTLPReceiver("grpc") as rx: ...`` then read ``rx.spans()``, ``rx.log_records()``, ..."""

    def __init__(self, protocol: str = "grpc", mode: str = "ok") -> None:
        assert protocol in ("grpc", "http"), protocol
        assert mode in ("ok", "hang"), mode
        self.protocol = protocol
        self.mode = mode
        self._lock = threading.Lock()
        self._requests: dict[str, list[Any]] = {"traces": [], "logs": [], "metrics": []}
        self.headers: list[dict[str, str]] = []
        self._release = threading.Event()
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> OTLPReceiver:
        if self.protocol == "grpc":
            self._start_grpc()
        else:
            self._start_http()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._release.set()
        if self._grpc is not None:
            self._grpc.stop(grace=0)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    @property
    def endpoint(self) -> str:
        """The base URL, as a user would put in ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        return f"http://127.0.0.1:{self.port}"

    # --- recording ---------------------------------------------------------------------------------------

    def _record(self, signal: str, request: Any, headers: dict[str, str]) -> None:
        with self._lock:
            self._requests[signal].append(request)
            self.headers.append(headers)

    def _hang(self) -> None:
        self._release.wait(timeout=120)

    def requests(self, signal: str) -> list[Any]:
        with self._lock:
            return list(self._requests[signal])

    def spans(self) -> list[Any]:
        return [s for r in self.requests("traces") for rs in r.resource_spans for ss in rs.scope_spans
                for s in ss.spans]

    def resources(self, signal: str) -> list[dict[str, Any]]:
        """Resource attributes of every resource block received for ``signal``, as plain dicts."""
        field = {"traces": "resource_spans", "logs": "resource_logs", "metrics": "resource_metrics"}[signal]
        return [attributes(block.resource.attributes) for r in self.requests(signal)
                for block in getattr(r, field)]

    def log_records(self) -> list[Any]:
        return [lr for r in self.requests("logs") for rl in r.resource_logs for sl in rl.scope_logs
                for lr in sl.log_records]

    def metrics(self) -> list[Any]:
        return [m for r in self.requests("metrics") for rm in r.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics]

    def metrics_requests(self) -> list[Any]:
        return self.requests("metrics")

    def wait_for(self, predicate: Callable[[OTLPReceiver], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    # --- gRPC --------------------------------------------------------------------------------------------

    def _start_grpc(self) -> None:
        receiver = self

        def handler(signal: str) -> Callable[[Any, grpc.ServicerContext], Any]:
            def export(request: Any, context: grpc.ServicerContext) -> Any:
                receiver._record(signal, request, {k: v for k, v in context.invocation_metadata()})
                if receiver.mode == "hang":
                    receiver._hang()
                return _RESPONSE_TYPES[signal]()
            return export

        class Trace(trace_service_pb2_grpc.TraceServiceServicer):
            Export = staticmethod(handler("traces"))

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            Export = staticmethod(handler("logs"))

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            Export = staticmethod(handler("metrics"))

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Trace(), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._grpc = server

    # --- HTTP --------------------------------------------------------------------------------------------

    def _start_http(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                signal = self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]  # a query may follow
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if signal not in _REQUEST_TYPES:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = _REQUEST_TYPES[signal].FromString(body)
                receiver._record(signal, request, {k.lower(): v for k, v in self.headers.items()})
                if receiver.mode == "hang":
                    receiver._hang()
                    return
                payload = _RESPONSE_TYPES[signal]().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="otlp-http-receiver", daemon=True).start()
        self._http = server


def attributes(kvs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list -> plain dict (strings, ints, doubles, bools; arrays as lists)."""
    return {kv.key: any_value(kv.value) for kv in kvs}


def any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    return getattr(v, kind) if kind else None
