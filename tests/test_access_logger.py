"""Servers' access lines take a direct path to the pipeline when nothing but obskit would see their record.

uvicorn and gunicorn call ``logging.getLogger("uvicorn.access").info(msg, *args)`` once per request.
``AccessLogger`` writes that line without a ``LogRecord`` when obskit's root handler is the only handler it
would reach; every test here compares the direct line with the line the stdlib path writes for the same
call, and checks that each condition the direct path cannot honour sends the call down the stdlib path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import obskit
from obskit._logs._stdlib import AccessLogger, ObskitHandler
from obskit.testing import Capture, capture

MP = pytest.MonkeyPatch
UVICORN = ('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", "/items/1?q=2", "1.1", 200))
GUNICORN = ('%(h)s "%(r)s" %(s)s', ({"h": "127.0.0.1", "r": "GET /items/1 HTTP/1.1", "s": "200",
                                     "U": "/items/1"},))


@pytest.fixture
def cap(monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    """obskit capturing; call :func:`_alone` in the test to take pytest's own capture handlers off the root
    logger (pytest adds them around the test's body; they would take every record down the stdlib path, as
    any other handler does)."""
    with capture() as c:
        yield c


def _alone(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [h for h in root.handlers if isinstance(h, ObskitHandler)])


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the loggers a LogRecord was made for (the stdlib path makes one; the direct one none)."""
    made: list[str] = []
    original = logging.Logger.makeRecord

    def counting(self: logging.Logger, name: str, *args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(logging.Logger, "makeRecord", counting)
    return made


def _lines(cap: Capture) -> list[dict[str, Any]]:
    out = []
    for line in cap.logs:
        line = dict(line)
        line.pop("timestamp")
        out.append(line)
    return out


def _both_ways(cap: Capture, name: str, msg: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    lg = logging.getLogger(name)
    assert type(lg) is AccessLogger
    with obskit.span("request"):
        lg.info(msg, *args)
        lg.__class__ = logging.Logger
        try:
            lg.info(msg, *args)
        finally:
            lg.__class__ = AccessLogger
    return _lines(cap)


@pytest.mark.parametrize(("name", "call"), [("uvicorn.access", UVICORN), ("gunicorn.access", GUNICORN)])
def test_direct_line_is_the_stdlib_line(cap: Capture, monkeypatch: MP, records: list[str], name: str,
                                        call: tuple[str, tuple[Any, ...]]) -> None:
    """uvicorn's five arguments and gunicorn's atoms mapping: the direct line equals the stdlib path's line
    field for field (trace ids, uvicorn's fields, bound context), and the direct call made no record."""
    _alone(monkeypatch)
    obskit.bind_context(request_id="r-1")
    try:
        direct, stdlib = _both_ways(cap, name, *call)
    finally:
        obskit.clear_context()
    assert direct == stdlib
    assert direct["trace_id"] and direct["request_id"] == "r-1" and direct["logger"] == name
    if name == "uvicorn.access":
        assert direct["event"] == '127.0.0.1:5000 - "GET /items/1?q=2 HTTP/1.1" 200'
        assert direct["status_code"] == 200 and direct["path"] == "/items/1?q=2"
    assert records == [name]  # only the stdlib call made one


def test_another_handler_on_the_way_gets_its_record(cap: Capture, monkeypatch: MP,
                                                    records: list[str]) -> None:
    """A handler of the user's on the access logger (or on the root) still gets the record, and obskit
    prints the line once."""
    _alone(monkeypatch)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    lg = logging.getLogger("uvicorn.access")
    keep = Keep()
    lg.addHandler(keep)
    try:
        lg.info(*UVICORN[:1], *UVICORN[1])
    finally:
        lg.removeHandler(keep)
    assert len(seen) == 1 and records == ["uvicorn.access"]
    assert [line["event"] for line in cap.logs] == ['127.0.0.1:5000 - "GET /items/1?q=2 HTTP/1.1" 200']


def test_keyword_arguments_and_undecidable_filters_take_the_stdlib_path(cap: Capture, monkeypatch: MP,
                                                                        records: list[str]) -> None:
    """``extra=...`` reaches the line as fields; a filter of the user's (no ``keeps_info``) runs on a
    record and can drop the line."""
    _alone(monkeypatch)
    lg = logging.getLogger("uvicorn.access")
    lg.info("with extra", extra={"tenant": "t1"})

    class DropAll(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return False

    drop = DropAll()
    lg.addFilter(drop)
    try:
        lg.info(*UVICORN[:1], *UVICORN[1])
    finally:
        lg.removeFilter(drop)
    assert [(line["event"], line.get("tenant")) for line in cap.logs] == [("with extra", "t1")]
    assert records == ["uvicorn.access", "uvicorn.access"]


def test_excluded_path_is_still_demoted_and_a_bad_format_still_logged(cap: Capture, monkeypatch: MP,
                                                                      records: list[str]) -> None:
    """The access filter's ``keeps_info`` sends an excluded path (``/healthz``) down the stdlib path, where
    it becomes DEBUG (not printed at INFO); a message that does not format is written as the stdlib path
    writes it."""
    _alone(monkeypatch)
    from obskit.integrations import _http_server

    _http_server.quiet_access_lines()
    lg = logging.getLogger("uvicorn.access")
    lg.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/healthz", "1.1", 200)
    assert cap.logs == []
    lg.info("%d requests", "not a number")
    (line,) = cap.logs
    assert "not a number" in line["event"]
    assert records == ["uvicorn.access", "uvicorn.access"]


def test_logger_class_is_restored_by_reset() -> None:
    """``reset()`` gives the server loggers back their stdlib class."""
    with capture():
        assert type(logging.getLogger("uvicorn.access")) is AccessLogger
    assert type(logging.getLogger("uvicorn.access")) is logging.Logger
    assert type(logging.getLogger("gunicorn.access")) is logging.Logger


def test_a_custom_logger_class_is_left_alone() -> None:
    """A logger of another class (a user's ``setLoggerClass``) is never replaced."""

    class Mine(logging.Logger):
        pass

    lg = logging.getLogger("hypercorn.access")
    original = lg.__class__
    lg.__class__ = Mine
    try:
        with capture():
            assert type(logging.getLogger("hypercorn.access")) is Mine
    finally:
        lg.__class__ = original


def test_line_json_is_parseable_once_per_call(cap: Capture, monkeypatch: MP) -> None:
    """Each direct call writes exactly one JSON line."""
    _alone(monkeypatch)
    lg = logging.getLogger("uvicorn.access")
    for _ in range(3):
        lg.info(*UVICORN[:1], *UVICORN[1])
    text = cap._stream.getvalue() if hasattr(cap, "_stream") else ""
    assert len(cap.logs) == 3
    for raw in filter(None, text.splitlines()):
        json.loads(raw)
