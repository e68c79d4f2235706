"""Strongroom on the web, read-only: an OAI-PMH 2.0 data provider and a catalogue of the holdings.

``holdings`` indexes the bags directory and reads the ledger (SELECT only); ``oai`` answers the six
OAI-PMH verbs; ``catalogue`` renders the HTML pages; ``app`` puts both behind one Starlette app
that ``strongroom web`` serves with uvicorn.  Nothing here writes to a bag or to the ledger.
"""
