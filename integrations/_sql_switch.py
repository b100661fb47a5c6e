"""The on/off switch every SQL integration shares: tracing lives in a private hook module, imported only when
switched on, and the public module exposes ``instrument``, ``uninstrument`` and ``is_instrumented``.

One class rather than the same four functions written out in each of psycopg, psycopg2, pymysql, asyncpg and
sqlalchemy: they differed only in the library and hook names.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from obskit.integrations._contract import DidNotEnable, Teardown, load

from obskit._config import Config

__all__ = ["SqlSwitch"]


class SqlSwitch:
    """Switches ``hook`` (a module with instrument/uninstrument/is_instrumented) on for ``library``.

    ``missing`` replaces the import error when the library cannot be imported (psycopg2 ships under two
    distribution names, so the message says which to install).
    """

    def __init__(self, library: str, hook: str, missing: str | None = None) -> None:
        self.library = library
        self.hook = hook
        self.missing = missing

    def instrument(self, *args: Any) -> bool:
        """Trace from now on; False (and nothing done) if already instrumented."""
        return bool(importlib.import_module(self.hook).instrument(*args))

    def uninstrument(self) -> None:
        """Stop tracing (connections and engines keep working)."""
        hook = sys.modules.get(self.hook)
        if hook is not None:
            hook.uninstrument()

    def is_instrumented(self) -> bool:
        """Whether :meth:`instrument` is in effect."""
        hook = sys.modules.get(self.hook)
        return hook is not None and bool(hook.is_instrumented())

    def setup(self, config: Config) -> Teardown | None:
        """The integration's ``setup``: the library must import; literals kept only if configured."""
        try:
            load(self.library)
        except DidNotEnable:
            if self.missing is None:
                raise
            raise DidNotEnable(self.missing) from None
        load(self.hook)
        # Imported here: the registry imports this module (through asyncpg's, urllib's and urllib3's) in
        # every init(), and _sql compiles its statement scanner when imported.
        from obskit.integrations._sql import set_keep_literals

        set_keep_literals(config.db_query_literals)
        return self.uninstrument if self.instrument() else None
