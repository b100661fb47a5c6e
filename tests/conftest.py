"""Shared fixtures: a clean obskit per test, loopback OTLP receivers, and CI's rule that nothing skips."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from otlp_receiver import OTLPReceiver

from obskit.testing import reset

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when a local prerequisite is missing, but fail under CI=true: CI must run everything."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI prerequisite missing: {reason}")
        pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a skipped test is a failed test: CI has every service and package; a skip hides a gap."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """The same for a module skipped at import (``pytest.importorskip`` at module level)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {report.longrepr}"


@pytest.fixture
def fresh() -> Iterator[None]:
    """obskit (and the OTel globals it sets) reset before and after the test."""
    reset()
    yield
    reset()


@pytest.fixture(params=["grpc", "http"])
def receiver(request: pytest.FixtureRequest) -> Iterator[OTLPReceiver]:
    """A healthy loopback collector, once per OTLP transport."""
    with OTLPReceiver(request.param) as rx:
        yield rx


@pytest.fixture
def events() -> Iterator[list[Any]]:
    """Every resilience event (frozen dataclasses from obskit._resilience._events) emitted during the test."""
    from obskit._resilience import add_sink, remove_sink

    got: list[Any] = []
    sink = got.append
    add_sink(sink)
    yield got
    remove_sink(sink)


def protocol_of(rx: OTLPReceiver) -> str:
    return "grpc" if rx.protocol == "grpc" else "http/protobuf"
