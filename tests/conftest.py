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
