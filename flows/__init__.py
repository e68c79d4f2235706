"""Prefect flows that wire the Strongroom library (``pipeline``): ingest, audit, deposit, serve.

Importing this package does not import Prefect; each flow module does.
"""
