"""Deposit bags into repositories: a filesystem store, S3-compatible object storage, OCFL.

Targets are named by URL and registered by scheme below; adding a kind of repository is one
module implementing :class:`~pipeline.deposit.base.Target` and one line in ``_REGISTRY``.
Target modules are imported only when their scheme is used (boto3 and ocfl-py are not free).

A *location* is where one bag lives at a target: the target URL with the bag name appended as
its last path segment (``file:///srv/copies/rec.v1``, ``s3://bucket/prefix/rec.v1?endpoint=...``,
``ocfl:///srv/ocfl/rec.v1``).  :func:`open_location` turns it back into (target, bag name), which is
how the audit re-checks a copy kept anywhere.
"""

from __future__ import annotations

import importlib
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from pipeline.deposit.base import DepositResult, Fixity, Target, redact
from pipeline.errors import UsageError

__all__ = [
    "DepositResult", "Fixity", "RetryPolicy", "Target", "deposit_bag", "location_of", "open_location",
    "open_target", "redact", "schemes", "split_location",
]

#: URL scheme -> "module:class".  One line per kind of repository.
_REGISTRY: dict[str, str] = {
    "file": "pipeline.deposit.filesystem:FilesystemTarget",
    "s3": "pipeline.deposit.s3:S3Target",
    "ocfl": "pipeline.deposit.ocfl:OcflTarget",
}


def schemes() -> list[str]:
    """The URL schemes a deposit target can be named with."""
    return sorted(_REGISTRY)


def open_target(url: str) -> Target:
    """The target named by ``url``; UsageError for an unknown scheme or a malformed URL.

    URLs never carry credentials: a user:password part is refused (and not echoed back).
    """
    parts = urlsplit(url)
    if parts.scheme not in _REGISTRY:
        raise UsageError(f"'{redact(url)}': unknown deposit target (use one of: "
                         + ", ".join(f"{s}://" for s in schemes()) + ")")
    # A user:password part anywhere - the URL itself or a URL in its query, such as an S3
    # endpoint - would be stored with every location in the ledger and printed in every report.
    if "@" in parts.netloc or any("@" in urlsplit(v).netloc for _, v in parse_qsl(parts.query)):
        raise UsageError(f"'{redact(url)}': credentials do not belong in a target URL; "
                         "use the environment or the standard credential files")
    module, _, cls = _REGISTRY[parts.scheme].partition(":")
    target_cls: type[Target] = getattr(importlib.import_module(module), cls)
    return target_cls(url)


def location_of(target_url: str, bag_name: str) -> str:
    """The location of ``bag_name`` at the target ``target_url`` (query kept, name appended)."""
    parts = urlsplit(target_url)
    path = parts.path.rstrip("/") + "/" + quote(bag_name, safe="")
    return _unsplit(parts.scheme, parts.netloc, path, parts.query)


def split_location(location: str) -> tuple[str, str]:
    """(target URL, bag name) of a location made by :func:`location_of`."""
    parts = urlsplit(location)
    head, _, name = parts.path.rstrip("/").rpartition("/")
    if not name:
        raise UsageError(f"'{redact(location)}': not a bag location (no bag name at its end)")
    return _unsplit(parts.scheme, parts.netloc, head or "/", parts.query), unquote(name)


def open_location(location: str) -> tuple[Target, str]:
    """The target holding a location, and the bag name there."""
    url, name = split_location(location)
    return open_target(url), name


def _unsplit(scheme: str, netloc: str, path: str, query: str) -> str:
    # urlunsplit writes "ocfl:/path" for schemes it does not know to have a netloc; keep the "//".
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


# Imported last: replication uses open_target above (the registry is this module's own business).
from pipeline.deposit.replication import RetryPolicy, deposit_bag  # noqa: E402
