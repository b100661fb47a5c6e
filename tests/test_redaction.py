"""The one redaction mechanism: key segments, the default list, containers, URLs in text, bounds, exceptions,
text that is not valid UTF-8, and obskit's own logging under a raising application handler."""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import logging
import types
from collections.abc import Iterator
from typing import Any, NamedTuple

import pydantic
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

import obskit
from obskit._config import resolve
from obskit._logs._api import configure_logging, get_logger
from obskit._logs._api import reset as reset_logging
from obskit._runtime._redact import DEFAULT_KEYS, REDACTED, Redactor
from obskit.testing import capture

R = Redactor()


@pytest.mark.parametrize("key", [
    "password", "PASSWORD", "db.password", "db_password", "http.request.header.authorization",
    "http.request.header.cookie", "http.response.header.set-cookie", "secret_key", "aws_secret_access_key",
    "aws_access_key_id", "sessionid", "session_id", "PHPSESSID", "connect.sid", "csrftoken", "X-CSRFToken",
    "XSRF-TOKEN", "credentials", "credential", "passphrase", "auth", "x_auth", "clientSecret", "apiKey",
    "X-Api-Key", "api_key", "private_key", "privateKey", "jwt", "refresh_token", "mysql_pwd", "ssn_number",
    "credit_card", "social_security", "x-forwarded-for", "Authorization", "bearer",
])
def test_sensitive_keys_match_by_any_segment(key: str) -> None:
    """A key matches when it, or a run of its dotted/underscored/hyphenated/camelCase segments, is listed."""
    assert R.is_sensitive(key), key


@pytest.mark.parametrize("key", ["sessions_count", "author", "authors", "user", "tokens_used", "input_tokens",
                                 "keyboard", "passage", "cookies_enabled", "lesson", "signature"])
def test_ordinary_keys_do_not_match(key: str) -> None:
    """Words that merely contain a listed name are not secrets (segments, not substrings)."""
    assert not R.is_sensitive(key), key


def test_default_list_is_the_union_of_sentry_and_logfire() -> None:
    """Every name sentry-sdk's and logfire's default scrubbers catch is caught here too."""
    sentry = ["password", "passwd", "secret", "api_key", "apikey", "auth", "credentials", "mysql_pwd",
              "privatekey", "private_key", "token", "session", "csrftoken", "sessionid", "x_csrftoken",
              "x_forwarded_for", "set_cookie", "cookie", "authorization", "x_api_key", "aiohttp_session",
              "connect.sid", "csrf_token", "csrf", "_csrf", "_csrf_token", "PHPSESSID", "_session", "symfony",
              "user_session", "_xsrf", "XSRF-TOKEN"]
    logfire = ["password", "passwd", "mysql_pwd", "secret", "auth", "credential", "private_key",
               "private.key", "api_key", "api-key", "session", "cookie", "social_security", "credit_card",
               "csrf", "xsrf", "jwt", "ssn"]
    missed = [k for k in sentry + logfire if not R.is_sensitive(k)]
    assert not missed, missed
    assert len(DEFAULT_KEYS) == len(set(DEFAULT_KEYS))


def test_user_keys_add_to_the_list_and_a_string_is_one_list() -> None:
    """redact=["pin"] adds a key; redact="ssn" means the key ssn, not the keys s and n."""
    assert Redactor(["pin"]).is_sensitive("card.pin")
    one = Redactor("ssn")
    assert one.is_sensitive("ssn") and not one.is_sensitive("s") and not one.is_sensitive("n")
    assert Redactor("ssn, pin").is_sensitive("pin")


def test_init_takes_a_string_of_redact_keys_as_one_list() -> None:
    """init(redact="ssn") redacts the key ssn and leaves the keys s and n alone."""
    with capture(redact="ssn") as cap:
        obskit.get_logger("r").info("x", ssn="078-05-1120", s="kept", n="kept")
        line = cap.logs[-1]
    assert (line["ssn"], line["s"], line["n"]) == (REDACTED, "kept", "kept")


class Creds(NamedTuple):
    user: str
    password: str


@dataclasses.dataclass
class Login:
    user: str
    passphrase: str


class AttrsLike:
    __attrs_attrs__ = (types.SimpleNamespace(name="user"), types.SimpleNamespace(name="token"))

    def __init__(self) -> None:
        self.user, self.token = "ann", "t-attrs"


class Model(pydantic.BaseModel):
    user: str
    api_key: str


def test_every_kind_of_container_is_walked() -> None:
    """Mappings, lists and tuples of pairs, named tuples, dataclasses, attrs and pydantic models, sets and
    deques: a secret inside any of them is redacted."""
    out = R.redact({
        "creds": Creds("ann", "pw"),
        "pairs": [("Authorization", "Bearer x"), ("Accept", "json")],
        "tuple_pairs": (("cookie", "c"),),
        "login": Login("ann", "pp"),
        "attrs": AttrsLike(),
        "model": Model(user="ann", api_key="k"),
        "set": {"https://u:p@h/"},
        "deque": collections.deque(["/cb?token=t"]),
        "deep": [{"a": {"private_key": "pk"}}],
        "plain": ("x", 1),
    })
    assert out["creds"] == Creds("ann", REDACTED)
    assert out["pairs"] == [("Authorization", REDACTED), ("Accept", "json")]
    assert out["tuple_pairs"] == (("cookie", REDACTED),)
    assert out["login"] == {"user": "ann", "passphrase": REDACTED}
    assert out["attrs"] == {"user": "ann", "token": REDACTED}
    assert out["model"] == {"user": "ann", "api_key": REDACTED}
    assert out["set"] == ["https://REDACTED:REDACTED@h/"]
    assert out["deque"] == ["/cb?token=REDACTED"]
    assert out["deep"] == [{"a": {"private_key": REDACTED}}]
    assert out["plain"] == ("x", 1)


def test_depth_and_size_are_bounded() -> None:
    """A cyclic value is cut at the depth bound, a huge one after a bounded number of values."""
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert "[TOO DEEP]" in json.dumps(R.redact_value(cyclic))
    huge = R.redact_value(["/x?token=t"] * 50_000)
    assert huge.count("[TRUNCATED]") > 0 and "/x?token=t" not in huge


@pytest.mark.parametrize(("text", "clean"), [
    ("https://user:pw@host/p", "https://REDACTED:REDACTED@host/p"),
    ("https://tok@github.com/x", "https://REDACTED:REDACTED@github.com/x"),
    ("redis://:p@ss@cache:6379/0", "redis://REDACTED:REDACTED@cache:6379/0"),
    ("GET /cb?state=1&token=abc HTTP/1.1", "GET /cb?state=1&token=REDACTED HTTP/1.1"),
    ("token=abc&x=1", "token=REDACTED&x=1"),
    ("https://s3/o?AWSAccessKeyId=A&Signature=S&x=1", "https://s3/o?AWSAccessKeyId=REDACTED&Signature=REDACTED&x=1"),
    ("/o?sig=s&X-Goog-Signature=g", "/o?sig=REDACTED&X-Goog-Signature=REDACTED"),
    ("login failed password=hunter2 for ann", "login failed password=REDACTED for ann"),
    ("/cb#access_token=t&scope=x", "/cb#access_token=REDACTED&scope=x"),
    ('{"u":"http://h/?api%5Fkey=k\\"x"}', '{"u":"http://h/?api%5Fkey=REDACTED\\"x"}'),
    ("mail ann@example.com, see https://h/a?b=c", "mail ann@example.com, see https://h/a?b=c"),
    ("x=1 y=2 author=bob", "x=1 y=2 author=bob"),
])
def test_urls_and_parameters_in_text(text: str, clean: str) -> None:
    """Userinfo and the values of sensitive (or signed-URL) parameters are replaced wherever they sit."""
    assert R.scrub_text(text) == clean


def test_exception_text_only_with_the_option() -> None:
    """Exception text is kept by default and scrubbed with redact_exceptions."""
    text = "connect to http://u:p@db failed"
    assert R.exception_text(text) == text
    scrubbed = Redactor(scrub_exceptions=True).exception_text(text)
    assert scrubbed == "connect to http://REDACTED:REDACTED@db failed"


def test_telemetry_own_exceptions_are_always_scrubbed() -> None:
    """An exception logged by the export machinery (an exporter quoting its URL) is scrubbed even without
    redact_exceptions; the application's own is not."""
    with capture() as cap:
        for name in ("opentelemetry.exporter.otlp", "obskit.metrics", "app"):
            try:
                raise ConnectionError("POST http://u:pw-in-url@collector/v1/traces?api_key=k-in-url failed")
            except ConnectionError:
                logging.getLogger(name).exception("export failed")
        lines = {e["logger"]: json.dumps(e) for e in cap.logs}
    for name in ("opentelemetry.exporter.otlp", "obskit.metrics"):
        assert "pw-in-url" not in lines[name] and "k-in-url" not in lines[name]
    assert "pw-in-url" in lines["app"]


def _raise() -> None:
    raise ConnectionError("cannot reach postgresql://app:pw-in-message@db/app?password=pw2")


@pytest.mark.parametrize("scrub", [False, True])
def test_exception_messages_in_lines_records_and_spans(scrub: bool) -> None:
    """Exception messages stay by default in log lines, OTLP records and span events; redact_exceptions
    scrubs them in all three with the same patterns."""
    with capture(redact_exceptions=scrub) as cap:
        try:
            _raise()
        except ConnectionError:
            obskit.get_logger("db").exception("query failed")
        with pytest.raises(ConnectionError), obskit.span("q"):
            _raise()
        line = json.dumps(cap.logs[-1])
        span = cap.span("q")
        event = json.dumps(dict(span.events[0].attributes or {}))
        status = span.status.description or ""
    for text in (line, event, status):
        assert ("pw-in-message" in text) is not scrub, text
        assert ("pw2" in text) is not scrub, text

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    reset_logging()
    try:
        configure_logging(resolve({"log_stream": io.StringIO(), "redact_exceptions": scrub}, {}),
                          logger_provider=provider)
        try:
            _raise()
        except ConnectionError:
            get_logger("db").exception("query failed")
        provider.force_flush()  # the record is built on the OTLP bridge's worker thread
        (record,) = [r.log_record for r in exporter.get_finished_logs()]
        attrs = dict(record.attributes or {})
    finally:
        reset_logging()
    assert ("pw-in-message" in attrs["exception.message"]) is not scrub
    assert ("pw-in-message" in attrs["exception.stacktrace"]) is not scrub


def test_lone_surrogates_keep_the_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A message or field holding undecodable bytes (lone surrogates) is still written, repaired."""
    bad = b"caf\xff".decode("utf-8", "surrogateescape")
    with capture() as cap:
        obskit.get_logger("s").info(f"name {bad}", field=bad)
        logging.getLogger("s.std").warning("std %s", bad)
        logs = cap.logs
    assert [(e["event"], e.get("field")) for e in logs[-2:]] == [("name caf\ufffd", "caf\ufffd"),
                                                                ("std caf\ufffd", None)]


def test_lone_surrogate_label_does_not_break_later_scrapes() -> None:
    """A label value with a lone surrogate is repaired, so every later scrape and push still works."""
    from prometheus_client import REGISTRY, generate_latest

    from obskit._metrics import _instruments
    from obskit._metrics._otlp import snapshot
    from obskit._runtime._resource import build_resource

    bad = b"x\xff".decode("utf-8", "surrogateescape")
    c = obskit.counter("surrogate_label_calls", labels=["path"])
    c.inc(path=bad)
    c.inc(path="ok")
    for _ in range(2):
        body = generate_latest(REGISTRY).decode()
        assert 'path="x\ufffd"' in body and 'path="ok"' in body
    data = snapshot(_instruments.instruments(), build_resource(resolve({}, {})))
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    assert encode_metrics(data).SerializeToString()


def test_metric_label_named_like_a_secret_is_redacted() -> None:
    """A label named like a secret exposes [REDACTED]; a URL label value loses its token."""
    from prometheus_client import REGISTRY, generate_latest

    logins = obskit.counter("redaction_logins", labels=["password"])
    logins.inc(password="hunter2")
    calls = obskit.counter("redaction_calls", labels=["url"])
    calls.inc(url="https://h/p?token=t0k")
    body = generate_latest(REGISTRY).decode()
    assert "hunter2" not in body and 'password="[REDACTED]"' in body
    assert "t0k" not in body and 'url="https://h/p?token=REDACTED"' in body


class _Raising(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("the application's handler is broken")

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        self.emit(record)
        return True


@pytest.fixture
def raising_root_handler(fresh: None) -> Iterator[None]:
    handler = _Raising()
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)


def test_raising_root_handler_never_makes_init_or_a_metric_call_raise(raising_root_handler: None) -> None:
    """init() warning about a bad value, and a metric call logging its dropped observation, do not raise."""
    tel = obskit.init(service_name="h", sample_ratio="often", log_stream=io.StringIO(),  # type: ignore[arg-type]
                      integrations="none")
    assert tel.config.warnings
    c = obskit.counter("raising_handler_calls", labels=["a"])
    c.inc(b="wrong")
    c.inc(float("nan"), a="x")
    obskit.histogram("raising_handler_latency").observe(float("nan"))
