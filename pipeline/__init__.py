"""Strongroom: the Prefect-free archival library (records, fixity, bags, ledger, audit, deposit)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("strongroom")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

#: How Strongroom names itself in bags (Bag-Software-Agent) and in PREMIS agents.
SOFTWARE_NAME = "Strongroom"
