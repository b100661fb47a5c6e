"""Traces: the TracerProvider obskit installs (or joins), ``span()``/``@traced``, and redaction on export.

- ``_provider``: sampler, provider, span processors, the handle ``shutdown()`` undoes.
- ``_span``: ``span()`` and ``@traced``, the hot path.
- ``_redaction``: scrubbing sensitive attributes on the export thread.

May import: ``obskit._config``, ``obskit._errors``, ``obskit._runtime``. Never the other signal packages.
"""
