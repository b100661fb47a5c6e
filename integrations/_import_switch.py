"""The switch for an HTTP client hook: :class:`~obskit.integrations._sql_switch.SqlSwitch`'s ``instrument`` /
``uninstrument`` / ``is_instrumented`` (the hook module imported on the first ``instrument``) with a ``setup``
that has no SQL settings to apply.

``init()`` never imports the library: the integration declares it as its ``module``, and the registry runs
``setup`` once the application has imported it (``integrations/_registry.py``).
"""

from __future__ import annotations

from obskit.integrations._contract import Teardown, load
from obskit.integrations._sql_switch import SqlSwitch

from obskit._config import Config

__all__ = ["SwitchOnImport"]


class SwitchOnImport(SqlSwitch):
    """``hook`` switched on for ``library`` (a module name), which the registry has seen imported."""

    def setup(self, config: Config) -> Teardown | None:
        """The integration's ``setup``, idempotent: None when it is on already (not obskit's to undo)."""
        load(self.library)
        return self.uninstrument if self.instrument() else None
