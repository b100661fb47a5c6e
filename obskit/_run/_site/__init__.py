"""The folder ``obskit run`` puts first on ``PYTHONPATH``: only its ``sitecustomize`` matters there."""
