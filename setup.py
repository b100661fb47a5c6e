"""Package discovery only (everything else is in pyproject.toml).

``integrations/`` ships as ``obskit.integrations``; pyproject.toml alone cannot combine automatic discovery
with that rename, so every package under ``obskit/`` and ``integrations/`` is found here. A module added
anywhere below either folder is in the wheel without touching a list.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["obskit", "obskit.*"])
    + ["obskit.integrations" + (f".{p}" if p else "") for p in ["", *find_packages("integrations")]],
)
