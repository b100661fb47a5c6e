"""obskit.integrations: one module per library, framework or server, all declaring the same contract.

Each public module here (``requests``, ``httpx``, ``redis``, ``psycopg``, ``starlette``, ``fastapi``,
``asgi``, ``wsgi``, ``gunicorn``, ``uvicorn``, ...) ends with ``INTEGRATION``, an
:class:`obskit.integrations._contract.Integration`; the registry (``_registry``) discovers them. See
docs/contributing.md for adding one.
"""
