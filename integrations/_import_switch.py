"""The switch for a hook that waits for its library: on when the application imports it, never by ``init()``.

:class:`~obskit.integrations._sql_switch.SqlSwitch`'s ``instrument`` / ``uninstrument`` / ``is_instrumented``
(the hook module imported on the first ``instrument``), with a ``setup`` that patches at once when the library
is imported already and otherwise waits for its import (:class:`HookWhenImported`), instead of importing it:
``init()`` under ``"auto"`` must not cost every service that merely has urllib3 installed an import.
"""

from __future__ import annotations

from obskit.integrations._contract import Teardown
from obskit.integrations._import_hook import HookWhenImported
from obskit.integrations._sql_switch import SqlSwitch

from obskit._config import Config

__all__ = ["SwitchOnImport"]


class SwitchOnImport(SqlSwitch):
    """``hook`` switched on once ``library`` (a module name) is imported."""

    def __init__(self, library: str, hook: str) -> None:
        super().__init__(library, hook)
        self._when = HookWhenImported((library,), self.instrument, self.uninstrument)

    def setup(self, config: Config) -> Teardown | None:
        """The integration's ``setup``, idempotent: None when it is on already (not obskit's to undo)."""
        return self._when.setup()
