"""Configuration: precedence, the OTel variables, bad values, strict mode, and the docs kept in step."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import obskit
from obskit._config import INIT_ARGS, OPTIONS, resolve

DOCS = Path(__file__).parent.parent / "docs" / "configuration.md"


def test_precedence_argument_then_obskit_then_otel_then_default() -> None:
    """An argument beats OBSKIT_*, which beats OTEL_*, which beats the default."""
    env = {"OBSKIT_SERVICE_NAME": "from-obskit", "OTEL_SERVICE_NAME": "from-otel"}
    assert resolve({"service_name": "from-arg"}, env).service_name == "from-arg"
    assert resolve({}, env).service_name == "from-obskit"
    assert resolve({}, {"OTEL_SERVICE_NAME": "from-otel"}).service_name == "from-otel"
    assert resolve({}, {}).service_name.startswith("unknown_service")


def test_resource_attributes_fill_service_fields() -> None:
    """OTEL_RESOURCE_ATTRIBUTES supplies name, version and environment when nothing else does."""
    env = {"OTEL_RESOURCE_ATTRIBUTES":
           "service.name=pay,service.version=1.2,deployment.environment=prod,team=x"}
    c = resolve({}, env)
    assert (c.service_name, c.service_version, c.environment) == ("pay", "1.2", "prod")
    assert c.resource_attributes["team"] == "x"


def test_endpoint_per_signal_and_protocol() -> None:
    """The base URL gets /v1/<signal> for HTTP; per-signal variables are used as is."""
    c = resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4318",
                     "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9999/custom"})
    assert c.otlp_protocol == "http/protobuf"  # inferred from port 4318
    assert c.endpoint_for("traces") == "http://col:4318/v1/traces"
    assert c.endpoint_for("metrics") == "http://col:4318/v1/metrics"
    assert c.endpoint_for("logs") == "http://logs:9999/custom"
    g = resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4317"})
    assert g.otlp_protocol == "grpc" and g.endpoint_for("traces") == "http://col:4317"
    h = resolve({"otlp_protocol": "http/protobuf"}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4317"})
    assert h.endpoint_for("traces") == "http://col:4317/v1/traces"


def test_endpoint_argument_beats_per_signal_variables() -> None:
    """An endpoint passed in code is used for every signal."""
    c = resolve({"otlp_endpoint": "http://mine:4317"}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x:1"})
    assert c.endpoint_for("traces") == "http://mine:4317"


def test_no_endpoint_means_no_export() -> None:
    """Without an endpoint no signal is exported and nothing complains."""
    c = resolve({}, {})
    assert not any(c.exports(s) for s in ("traces", "logs", "metrics"))
    assert c.warnings == ()


def test_otel_timeout_is_milliseconds() -> None:
    """OTEL_EXPORTER_OTLP_TIMEOUT is read as the spec says (ms), unlike the Python exporters."""
    assert resolve({}, {"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}).export_timeout == 2.5
    both = {"OBSKIT_EXPORT_TIMEOUT": "3", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}
    assert resolve({}, both).export_timeout == 3.0


@pytest.mark.parametrize(
    ("env", "ratio", "parent_based"),
    [
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, 0.25, True),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, 0.5, False),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, 0.0, False),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, 1.0, True),
        ({"OBSKIT_SAMPLE_RATIO": "0.1", "OTEL_TRACES_SAMPLER": "always_off"}, 0.1, True),
        ({}, 1.0, True),
    ],
)
def test_sampler_variables(env: dict[str, str], ratio: float, parent_based: bool) -> None:
    """OTEL_TRACES_SAMPLER/_ARG map to a ratio; obskit's own ratio wins."""
    c = resolve({}, env)
    assert (c.sample_ratio, c.parent_based) == (ratio, parent_based)


@pytest.mark.parametrize(
    ("env", "names", "accepted"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "pigeon"}, "OTEL_EXPORTER_OTLP_PROTOCOL", "'grpc' or 'http/"),
        ({"OBSKIT_SAMPLE_RATIO": "lots"}, "OBSKIT_SAMPLE_RATIO", "0.0 to 1.0"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "http:// or "),
        ({"OBSKIT_LOG_FORMAT": "xml"}, "OBSKIT_LOG_FORMAT", "'json', 'console' or 'auto'"),
        ({"OBSKIT_METRICS_PORT": "99999"}, "OBSKIT_METRICS_PORT", "0 to 65535"),
    ],
)
def test_bad_value_warns_with_name_and_accepted_values(
    env: dict[str, str], names: str, accepted: str
) -> None:
    """A bad value is reported naming the variable and what it accepts, and the default is used."""
    c = resolve({}, env)
    assert len(c.warnings) == 1
    assert names in c.warnings[0] and accepted in c.warnings[0]


def test_bad_headers_never_echo_the_secret() -> None:
    """A malformed headers variable is reported without its value."""
    c = resolve({}, {"OTEL_EXPORTER_OTLP_HEADERS": "api-key-without-equals-sk_live_123"})
    assert "OTEL_EXPORTER_OTLP_HEADERS" in c.warnings[0]
    assert "sk_live_123" not in c.warnings[0]
    assert c.otlp_headers == {}


def test_bad_url_with_credentials_is_not_echoed() -> None:
    """URLs can carry credentials, so a bad one is not repeated in the message."""
    c = resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://user:hunter2@host"})
    assert "hunter2" not in c.warnings[0]


def test_bad_obskit_value_falls_back_to_otel_variable() -> None:
    """A source that fails to parse is skipped in favour of the next one."""
    c = resolve({}, {"OBSKIT_OTLP_PROTOCOL": "nope", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert c.otlp_protocol == "http/protobuf"
    assert "next source" in c.warnings[0]


def test_strict_raises_config_error() -> None:
    """Under strict (argument or OBSKIT_STRICT) a bad value raises ConfigError naming the variable."""
    with pytest.raises(obskit.ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        resolve({"strict": True}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "smoke-signals"})
    with pytest.raises(obskit.ConfigError, match="sample_ratio"):
        resolve({"sample_ratio": 2}, {"OBSKIT_STRICT": "1"})


def test_repr_masks_headers_and_credentials() -> None:
    """Secrets never show in the Config repr."""
    c = resolve({"otlp_headers": {"Authorization": "Bearer sk_live_abc"},
                 "otlp_endpoint": "https://user:pw123@collector:4318"}, {})
    text = repr(c)
    assert "sk_live_abc" not in text and "pw123" not in text
    assert "authorization" in text


def test_headers_parse_url_encoded_pairs() -> None:
    """OTEL_EXPORTER_OTLP_HEADERS is comma-separated, URL-encoded key=value pairs."""
    c = resolve({}, {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%3Db,x-team=pay"})
    assert c.otlp_headers == {"api-key": "a=b", "x-team": "pay"}


def test_init_signature_matches_the_table() -> None:
    """Every init() keyword is a table option or a declared seam; every init-able option is a keyword."""
    import inspect

    from obskit._setup import SEAMS

    params = set(inspect.signature(obskit.init).parameters)
    assert params == set(INIT_ARGS) | set(SEAMS)


def test_docs_list_every_option_and_variable() -> None:
    """docs/configuration.md names every option and every environment variable in the table."""
    text = DOCS.read_text()
    for opt in OPTIONS:
        assert f"`{opt.name}`" in text, f"docs/configuration.md lacks option {opt.name}"
        for var in opt.variables:
            assert f"`{var}`" in text, f"docs/configuration.md lacks variable {var}"
    documented_vars = set(re.findall(r"`((?:OBSKIT|OTEL|PROMETHEUS)_[A-Z_]+)`", text))
    known = {v for o in OPTIONS for v in o.variables} | {"OBSKIT_DEBUG"}
    assert documented_vars <= known, f"docs mention unknown variables: {documented_vars - known}"


# Defaults the table shows in the unit the variable is written in.
_SHOWN_DEFAULTS = {"export_timeout": "10 s", "metric_export_interval": "60000 ms", "log_level": "INFO",
                   "excluded_paths": "/metrics,/health,/healthz,/ready"}


def _doc_row(opt: Any) -> str:
    where = "`init()` and env" if opt.arg else "env only"
    variables = ", ".join(f"`{v}`" for v in opt.variables) or "—"
    default = _SHOWN_DEFAULTS.get(opt.name) or ("—" if opt.default in (None, {}, ()) else str(opt.default))
    return f"| `{opt.name}` | {where} | {variables} | {opt.accepted} | {default} | {opt.doc} |"


def test_docs_table_is_the_options_table() -> None:
    """The table in docs/configuration.md is rendered from OPTIONS, row for row (accepted values, defaults,
    meanings included); regenerate it with the rows this test renders when an option changes."""
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| `")]
    assert rows == [_doc_row(opt) for opt in OPTIONS]


def test_bad_value_at_init_warns_and_app_keeps_running(
    fresh: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """init() with a bad value still starts, and the warning reaches the log output."""
    import io

    stream = io.StringIO()
    tel = obskit.init(service_name="svc", sample_ratio="often", log_format="json",  # type: ignore[arg-type]
                      log_stream=stream, integrations="none")
    assert tel.config.sample_ratio == 1.0
    out = stream.getvalue() + capsys.readouterr().out
    assert "sample_ratio" in out and "0.0 to 1.0" in out
