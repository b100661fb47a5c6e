"""Start-up: ``init()`` under ``integrations="auto"`` imports no library the application has not imported;
each integration switches on when the application imports its library, before or after ``init()``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from obskit.integrations import _registry

DEFERRED = sorted((n, i.module) for n, i in _registry.integrations().items() if i.module is not None)


def _run(code: str) -> dict[str, object]:
    env_code = textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "OBSKIT_LOG_LEVEL": "WARNING"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_auto_init_imports_no_instrumented_library() -> None:
    """A script that imports none of the libraries: ``init()`` imports none of them (nor Django or Celery,
    which other libraries' imports could pull in), though every integration whose library is installed is
    armed. (``import obskit`` itself brings ``urllib.request``, through prometheus-client: not init()'s.)"""
    # Integrations that hook their library's import themselves declare no module: named here.
    modules = [m for _, m in DEFERRED] + ["django", "flask", "kombu", "celery", "aiohttp", "grpc", "pika",
                                          "aio_pika"]
    result = _run(f"""
        import json, sys
        import obskit
        before = set(sys.modules)
        tel = obskit.init(service_name="startup")
        imported = [m for m in {modules!r} if m in sys.modules and m not in before]
        print(json.dumps({{"imported": imported, "armed": sorted(tel.integrations)}}))
    """)
    assert result["imported"] == []
    assert {"redis", "sqlalchemy", "fastapi"} <= set(result["armed"])  # type: ignore[arg-type]


def test_library_imported_after_init_is_instrumented_on_import() -> None:
    """``import redis`` after ``init()`` switches the redis integration on at that moment; a library
    imported before ``init()`` is instrumented by ``init()`` itself."""
    result = _run("""
        import json
        import requests
        import obskit, obskit.testing
        obskit.init(service_name="startup")
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        before = RequestsInstrumentor().is_instrumented_by_opentelemetry
        import redis
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        after = RedisInstrumentor().is_instrumented_by_opentelemetry
        obskit.testing.reset()
        print(json.dumps({"before": before, "after": after,
                          "undone": RedisInstrumentor().is_instrumented_by_opentelemetry}))
    """)
    assert result == {"before": True, "after": True, "undone": False}


def test_shutdown_before_the_import_leaves_the_library_alone() -> None:
    """An integration armed by ``init()`` and disarmed by ``obskit.testing.reset()`` before its library is
    imported never instruments it."""
    result = _run("""
        import json
        import obskit, obskit.testing
        obskit.init(service_name="startup")
        obskit.testing.reset()
        import redis
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        print(json.dumps({"instrumented": RedisInstrumentor().is_instrumented_by_opentelemetry}))
    """)
    assert result == {"instrumented": False}
