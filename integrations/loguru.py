"""``loguru``: records written with loguru go through obskit's log pipeline, like stdlib and structlog lines:
JSON or console as configured, redacted, with the current span's ``trace_id``/``span_id``, exported over
OTLP when logs are, and printed exactly once. ``obskit.init()`` switches it on.

How: one loguru sink hands each record to the pipeline (level, logger = the module that logged, message,
``bind()``/``contextualize()`` extras as fields, the exception), and loguru's default stderr sink (id 0) is
removed, since it would print every line a second time in loguru's own format. Sinks the application added
itself are left alone. Switching off removes the sink and puts a stderr sink back if obskit removed it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from typing import Any

from obskit.integrations._contract import DidNotEnable, Integration, Teardown, load

from obskit._config import Config
from obskit._logs._pipeline import context_fields, normalize_exc_info, process

__all__ = ["INTEGRATION"]

# loguru's levels that stdlib does not have, mapped to the stdlib level just below (the name is kept in a
# field so that nothing is lost): TRACE (5) -> DEBUG, SUCCESS (25) -> INFO.
_STDLIB = (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)
_STANDARD_NAMES = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})

_lock = threading.Lock()
_sink_id: int | None = None
_stderr_id = 0  # loguru's default sink; after obskit puts it back on teardown, the id it got then


def _stdlib_level(no: int) -> int:
    for level in _STDLIB:
        if no >= level:
            return level
    return logging.DEBUG


def _sink(message: Any) -> None:
    """One loguru record into obskit's pipeline (which never raises)."""
    record = message.record
    fields = context_fields()
    extra = record["extra"]
    if extra:
        fields.update(extra)
    level = record["level"]
    if level.name not in _STANDARD_NAMES:
        fields["loguru_level"] = level.name
    exception = record["exception"]
    exc_info = normalize_exc_info(tuple(exception)) if exception is not None else None
    process(_stdlib_level(level.no), record["name"] or "loguru", record["message"], fields, exc_info,
            record["time"].timestamp())


def _setup(config: Config) -> Teardown | None:
    global _sink_id, _stderr_id
    if not config.logs:
        raise DidNotEnable("obskit does not handle logs here (logs=False): loguru keeps its own sinks")
    loguru = load("loguru")
    logger = loguru.logger
    with _lock:
        if _sink_id is not None:
            return None
        # format="{message}": the sink reads the record, not loguru's rendering; catch=False because the
        # pipeline never raises, and loguru's catch would print to stderr, past obskit.
        sink_id = logger.add(_sink, level=config.log_level, format="{message}", catch=False)
        try:
            logger.remove(_stderr_id)
            removed_stderr = True
        except ValueError:
            removed_stderr = False  # the application removed it already
        _sink_id = sink_id

    def teardown() -> None:
        global _sink_id, _stderr_id
        with _lock:
            if _sink_id is None:
                return
            # The application may have removed it (logger.remove() with no argument removes every sink).
            with contextlib.suppress(ValueError):
                logger.remove(_sink_id)
            _sink_id = None
            if removed_stderr:
                _stderr_id = logger.add(sys.stderr)

    return teardown


INTEGRATION = Integration(
    name="loguru",
    module="loguru",
    extra="loguru",
    requires={"loguru": "0.7"},
    setup=_setup,
)
