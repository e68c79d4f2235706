"""File format identification against PRONOM, in this process, with siegfried (via pygfried).

Why siegfried/pygfried rather than opf-fido (both on PyPI, both PRONOM-based), measured here on
the 2-core VM (December 2026):

* pygfried 2.2.0 (Artefactual, September 2026) embeds siegfried 1.11.9 and its signature file
  built from PRONOM DROID signatures V125 and container signatures 2026-01-19; identifying a
  small text file in-process costs about 0.25 ms; the seed is ``x-fmt/111`` alone (basis:
  extension match txt; text match ASCII).  Typed (``py.typed``), no Python dependencies.
* opf-fido 1.6.1 (last release December 2022) ships PRONOM v109 signatures; its default
  constructor fails on a missing ``formats-v104.xml``; about 3.7 ms a file (15 times slower);
  the seed comes out as three candidates by extension (x-fmt/111, fmt/1085, fmt/1591).
* siegfried itself is a Go program (a subprocess per file would cost more than a small bag);
  python-magic, puremagic and filetype give MIME types, not PRONOM identifiers.

The signatures are loaded once per process (on the first identification) and every
identification after that is an in-process call.  ``STRONGROOM_IDENTIFY=0`` switches
identification off (for a benchmark's baseline, or where formats are identified elsewhere):
:func:`identification_enabled` says whether it is on.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import StrongroomError

#: Environment variable: "0", "no", "off" or "false" switches format identification off.
IDENTIFY_ENV = "STRONGROOM_IDENTIFY"
#: PRONOM's name as a PREMIS formatRegistryName.
PRONOM = "PRONOM"
#: What siegfried says of a file it cannot identify.
_UNKNOWN = "UNKNOWN"
#: As pipeline.premis.PUID_PATTERN (fmt/11, x-fmt/111).
_PUID = re.compile(r"^(x-)?[a-z]+/[0-9]+$")

_LOCK = threading.Lock()
_TOOL: Tool | None = None


class IdentificationError(StrongroomError):
    """A file could not be read for identification (it is gone or unreadable)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: cannot identify its format: {reason}")
        self.path, self.reason = path, reason


@dataclass(frozen=True)
class Tool:
    """The identifier and its signatures, as a PREMIS event and agent name them."""

    name: str  # "siegfried"
    version: str  # "1.11.9"
    signature: str  # "DROID_SignatureFile_V125.xml; container-signature-20260119.xml"
    signature_created: str  # when the signature file was built (siegfried's "created")

    @property
    def agent_id(self) -> str:
        """The PREMIS agent identifier, ``siegfried/1.11.9`` (the form Strongroom's agents take)."""
        return f"{self.name}/{self.version}"

    def describe(self) -> str:
        """``siegfried 1.11.9 (signatures: ...)``: one line for an event's detail."""
        return f"{self.name} {self.version} (signatures: {self.signature}, built {self.signature_created})"


@dataclass(frozen=True)
class Identification:
    """The format of one file as PRONOM names it; ``puid`` None when nothing matched."""

    puid: str | None
    name: str | None
    version: str | None
    mime: str | None
    basis: str
    warning: str
    tool: Tool

    def mimes(self) -> tuple[str, ...]:
        """The identified MIME type(s), lowercased (PRONOM may give several, comma-separated)."""
        return tuple(m.strip().lower() for m in (self.mime or "").split(",") if m.strip())

    def disagreement(self, stated: str | None) -> str | None:
        """Why ``stated`` (a MIME type from a record) disagrees with this identification, or None.

        Parameters (``; charset=...``) and case are ignored: ``text/plain; charset=us-ascii``
        agrees with ``text/plain``.  Nothing stated, or nothing identified, is no disagreement.
        """
        if not stated or self.puid is None or not self.mimes():
            return None
        essence = stated.split(";", 1)[0].strip().lower()
        if essence in self.mimes():
            return None
        return (f"the record states {stated} but {self.tool.name} identifies {self.puid} "
                f"({self.name}, {', '.join(self.mimes())})")


def identification_enabled() -> bool:
    """False when ``STRONGROOM_IDENTIFY`` says off (0, no, off, false)."""
    return os.environ.get(IDENTIFY_ENV, "1").strip().lower() not in ("0", "no", "off", "false")


def tool() -> Tool:
    """The identifier in use; the first call loads siegfried's signatures (once per process)."""
    global _TOOL
    with _LOCK:
        if _TOOL is None:
            _TOOL = _load()
        return _TOOL


def _load() -> Tool:
    import pygfried

    # An identification of nothing is how pygfried reports its signature file's facts.
    facts = pygfried.identify_many([], workers=1)
    details = "; ".join(i["details"] for i in facts["identifiers"] if i["name"] == "pronom")
    return Tool("siegfried", facts["siegfried"], details or facts["signature"], facts["created"])


def identify(path: Path) -> Identification:
    """The PRONOM format of the file at ``path`` (read in this process; raises IdentificationError)."""
    import pygfried

    used = tool()
    try:
        result = pygfried.identify(os.fspath(path), detailed=True)
    except OSError as exc:  # pygfried.GoError is an OSError
        raise IdentificationError(path, str(exc)) from None
    files = result["files"]
    if not files:
        raise IdentificationError(path, "the identifier returned no result")
    entry = files[0]
    matches = [m for m in entry["matches"] if m["ns"] == "pronom"]
    if not entry["matches"] and entry["errors"]:  # not read at all (gone, a directory, unreadable)
        raise IdentificationError(path, entry["errors"])
    if not matches or matches[0]["id"] in ("", _UNKNOWN):
        reason = entry["errors"] or (matches[0]["warning"] if matches else "") or "no match"
        return Identification(None, None, None, None, "", reason, used)
    match = matches[0]
    if not _PUID.match(match["id"]):  # another namespace's key (a custom signature file): no PUID
        return Identification(None, None, None, None, match["basis"], f"not a PRONOM identifier: {match['id']}",
                              used)
    return Identification(match["id"], match["format"] or None, match["version"] or None,
                          match["mime"] or None, match["basis"], match["warning"], used)
