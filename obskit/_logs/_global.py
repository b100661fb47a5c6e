"""The process-wide LoggerProvider obskit installs once, forwarding to the provider of the current ``init()``.

The same reason as the traces' forwarder: OpenTelemetry's global can be set once per process, and code
that logs through the OpenTelemetry logs API (``LoggingHandler``, instrumentations) must follow
``shutdown()`` then ``init()``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry._logs import Logger, LoggerProvider, NoOpLogger, get_logger_provider, set_logger_provider
from opentelemetry._logs._internal import ProxyLoggerProvider

__all__ = ["GlobalLoggerProvider", "point_to"]


class _ForwardingLogger(Logger):
    def __init__(self, owner: GlobalLoggerProvider, args: tuple[Any, ...]) -> None:
        self._owner = owner
        self._args = args
        self._generation = -1
        self._real: Logger = NoOpLogger(args[0])

    def _logger(self) -> Logger:
        owner = self._owner
        if self._generation != owner.generation:
            delegate = owner.delegate
            self._real = NoOpLogger(self._args[0]) if delegate is None else delegate.get_logger(*self._args)
            self._generation = owner.generation
        return self._real

    def emit(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self._logger().emit(*args, **kwargs)

    def enabled(self, *args: Any, **kwargs: Any) -> bool:  # type: ignore[override]
        return bool(self._logger().enabled(*args, **kwargs))


class GlobalLoggerProvider(LoggerProvider):
    """OpenTelemetry's global logger provider, as obskit installs it."""

    def __init__(self) -> None:
        self.delegate: LoggerProvider | None = None
        self.generation = 0

    def get_logger(self, name: str, version: str | None = None, schema_url: str | None = None,
                   attributes: Any = None) -> Logger:
        return _ForwardingLogger(self, (name, version, schema_url, attributes))

    def __getattr__(self, name: str) -> Any:
        delegate = self.__dict__.get("delegate")
        if delegate is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(delegate, name)


def point_to(provider: LoggerProvider | None) -> None:
    """Make ``provider`` the OpenTelemetry logs API's global, unless someone else installed theirs."""
    current = get_logger_provider()
    if isinstance(current, ProxyLoggerProvider):
        set_logger_provider(GlobalLoggerProvider())
        current = get_logger_provider()
    if isinstance(current, GlobalLoggerProvider):
        current.delegate = provider
        current.generation += 1


def release(provider: LoggerProvider) -> None:
    """After ``provider`` shut down: the global forwards to nothing until the next ``init()``."""
    current = get_logger_provider()
    if isinstance(current, GlobalLoggerProvider) and current.delegate is provider:
        point_to(None)
