"""Logging: line shape, correlation, stdlib routing, context, redaction, tracebacks, never raising."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from obskit._config import resolve
from obskit._logs._api import (
    BoundLogger,
    bind_context,
    bound_context,
    clear_context,
    configure_logging,
    get_logger,
    unbind_context,
)
from obskit._logs._api import reset as reset_logging
from obskit._logs._stdlib import ObskitHandler
from obskit._runtime._redact import DEFAULT_KEYS

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    reset_logging()
    clear_context()
    yield
    reset_logging()
    clear_context()


@pytest.fixture
def tracer() -> Any:
    return TracerProvider().get_tracer("test")


def setup(stream: io.StringIO | None = None, **options: Any) -> io.StringIO:
    stream = stream if stream is not None else io.StringIO()
    args = {"log_format": "json", "log_stream": stream, "service_name": "checkout", **options}
    configure_logging(resolve(args, environ={}), logger_provider=None)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]


def our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, ObskitHandler)]


# --- JSON line shape -----------------------------------------------------------------------------------


def test_json_line_has_the_documented_fields_and_types() -> None:
    """One JSON object per line with ISO-8601 UTC timestamp, level, logger, event and service."""
    out = setup(service_version="1.2.3", environment="prod")
    get_logger("shop.api").info("order placed", order_id=7, total=12.5, ok=True)
    raw = out.getvalue()
    assert raw.count("\n") == 1 and raw.endswith("\n")
    (line,) = lines(out)
    assert ISO_UTC.match(line["timestamp"])
    assert line["level"] == "info"
    assert line["logger"] == "shop.api"
    assert line["event"] == "order placed"
    assert line["service"] == "checkout"
    assert line["service_version"] == "1.2.3"
    assert line["environment"] == "prod"
    assert (line["order_id"], line["total"], line["ok"]) == (7, 12.5, True)
    assert "trace_id" not in line and "span_id" not in line


def test_default_logger_name_is_the_calling_module() -> None:
    """get_logger() without a name is named after the module that called it."""
    out = setup()
    get_logger().info("hi")
    assert lines(out)[0]["logger"] == __name__


def test_a_field_named_like_a_base_key_does_not_replace_it() -> None:
    """The base keys stay authoritative even if a field shadows one."""
    out = setup()
    get_logger("a").info("real", logger="fake", timestamp="never")
    line = lines(out)[0]
    assert line["logger"] == "a" and ISO_UTC.match(line["timestamp"])


def test_level_filtering_and_positional_args() -> None:
    """Events below log_level are dropped; %-style positional args are interpolated."""
    out = setup(log_level="WARNING")
    log = get_logger("lvl")
    log.debug("no")
    log.info("no")
    log.warning("yes %s of %d", "one", 2)
    log.log(logging.ERROR, "also")
    assert [(x["level"], x["event"]) for x in lines(out)] == [("warning", "yes one of 2"), ("error", "also")]
    assert not log.is_enabled_for(logging.INFO) and log.isEnabledFor(logging.ERROR)


def test_unserialisable_values_are_rendered_as_text() -> None:
    """Objects orjson cannot encode, ints beyond 64 bits and non-string keys still give one valid line."""
    out = setup()

    class Thing:
        def __str__(self) -> str:
            return "thing!"

    get_logger("x").info("odd", obj=Thing(), big=2**80, keys={1: "a"}, tags={"b"})
    line = lines(out)[0]
    assert line["obj"] == "thing!" and line["big"] == str(2**80) and line["keys"] == {"1": "a"}
    assert line["tags"] == ["b"]


async def test_async_methods_log_inline() -> None:
    """The a-prefixed structlog methods log like their sync twins."""
    out = setup()
    await get_logger("a").ainfo("async hello", n=1)
    assert lines(out)[0]["event"] == "async hello"


# --- correlation ---------------------------------------------------------------------------------------


def test_trace_and_span_ids_match_the_active_span(tracer: Any) -> None:
    """Inside a span, structlog lines carry its trace_id (32 hex) and span_id (16 hex)."""
    out = setup()
    log = get_logger("t")
    with tracer.start_as_current_span("outer") as outer:
        log.info("in outer")
        with tracer.start_as_current_span("inner") as inner:
            log.info("in inner")
    log.info("outside")
    a, b, c = lines(out)
    octx, ictx = outer.get_span_context(), inner.get_span_context()
    assert a["trace_id"] == f"{octx.trace_id:032x}" and a["span_id"] == f"{octx.span_id:016x}"
    assert b["trace_id"] == a["trace_id"] and b["span_id"] == f"{ictx.span_id:016x}"
    assert re.fullmatch(r"[0-9a-f]{32}", a["trace_id"]) and re.fullmatch(r"[0-9a-f]{16}", b["span_id"])
    assert "trace_id" not in c


def test_stdlib_and_structlog_lines_are_both_correlated(tracer: Any) -> None:
    """A stdlib record and a structlog event in the same span render alike, with the same ids."""
    out = setup()
    with tracer.start_as_current_span("req") as span:
        get_logger("app").info("from structlog")
        logging.getLogger("app.db").info("from %s", "stdlib")
        logging.getLogger("urllib3.connectionpool").warning("retrying")
    sl, std, lib = lines(out)
    tid = f"{span.get_span_context().trace_id:032x}"
    assert sl["trace_id"] == std["trace_id"] == lib["trace_id"] == tid
    assert std["event"] == "from stdlib" and std["logger"] == "app.db" and std["service"] == "checkout"
    assert lib["level"] == "warning" and lib["logger"] == "urllib3.connectionpool"
    assert set(sl) == set(std)


# --- stdlib routing ------------------------------------------------------------------------------------


def test_stdlib_extra_fields_are_included_and_redacted() -> None:
    """extra={...} keys become fields; sensitive ones are redacted; uvicorn's ANSI copy is dropped."""
    out = setup()
    logging.getLogger("app").warning(
        "login", extra={"user": "ann", "password": "pw", "ctx": {"token": "t"}, "color_message": "\x1b[1m"}
    )
    line = lines(out)[0]
    assert line["user"] == "ann" and line["password"] == "[REDACTED]"
    assert line["ctx"] == {"token": "[REDACTED]"}
    assert "color_message" not in line


def test_extra_fields_survive_a_handler_that_formatted_the_record_first() -> None:
    """A file handler formatting the record before obskit's (adding message/asctime) loses no extra."""
    sink = io.StringIO()
    other = logging.StreamHandler(sink)  # not a console stream, so obskit keeps it
    other.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(other)
    try:
        out = setup()
        root.removeHandler(other)
        root.handlers.insert(0, other)  # runs before obskit's handler
        logging.getLogger("app").warning("formatted first", extra={"order": 7, "token": "t"})
    finally:
        root.removeHandler(other)
    (line,) = lines(out)
    assert line["order"] == 7 and line["token"] == "[REDACTED]" and "message" not in line
    assert "formatted first" in sink.getvalue()


def test_repeated_configure_never_duplicates_lines() -> None:
    """Configuring three times leaves one root handler and one line per record."""
    out = io.StringIO()
    for _ in range(3):
        setup(out)
    assert len(our_handlers()) == 1
    logging.getLogger("dup").warning("once")
    get_logger("dup").warning("once too")
    assert [x["event"] for x in lines(out)] == ["once", "once too"]


def test_server_loggers_lose_console_handlers_and_propagate() -> None:
    """uvicorn/gunicorn loggers' console handlers go, so their records print exactly once, through obskit."""
    access = logging.getLogger("uvicorn.access")
    console = logging.StreamHandler(sys.stderr)
    access.addHandler(console)
    access.propagate = False
    out = setup()
    assert console not in access.handlers and access.propagate
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/x", "1.1", 200)
    (line,) = lines(out)
    assert line["logger"] == "uvicorn.access" and line["status_code"] == 200 and line["path"] == "/x"
    reset_logging()
    assert console in access.handlers and not access.propagate
    access.removeHandler(console)
    access.propagate = True


def test_console_handlers_on_root_are_replaced_and_restored() -> None:
    """A basicConfig-style stderr handler is removed while obskit is configured, then put back."""
    root = logging.getLogger()
    prior = logging.StreamHandler(sys.stderr)
    root.addHandler(prior)
    level = root.level
    try:
        setup(log_level="DEBUG")
        assert prior not in root.handlers and root.level == logging.DEBUG
        reset_logging()
        assert prior in root.handlers and root.level == level and not our_handlers()
    finally:
        root.removeHandler(prior)


def test_uvicorn_reconfiguring_its_loggers_is_repaired() -> None:
    """uvicorn.Config.configure_logging after configure (as uvicorn.run does) is undone for its loggers."""
    import uvicorn.config

    out = setup()
    uvicorn.config.Config(app="x:y").configure_logging()  # dictConfig with uvicorn's console handlers
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
    assert [x["event"] for x in lines(out)] == ["Started server process [1]"]
    reset_logging()
    assert not getattr(uvicorn.config.Config.configure_logging, "__obskit_wrapped__", False)


def test_patch_on_import_runs_after_the_module_executes(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import finder calls back once the watched module has run, and leaves other imports alone."""
    from obskit._runtime._post_import import AfterImport

    (tmp_path / "obskit_fake_server.py").write_text("READY = True\n")
    (tmp_path / "obskit_other_mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[bool] = []
    finder = AfterImport(
        {"obskit_fake_server"}, lambda: seen.append(sys.modules["obskit_fake_server"].READY), "test"
    )
    sys.meta_path.insert(0, finder)
    try:
        import obskit_fake_server  # noqa: F401
        import obskit_other_mod  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
        sys.modules.pop("obskit_fake_server", None)
        sys.modules.pop("obskit_other_mod", None)
    assert seen == [True]


def test_gunicorn_logger_setup_is_adopted() -> None:
    """gunicorn's Logger gives its loggers handlers and propagate=False; they still print once via obskit."""
    import gunicorn.glogging
    from gunicorn.config import Config as GConfig

    out = setup()
    cfg = GConfig()
    cfg.set("accesslog", "-")
    glog = gunicorn.glogging.Logger(cfg)
    glog.error("worker %s booted", 7)
    assert logging.getLogger("gunicorn.error").propagate
    assert [x["event"] for x in lines(out)] == ["worker 7 booted"]
    reset_logging()
    for name in ("gunicorn.error", "gunicorn.access"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True


def test_structlog_stdlib_wrapped_event_dict_is_unpacked() -> None:
    """A structlog.stdlib logger wrapping its event dict for ProcessorFormatter prints once, as fields."""
    out = setup()
    std = structlog.wrap_logger(
        logging.getLogger("legacy"),
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    std.info("legacy event", k=1)
    (line,) = lines(out)
    assert (line["event"], line["k"], line["logger"]) == ("legacy event", 1, "legacy")


def test_logs_false_leaves_stdlib_alone() -> None:
    """With logs=False no root handler is installed and structlog is not configured."""
    setup(logs=False)
    assert not our_handlers() and not structlog.is_configured()


# --- pre-init and caching ------------------------------------------------------------------------------


def test_logger_used_before_init_follows_init(capsys: pytest.CaptureFixture[str]) -> None:
    """A logger created and used before configure prints sensibly, then follows configure's settings."""
    early = get_logger("early")
    early.info("before init")
    assert not our_handlers()
    pre = json.loads(capsys.readouterr().out)
    assert pre["event"] == "before init" and "service" not in pre
    out = setup(log_level="WARNING")
    early.info("filtered now")
    early.warning("after init")
    (line,) = lines(out)
    assert line["event"] == "after init" and line["service"] == "checkout"


def test_structlog_get_logger_cached_before_init_follows_init() -> None:
    """structlog.get_logger() (configured by obskit, cached on first use) follows a later configure."""
    first = setup(log_format="json")
    cached = structlog.get_logger("cached")
    cached.info("one")
    assert isinstance(structlog.get_config()["wrapper_class"](None, [], {}), BoundLogger)
    second = setup(log_format="json", log_level="ERROR", service_name="other")
    cached.info("dropped")
    cached.error("two")
    assert [x["event"] for x in lines(first)] == ["one"]
    assert [(x["event"], x["service"]) for x in lines(second)] == [("two", "other")]


def test_existing_structlog_configuration_is_respected() -> None:
    """An app that configured structlog itself keeps its configuration."""
    structlog.configure(processors=[structlog.processors.JSONRenderer()])
    try:
        setup()
        assert structlog.get_config()["wrapper_class"] is not BoundLogger
    finally:
        structlog.reset_defaults()


def test_default_stream_is_looked_up_at_write_time(capsys: pytest.CaptureFixture[str]) -> None:
    """Without log_stream, lines go to whatever sys.stdout is when the line is written."""
    configure_logging(resolve({"log_format": "json"}, environ={}), logger_provider=None)
    get_logger("s").info("to stdout")
    logging.getLogger("s").info("std to stdout")
    got = [json.loads(x)["event"] for x in capsys.readouterr().out.splitlines()]
    assert got == ["to stdout", "std to stdout"]


# --- console -------------------------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_format_is_readable_and_plain_off_a_tty() -> None:
    """log_format=console writes a human line with no ANSI colour codes when the stream is not a TTY."""
    out = setup(log_format="console")
    get_logger("c").info("hello world", user="ann")
    text = out.getvalue()
    assert "hello world" in text and "user=ann" in text and "\x1b[" not in text
    assert text.count("\n") == 1


def test_auto_picks_console_with_colour_on_a_tty_and_json_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto renders coloured console lines on a TTY and JSON elsewhere."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = setup(_Tty(), log_format="auto")
    get_logger("c").info("on a tty")
    assert "\x1b[" in tty.getvalue() and not tty.getvalue().startswith("{")
    pipe = setup(log_format="auto")
    get_logger("c").info("in a pipe")
    assert lines(pipe)[0]["event"] == "in a pipe"


# --- context -------------------------------------------------------------------------------------------


def test_bound_and_context_fields() -> None:
    """get_logger(**ctx), .bind(), bind_context, bound_context and unbind_context all reach the line."""
    out = setup()
    log = get_logger("ctx", component="billing").bind(tenant="t1")
    bind_context(request_id="r1")
    with bound_context(user="ann"):
        log.info("inside")
        logging.getLogger("std").info("std inside")
    unbind_context("request_id")
    log.info("after")
    inside, std_inside, after = lines(out)
    assert (inside["component"], inside["tenant"], inside["request_id"], inside["user"]) == (
        "billing",
        "t1",
        "r1",
        "ann",
    )
    assert std_inside["request_id"] == "r1" and std_inside["user"] == "ann"
    assert "request_id" not in after and "user" not in after and after["tenant"] == "t1"


async def test_context_never_leaks_between_concurrent_tasks() -> None:
    """Concurrent asyncio tasks each see only their own bound context."""
    out = setup()
    log = get_logger("tasks")

    async def handle(i: int) -> None:
        bind_context(request_id=f"req-{i}")
        for step in range(3):
            await asyncio.sleep(0)
            log.info("step", i=i, step=step)

    await asyncio.gather(*(handle(i) for i in range(20)))
    got = lines(out)
    assert len(got) == 60
    assert all(x["request_id"] == f"req-{x['i']}" for x in got)


def test_context_never_leaks_between_threads() -> None:
    """Threads binding different values concurrently each log only their own."""
    out = setup()
    log = get_logger("threads")
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        bind_context(worker=i)
        barrier.wait()
        for _ in range(5):
            log.info("tick", me=i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = lines(out)
    assert len(got) == 40 and all(x["worker"] == x["me"] for x in got)
    get_logger("main").info("main thread")
    assert "worker" not in lines(out)[-1]


# --- redaction -----------------------------------------------------------------------------------------


def test_redaction_default_keys_nested_and_user_keys() -> None:
    """Default sensitive keys, nested ones, list members and the user's redact keys are all masked."""
    out = setup(redact=["ssn"])
    bind_context(session="s-1")
    get_logger("r", Authorization="Bearer x").info(
        "req",
        password="p",
        db_password="p2",
        headers={"Set-Cookie": "c", "Accept": "json"},
        items=[{"credit_card": "4111"}],
        ssn="123",
        sessions_count=3,
    )
    line = lines(out)[0]
    for key in ("password", "db_password", "ssn", "Authorization", "session"):
        assert line[key] == "[REDACTED]", key
    assert line["headers"] == {"Set-Cookie": "[REDACTED]", "Accept": "json"}
    assert line["items"] == [{"credit_card": "[REDACTED]"}]
    assert line["sessions_count"] == 3


@pytest.mark.parametrize("key", DEFAULT_KEYS)
def test_every_default_key_is_redacted_any_case(key: str) -> None:
    """Each built-in sensitive key is masked, whatever its case, in structlog and stdlib lines."""
    out = setup()
    get_logger("r").info("k", **{key.upper(): "v1"})
    logging.getLogger("r").info("k", extra={key: "v2"})
    a, b = lines(out)
    assert a[key.upper()] == "[REDACTED]" and b[key] == "[REDACTED]"


def test_handler_filters_still_apply() -> None:
    """Filters added to obskit's root handler are honoured (it skips only the handler lock)."""
    out = setup()
    handler = our_handlers()[0]
    handler.addFilter(lambda r: r.name != "noisy")
    logging.getLogger("noisy").warning("dropped")
    logging.getLogger("fine").warning("kept")
    assert [x["event"] for x in lines(out)] == ["kept"]


# --- exceptions ----------------------------------------------------------------------------------------


def _fail() -> None:
    api_secret_local = "hunter2-local-value"  # noqa: F841 - must never appear in a log line
    raise ValueError("bad input")


def test_exception_is_a_structured_field_without_locals() -> None:
    """log.exception gives a structured exception field with frames, and never local variable values."""
    out = setup()
    try:
        _fail()
    except ValueError:
        get_logger("e").exception("failed")
    raw = out.getvalue()
    line = json.loads(raw)
    assert line["level"] == "error"
    (exc,) = line["exception"]
    assert exc["exc_type"] == "ValueError" and exc["exc_value"] == "bad input"
    assert any(f["name"] == "_fail" for f in exc["frames"])
    assert all("locals" not in f for f in exc["frames"])
    assert "hunter2-local-value" not in raw


def test_stdlib_exc_info_and_console_tracebacks_have_no_locals() -> None:
    """stdlib exc_info=True is structured too; the console traceback shows no locals either."""
    out = setup()
    try:
        _fail()
    except ValueError:
        logging.getLogger("std").error("std failed", exc_info=True)
    line = lines(out)[0]
    assert line["exception"][0]["exc_type"] == "ValueError"
    console = setup(log_format="console")
    try:
        _fail()
    except ValueError:
        get_logger("c").exception("console failed")
    assert "ValueError: bad input" in console.getvalue() and "hunter2-local-value" not in console.getvalue()


# --- never hurt the host app ---------------------------------------------------------------------------


class _Evil:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _BrokenStream(io.StringIO):
    def write(self, s: str) -> int:
        raise OSError("disk full")


def test_a_field_whose_str_and_repr_raise_does_not_raise(capfd: pytest.CaptureFixture[str]) -> None:
    """A value that cannot be printed never raises from log.info or logging.info."""
    out = setup()
    get_logger("e").info("evil", v=_Evil())
    logging.getLogger("e").info("evil std", extra={"v": _Evil()})
    got = lines(out)
    assert [x["event"] for x in got] == ["evil", "evil std"]
    assert got[0]["v"].startswith("<unprintable")


def test_console_renderer_failure_falls_back_to_a_line(capfd: pytest.CaptureFixture[str]) -> None:
    """When the renderer itself fails on a field, a minimal line is still written and nothing raises."""
    out = setup(log_format="console")
    get_logger("e").info("evil console", v=_Evil())
    assert "evil console" in out.getvalue()
    assert "internal error" in capfd.readouterr().err


def test_unprintable_stdlib_message_does_not_raise() -> None:
    """A record whose format string does not match its args still prints."""
    out = setup()
    # Handed to obskit's handler directly: pytest's own capture handler raises on such records.
    record = logging.getLogger("e").makeRecord("e", logging.INFO, __file__, 1, "needs %d", ("text",), None)
    our_handlers()[0].handle(record)
    assert "needs %d" in lines(out)[0]["event"]


def test_a_stream_whose_write_raises_does_not_raise(capfd: pytest.CaptureFixture[str]) -> None:
    """An OSError from the log stream is reported on stderr, not raised into the caller."""
    setup(_BrokenStream())
    get_logger("e").info("lost")
    logging.getLogger("e").warning("lost too")
    assert "disk full" in capfd.readouterr().err
