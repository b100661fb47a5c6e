"""An application that leaks on purpose: run by tests/test_secrets.py, it puts a distinct canary in every
place a secret can enter through code (the environment's canaries are planted by the test), then drives
every exit.

    python canary_app.py <file to write the /metrics scrape to>

Log fields of every kind and container, log messages, stdlib records, span attributes, events and links,
metric labels, incoming and outgoing URLs (FastAPI on uvicorn in a thread, called with httpx and requests),
and obskit's own error report. ``CODE_CANARIES`` names each place; the test searches every output for each.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import sys
import threading
import time
import types
import urllib.request
from collections.abc import Sequence
from typing import Any, NamedTuple

import httpx
import pydantic
import requests
import uvicorn
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import obskit


def _canary(n: int) -> str:
    return f"cnry{n:03d}code"


# place -> canary; every value must appear in no output at all.
CODE_CANARIES: dict[str, str] = {place: _canary(i) for i, place in enumerate([
    "log kwarg password", "log kwarg secret_key", "log kwarg aws_secret_access_key", "log kwarg sessionid",
    "log kwarg csrftoken", "log kwarg credentials", "log kwarg passphrase", "log kwarg auth",
    "log kwarg clientSecret", "log kwarg X-Api-Key", "log kwarg user redact key ssn", "bound logger token",
    "context value authorization", "namedtuple field password", "list of pairs Authorization",
    "tuple of pairs cookie", "dataclass field token", "attrs-style field api_key", "pydantic field secret",
    "set of URLs userinfo", "deque of URLs token", "nested dict in list private_key", "bytes with token",
    "message URL userinfo", "message query token", "message name=value password", "stdlib extra password",
    "stdlib %-arg query api_key", "stdlib message URL userinfo", "span start attribute password",
    "span set_attribute http.request.header.authorization", "span set_attribute http.request.header.cookie",
    "span set_attribute db.password", "span url.full userinfo", "span url.full token", "span url.query sig",
    "span http.url AWSAccessKeyId", "span http.target X-Goog-Signature", "span name query token",
    "span event attribute password", "span event url.full Signature", "span link attribute token",
    "metric label value URL token", "metric label named password", "histogram label value userinfo",
    "incoming FastAPI query token", "outgoing httpx query api_key", "outgoing requests query access_token",
    "outgoing requests userinfo", "internal error message userinfo", "internal error message query",
])}
C = CODE_CANARIES


class Creds(NamedTuple):
    user: str
    password: str


@dataclasses.dataclass
class Session:
    user: str
    token: str


class AttrsStyle:
    """What attrs generates: ``__attrs_attrs__`` naming the fields (attrs itself is not installed here)."""

    __attrs_attrs__ = (types.SimpleNamespace(name="user"), types.SimpleNamespace(name="api_key"))

    def __init__(self, user: str, api_key: str) -> None:
        self.user = user
        self.api_key = api_key


class Model(pydantic.BaseModel):
    user: str
    secret: str


class RaisesOnBoom(SpanProcessor):
    """A span processor whose failure message quotes a URL with credentials: obskit reports it on stderr."""

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == "boom":
            raise RuntimeError(f"cannot reach http://ops:{C['internal error message userinfo']}@collector/"
                               f"?token={C['internal error message query']}")


def _logs() -> None:
    log = obskit.get_logger("canary", token=C["bound logger token"])
    obskit.bind_context(authorization=C["context value authorization"])
    log.info(
        "keys",
        password=C["log kwarg password"], secret_key=C["log kwarg secret_key"],
        aws_secret_access_key=C["log kwarg aws_secret_access_key"], sessionid=C["log kwarg sessionid"],
        csrftoken=C["log kwarg csrftoken"], credentials=C["log kwarg credentials"],
        passphrase=C["log kwarg passphrase"], auth=C["log kwarg auth"],
        clientSecret=C["log kwarg clientSecret"],
        ssn=C["log kwarg user redact key ssn"], **{"X-Api-Key": C["log kwarg X-Api-Key"]},
    )
    obskit.clear_context()
    log.info(
        "containers",
        creds=Creds("ann", C["namedtuple field password"]),
        headers=[("Authorization", f"Bearer {C['list of pairs Authorization']}")],
        cookies=(("cookie", C["tuple of pairs cookie"]),),
        session=Session("ann", C["dataclass field token"]),
        key=AttrsStyle("ann", C["attrs-style field api_key"]),
        model=Model(user="ann", secret=C["pydantic field secret"]),
        urls={f"https://u:{C['set of URLs userinfo']}@example.com/"},
        queue=collections.deque([f"https://example.com/cb?token={C['deque of URLs token']}"]),
        items=[{"nested": {"private_key": C["nested dict in list private_key"]}}],
        raw=f"token={C['bytes with token']}".encode(),
    )
    log.warning(f"fetching https://bob:{C['message URL userinfo']}@db.example.com/x and "
                f"/cb?state=1&token={C['message query token']} "
                f"with password={C['message name=value password']}")
    std = logging.getLogger("canary.std")
    std.warning("login", extra={"password": C["stdlib extra password"]})
    std.warning("calling %s", f"https://api.example.com/v1?api_key={C['stdlib %-arg query api_key']}")
    std.error(f"dsn postgresql://app:{C['stdlib message URL userinfo']}@db/app")


def _spans() -> None:
    tracer = trace.get_tracer("canary")
    with obskit.span("linked") as target:
        pass
    link = trace.Link(target.get_span_context(), {"token": C["span link attribute token"]})
    with tracer.start_as_current_span(f"GET /cb?token={C['span name query token']}", links=[link]) as sp:
        sp.set_attribute("http.request.header.authorization", [C["span set_attribute http.request.header."
                                                                   "authorization"]])
        sp.set_attribute("http.request.header.cookie", [C["span set_attribute http.request.header.cookie"]])
        sp.set_attribute("db.password", C["span set_attribute db.password"])
        sp.set_attribute("url.full", f"https://u:{C['span url.full userinfo']}@h.example/p?token="
                                     f"{C['span url.full token']}&x=1")
        sp.set_attribute("url.query", f"sig={C['span url.query sig']}&x=1")
        sp.set_attribute("http.url",
                         f"https://s3.example/o?AWSAccessKeyId={C['span http.url AWSAccessKeyId']}")
        sp.set_attribute("http.target", f"/o?X-Goog-Signature={C['span http.target X-Goog-Signature']}")
        sp.add_event("login", {"password": C["span event attribute password"],
                               "url.full": f"https://h/p?Signature={C['span event url.full Signature']}"})
    with obskit.span("start", password=C["span start attribute password"]):
        pass
    with obskit.span("boom"):
        pass


def _metrics() -> None:
    calls = obskit.counter("canary_calls", "calls", labels=["url"])
    calls.inc(url=f"https://h/p?token={C['metric label value URL token']}")
    logins = obskit.counter("canary_logins", "logins", labels=["password"])
    logins.inc(password=C["metric label named password"])
    latency = obskit.histogram("canary_latency", "latency", labels=["target"], unit="seconds")
    latency.observe(0.1, target=f"https://u:{C['histogram label value userinfo']}@h/")


def _http_round_trip() -> None:
    app = FastAPI()

    @app.get("/items")
    def items() -> dict[str, str]:
        return {"ok": "yes"}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    httpx.get(f"{base}/items?token={C['incoming FastAPI query token']}", timeout=10)
    httpx.get(f"{base}/items?api_key={C['outgoing httpx query api_key']}", timeout=10)
    requests.get(f"{base}/items?access_token={C['outgoing requests query access_token']}", timeout=10)
    requests.get(f"http://u:{C['outgoing requests userinfo']}@127.0.0.1:{port}/items", timeout=10)
    server.should_exit = True
    thread.join(10)


def main(argv: Sequence[str]) -> int:
    tel = obskit.init(service_name="canary", log_format="json", metrics_port=0, redact=["ssn"],
                      integrations=["fastapi", "httpx", "requests"], span_processors=[RaisesOnBoom()])
    _logs()
    _spans()
    _metrics()
    _http_round_trip()
    port = tel._metrics.port if tel._metrics is not None else None
    scrape: Any = b""
    if port is not None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            scrape = resp.read()
    with open(argv[0], "wb") as f:
        f.write(scrape)
    tel.force_flush(10)
    obskit.shutdown(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
