"""Bad input, variable by variable: each bad value is reported naming the variable and what it accepts, has
no effect at all (the setting is what it would be without the variable), and raises ConfigError under strict.

Settings that can only be found unusable when used (a metrics port in use, an address that cannot be
bound) are driven through ``init()``; under strict nothing is left half set up.
"""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import obskit
from obskit._config import Config, resolve
from obskit._setup import integration_names

NOT_UTF8 = b"\xff\xfe".decode("utf-8", "surrogateescape")  # how undecodable environment bytes arrive

# variable -> (Config field it sets, words of the accepted values the message must quote, bad values)
TABLE: dict[str, tuple[str, str, list[str]]] = {
    "OBSKIT_EXPORT_TIMEOUT": ("export_timeout", "0.001 to 3600",
                              ["inf", "-inf", "nan", "0", "-1", "1e9", "x"]),
    "OTEL_EXPORTER_OTLP_TIMEOUT": ("export_timeout", "1 to 3600000", ["inf", "nan", "0", "1e12"]),
    "OTEL_METRIC_EXPORT_INTERVAL": ("metric_export_interval", "100 to 86400000",
                                    ["0.001", "1e16", "inf", "nan", "-5", "0", "soon"]),
    "OBSKIT_SERVICE_NAME": ("service_name", "valid UTF-8", [f"pay{NOT_UTF8}"]),
    "OTEL_SERVICE_NAME": ("service_name", "valid UTF-8", [f"pay{NOT_UTF8}"]),
    "OBSKIT_SERVICE_VERSION": ("service_version", "valid UTF-8", [f"1.{NOT_UTF8}"]),
    "OBSKIT_ENVIRONMENT": ("environment", "valid UTF-8", [f"prod{NOT_UTF8}"]),
    "OBSKIT_OTLP_HEADERS": ("otlp_headers", "no spaces, ASCII only",
                            ["bad key=1", "clé=1", "x=1,broken", "x=a%0Ab", "x=caf%C3%A9", "x=%FF", "=v",
                             f"x={NOT_UTF8}"]),
    "OTEL_EXPORTER_OTLP_HEADERS": ("otlp_headers", "no spaces, ASCII only",
                                   ["bad key=1", "ключ=1", "api-key-without-equals", "x=1,y"]),
    "OTEL_RESOURCE_ATTRIBUTES": ("resource_attributes", "key=value pairs", ["team=pay,broken", "k=%FF",
                                                                            f"k={NOT_UTF8}"]),
    "OBSKIT_METRICS_PORT": ("metrics_port", "0 to 65535", ["99999", "-1", "http", "8000.5"]),
    "OBSKIT_METRICS_ADDR": ("metrics_addr", "IP address or host name", ["not a host", "h/x", f"h{NOT_UTF8}"]),
    "OBSKIT_METRICS_MAX_LABEL_SETS": ("metrics_max_label_sets", "1 to 1000000", ["0", "-3", "1e16", "many"]),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otlp_endpoint", "URL", ["localhost:4317", "ftp://h", "http://",
                                                              "http://u:p@h:4317"]),
    "OTEL_EXPORTER_OTLP_COMPRESSION": ("otlp_compression", "'gzip', 'deflate' or 'none'", ["brotli"]),
    "OTEL_EXPORTER_OTLP_CERTIFICATE": ("otlp_certificate", "readable PEM file", ["/nonexistent/ca.pem"]),
    "OTEL_EXPORTER_OTLP_PROTOCOL": ("otlp_protocol", "'grpc' or 'http/protobuf'", ["pigeon"]),
    "OBSKIT_SAMPLE_RATIO": ("sample_ratio", "0.0 to 1.0", ["nan", "2", "inf"]),
    "OTEL_TRACES_SAMPLER_ARG": ("sample_ratio", "0.0 to 1.0", ["inf"]),
    "OBSKIT_LOG_LEVEL": ("log_level", "DEBUG, INFO", ["loud"]),
    "OBSKIT_LOG_FORMAT": ("log_format", "'json', 'console' or 'auto'", ["xml"]),
    "OBSKIT_INTEGRATIONS": ("integrations", "names from:", ["requests,nosuchthing", "REQUESTS2"]),
    "OBSKIT_REDACT_EXCEPTIONS": ("redact_exceptions", "true/false", ["perhaps"]),
    "OBSKIT_MULTIPROC_DIR": ("multiproc_dir", "directory this process can write to",
                             ["__A_FILE__/below-a-file", "__A_FILE__"]),
}
CASES = [(var, bad) for var, (_, _, values) in TABLE.items() for bad in values]
# Arguments of init() that have no variable.
ARG_CASES: list[tuple[str, Any, str]] = [
    ("log_stream", 42, "write() method"), ("log_stream", "stdout", "write() method"),
    ("redact_exceptions", "maybe", "true/false"), ("otlp_headers", {"bad key": "1"}, "no spaces"),
]
EXTRA = {"OTEL_TRACES_SAMPLER_ARG": {"OTEL_TRACES_SAMPLER": "traceidratio"}}
KNOWN = integration_names()


def _env(var: str, bad: str, tmp_path: Path) -> dict[str, str]:
    if bad.startswith("__A_FILE__"):  # a regular file, or a path below one: no directory can be made there
        (tmp_path / "a-file").write_text("")
        bad = bad.replace("__A_FILE__", str(tmp_path / "a-file"))
    return {var: bad, **EXTRA.get(var, {})}


def _resolve(args: dict[str, Any], env: dict[str, str]) -> Config:
    return resolve(args, env, integration_names=KNOWN)


def test_the_table_is_large() -> None:
    """The table drives every variable a review found lax, with 70 bad inputs in all (both modes each)."""
    assert len(CASES) + len(ARG_CASES) == 70


@pytest.mark.parametrize(("var", "bad"), CASES, ids=[f"{v}={b!r}" for v, b in CASES])
def test_bad_variable_warns_and_has_no_effect(var: str, bad: str, tmp_path: Path) -> None:
    """One warning naming the variable and the accepted values; the setting is as if it were unset."""
    field, accepted, _ = TABLE[var]
    env = _env(var, bad, tmp_path)
    config = _resolve({}, env)
    assert len(config.warnings) == 1, config.warnings
    assert var in config.warnings[0] and accepted in config.warnings[0], config.warnings[0]
    baseline = _resolve({}, {k: v for k, v in env.items() if k != var})
    assert getattr(config, field) == getattr(baseline, field)


@pytest.mark.parametrize(("var", "bad"), CASES, ids=[f"{v}={b!r}" for v, b in CASES])
def test_bad_variable_raises_under_strict(var: str, bad: str, tmp_path: Path) -> None:
    """Under OBSKIT_STRICT the same value raises ConfigError naming the variable and the accepted values."""
    _, accepted, _ = TABLE[var]
    with pytest.raises(obskit.ConfigError) as err:
        _resolve({}, {**_env(var, bad, tmp_path), "OBSKIT_STRICT": "1"})
    assert var in str(err.value) and accepted in str(err.value)


@pytest.mark.parametrize(("name", "bad", "accepted"), ARG_CASES, ids=[f"{n}={b!r}" for n, b, _ in ARG_CASES])
def test_bad_argument_warns_or_raises(name: str, bad: Any, accepted: str) -> None:
    """An init() argument is held to the same rule: warned about by name, or ConfigError under strict."""
    config = _resolve({name: bad}, {})
    assert len(config.warnings) == 1 and f"argument {name}" in config.warnings[0]
    assert accepted in config.warnings[0]
    assert getattr(config, name) == getattr(_resolve({}, {}), name)
    with pytest.raises(obskit.ConfigError, match=name):
        _resolve({name: bad, "strict": True}, {})


def test_bad_headers_are_not_sent_in_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rejected headers variable leaves no header at all, not even its well-formed entries."""
    config = _resolve({}, {"OTEL_EXPORTER_OTLP_HEADERS": "x-good=1,broken"})
    assert config.otlp_headers == {}


def test_unusable_multiprocess_directory_is_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The metrics layer ignores a directory init() rejects (it reads the same variable before init)."""
    from obskit._metrics import _multiprocess

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("OBSKIT_MULTIPROC_DIR", str(tmp_path / "a-file" / "metrics"))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert _multiprocess.env_directory() is None


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _obskit_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if type(h).__name__ == "ObskitHandler"]


@pytest.mark.parametrize("where", ["port in use", "address not of this machine"])
def test_metrics_server_that_cannot_bind(where: str, busy_port: int, fresh: None) -> None:
    """A port in use or an address that cannot be bound: an error line naming the variables and what they
    accept, /metrics not served; under strict, ConfigError and nothing left half set up."""
    kwargs: dict[str, Any] = {"metrics_port": busy_port} if where == "port in use" else {
        "metrics_port": 0, "env": {"OBSKIT_METRICS_ADDR": "192.0.2.1"}}
    stream = io.StringIO()
    tel = obskit.init(service_name="m", log_format="json", log_stream=stream, integrations="none", **kwargs)
    assert tel._metrics is not None and tel._metrics.server is None
    text = stream.getvalue()
    assert "OBSKIT_METRICS_PORT" in text and "OBSKIT_METRICS_ADDR" in text and "0 to 65535" in text
    obskit.shutdown()
    obskit.testing.reset()

    with pytest.raises(obskit.ConfigError, match="OBSKIT_METRICS_PORT"):
        obskit.init(service_name="m", log_stream=io.StringIO(), integrations="none", strict=True, **kwargs)
    from obskit import _setup

    assert _setup.current() is None and not _obskit_handlers()


def test_unknown_integration_at_init(fresh: None) -> None:
    """An unknown integration name is a bad value: warned about (naming the known ones) or raised."""
    stream = io.StringIO()
    tel = obskit.init(service_name="i", log_format="json", log_stream=stream, integrations=["nosuchthing"])
    assert "argument integrations" in stream.getvalue() and "requests" in stream.getvalue()
    assert tel.config.integrations == "auto"
    obskit.testing.reset()
    with pytest.raises(obskit.ConfigError, match=r"nosuchthing|integrations"):
        obskit.init(service_name="i", log_stream=io.StringIO(), integrations=["nosuchthing"], strict=True)
