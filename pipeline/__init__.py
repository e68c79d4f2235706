"""Strongroom: the Prefect-free archival library (records, fixity, bags, ledger, audit, deposit)."""

#: The one place the version is written: pyproject.toml reads it from here
#: (``[tool.setuptools.dynamic]``).  A literal rather than ``importlib.metadata.version()``,
#: whose import cost every command ~0.05 s of start-up.
__version__ = "0.1.0"

#: How Strongroom names itself in bags (Bag-Software-Agent) and in PREMIS agents.
SOFTWARE_NAME = "Strongroom"
