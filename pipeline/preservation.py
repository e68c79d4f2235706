"""What an ingest records of a bag in PREMIS: each step when it happened, formats, versions.

:func:`pipeline.ingest.ingest_record` hands an :class:`IngestSteps` to the bag writer's hooks; each
hook notes the time its step ended, so every event carries its own ``eventDateTime``:

=========  ==========================================================================  ===========
event      when                                                                        linked to
=========  ==========================================================================  ===========
ing        the ingest of the record begins                                             the bag
mes        the payload is copied and hashed (the writer's hook after the copy)        its files
fix        the staged manifests were compared with the digests the record states      its files
for        every staged payload file was identified against PRONOM                    its files
mod/mem    a new version was compared with the previous one (payload / metadata)      both bags
pac        the bag is complete (tag files and tag manifests written: verifiers start)  the bag
val        both verifiers accepted the staged bag                                      the bag
=========  ==========================================================================  ===========

The bag itself is a PREMIS *representation* that ``includes`` its files (each file ``is included
in`` it); a version after the first ``has source`` the previous one, by the mod/mem event that
says what changed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from pathlib import Path

from pipeline.bag.payload import PayloadDigest, PayloadView
from pipeline.bag.tagfiles import iter_manifest, manifest_algorithms, manifest_name
from pipeline.bag.writer import STRONGROOM_PROFILE_ID, Verifier
from pipeline.errors import FixityError
from pipeline.findings import Finding
from pipeline.formats import Identification, Tool, identify
from pipeline.premis import (
    NO_SECOND_OPINION_NOTE,
    AnyObject,
    PremisAgent,
    PremisEvent,
    PremisObject,
    PremisRelationship,
    PremisRepresentation,
    render_premis,
    strongroom_agent,
)
from pipeline.records import LoadedRecord


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class IngestSteps:
    """Collects, while one bag is written, what its PREMIS says (and what ingest reports)."""

    def __init__(self, loaded: LoadedRecord, dest: Path, previous: Path | None, *, identify_formats: bool,
                 tag_files: Callable[[], Mapping[str, bytes]], second_opinion: bool = True) -> None:
        self.loaded, self.dest, self.previous = loaded, dest, previous
        self.identify_formats = identify_formats
        self.second_opinion = second_opinion
        self._tag_files = tag_files
        self.times: dict[str, dt.datetime] = {"ing": _now()}
        self.formats: dict[str, Identification] = {}
        self.disagreements: dict[str, str] = {}
        self.events: list[PremisEvent] = []
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self._payload: list[PayloadDigest] = []
        self._stated: list[tuple[str, str, str]] = []
        self._change: tuple[str, str] | None = None  # (event type, what changed)
        self._tool: Tool | None = None

    # -- the writer's hooks ---------------------------------------------------------------------

    def after_copy(self, staged: PayloadView) -> Mapping[str, bytes]:
        """The payload is staged: note the digests, compare, identify, diff; return the tag files."""
        self.times["mes"] = _now()
        self._payload = list(staged)  # read back once from the staged manifests (a record's few files)
        self._stated = self._compare_stated()
        if self._stated:
            self.times["fix"] = _now()
        if self.identify_formats:
            self._identify(staged.bag)
            self.times["for"] = _now()
        if self.previous is not None:
            self._change = _what_changed(self.previous, self.loaded.raw, self._payload)
            self.times["der"] = _now()
        return self._tag_files()

    def packed_then(self, verify: Verifier) -> Verifier:
        """``verify``, noting first when the bag was complete (the first verifier starts).

        The wrapper keeps the verifier's other hooks (the writer calls ``prepare`` and ``close`` of
        bagit-python's second opinion, to start its child while the payload is copied).
        """
        return _NotingPacked(self.times, verify)

    def premis(self, staged: PayloadView, notes: str) -> bytes:
        """The bag's ``metadata/premis.xml``, written once both verifiers accepted the bag."""
        self.times.setdefault("pac", _now())
        self.times["val"] = _now()
        agents = [strongroom_agent()] + ([_bagit_python_agent()] if self.second_opinion else [])
        if self._tool is not None:
            agents.append(PremisAgent(identifier=self._tool.agent_id, name=self._tool.name,
                                      version=self._tool.version, type="sof"))
        self.events[:] = self._events(notes, [a.identifier for a in agents])
        return render_premis(self._objects(), self.events, agents)

    # -- the steps ------------------------------------------------------------------------------

    def _compare_stated(self) -> list[tuple[str, str, str]]:
        """(bag path, algorithm, digest) of every digest the record states, checked against the
        staged manifests (the writer refused a difference while copying; this is the record of it)."""
        stated = {f"data/{spec.path}": spec.checksums for spec in self.loaded.record.payload}
        compared = []
        for item in self._payload:
            for alg, hexd in stated.get(item.path, {}).items():
                if alg in item.digests and item.digests[alg] != hexd.lower():
                    raise FixityError(self.loaded.root / item.path.removeprefix("data/"), alg,
                                      hexd.lower(), item.digests[alg])
                compared.append((item.path, alg, hexd.lower()))
        return compared

    def _identify(self, staging: Path) -> None:
        for item in self._payload:
            found = identify(staging.joinpath(*item.path.split("/")))
            self._tool = found.tool
            self.formats[item.path] = found
            rel = item.path.removeprefix("data/")
            stated = self.stated_format(item.path)
            disagreement = found.disagreement(stated)
            if disagreement:
                self.disagreements[item.path] = disagreement
                self.warnings.append(f"{self.loaded.path}: payload '{rel}': {disagreement}")
            elif found.puid is None:
                self.notes.append(f"{self.loaded.path}: payload '{rel}': format not identified "
                                  f"by {found.tool.name} ({found.warning})")

    def stated_format(self, bag_path: str) -> str | None:
        """The MIME type the record states for a payload file: its own ``format``, else the
        record's ``dc.format`` when the record has one payload file and one format."""
        record = self.loaded.record
        for spec in record.payload:
            if f"data/{spec.path}" == bag_path and spec.format:
                return spec.format
        if len(record.payload) == 1 and len(record.dc.format) == 1:
            return record.dc.format[0]
        return None

    # -- PREMIS ---------------------------------------------------------------------------------

    def _objects(self) -> list[AnyObject]:
        bag = self.dest.name
        inside = (PremisRelationship(type="structural", subtype="is included in", related=(bag,)),)
        files: list[AnyObject] = [self._file_object(p, inside) for p in self._payload]
        relationships = []
        if files:
            relationships.append(PremisRelationship(type="structural", subtype="includes",
                                                    related=tuple(p.path for p in self._payload)))
        derived = next((e for e in self.events if e.event_type in ("mod", "mem")), None)
        if self.previous is not None and derived is not None:
            relationships.append(PremisRelationship(type="derivation", subtype="has source",
                                                    related=(self.previous.name,),
                                                    events=(derived.identifier,)))
        return [*files, PremisRepresentation(identifier=bag, relationships=tuple(relationships))]

    def _file_object(self, item: PayloadDigest, inside: tuple[PremisRelationship, ...]) -> PremisObject:
        found = self.formats.get(item.path)
        notes: list[str] = []
        if found is not None:
            notes.append(f"identified by {found.tool.describe()}"
                         + (f"; basis: {found.basis}" if found.basis else "")
                         + (f"; {found.tool.name} warns: {found.warning}" if found.warning else ""))
        if item.path in self.disagreements:
            notes.append(f"disagrees with the record: {self.disagreements[item.path]}")
        return PremisObject(identifier=item.path, size=item.size, digests=dict(item.digests),
                            original_name=item.path.removeprefix("data/"),
                            format_name=self.stated_format(item.path),
                            puid=found.puid if found else None,
                            identified_format=found.name if found else None,
                            format_version=found.version if found else None,
                            format_notes=tuple(notes), relationships=inside)

    def _events(self, notes: str, agent_ids: list[str]) -> list[PremisEvent]:
        loaded, bag, own = self.loaded, self.dest.name, [agent_ids[0]]
        files = tuple(p.path for p in self._payload)
        algs = ", ".join(self._payload[0].digests) if self._payload else ""
        events = [
            self._event("ing", f"Ingested record {loaded.path.name} ({loaded.record.id}) as bag {bag}",
                        (bag,), own),
            self._event("mes", f"Computed {algs} of every payload file in one read while copying it",
                        files, own),
        ]
        if self._stated:
            events.append(self._event(
                "fix", "Compared the digests of the bytes read from the source with the digests "
                       "stated in the record: all equal", tuple(dict.fromkeys(p for p, _, _ in self._stated)),
                own, outcome_detail="; ".join(f"{p} {alg}:{hexd}" for p, alg, hexd in self._stated)))
        if "for" in self.times and self._tool is not None:
            events.append(self._identification_event(files, [agent_ids[-1]]))
        if self._change is not None and self.previous is not None:
            kind, what = self._change
            events.append(self._event(kind, what, (bag, self.previous.name), own, time="der"))
        events.append(self._event("pac", f"Packed as BagIt 1.0 bag {bag} (profile {STRONGROOM_PROFILE_ID})",
                                  (bag,), own))
        if self.second_opinion:
            events.append(self._event("val", "Validated the complete staged bag before publication: "
                                             "Strongroom's strict validator (full) and bagit-python (second "
                                             "opinion): valid", (bag,), agent_ids[:2],
                                      outcome_detail=notes or None))
        else:
            events.append(self._event("val", "Validated the complete staged bag before publication: "
                                             "Strongroom's strict validator (full): valid", (bag,), own,
                                      outcome_detail="; ".join(filter(None, [NO_SECOND_OPINION_NOTE, notes]))))
        return events

    def _identification_event(self, files: tuple[str, ...], agents: list[str]) -> PremisEvent:
        assert self._tool is not None
        found = [f"{path}: {f.puid} ({f.name})" if f.puid else f"{path}: not identified ({f.warning})"
                 for path, f in self.formats.items()]
        found += [f"{path}: {text}" for path, text in self.disagreements.items()]
        unidentified = any(f.puid is None for f in self.formats.values())
        return self._event("for", f"Identified the format of every payload file against PRONOM with "
                                  f"{self._tool.describe()}", files, agents,
                           outcome="war" if self.disagreements or unidentified else "suc",
                           outcome_detail="; ".join(found) or None)

    def _event(self, event_type: str, text: str, objects: tuple[str, ...], agents: list[str], *,
               time: str | None = None, outcome: str = "suc", outcome_detail: str | None = None) -> PremisEvent:
        return PremisEvent.model_validate({
            "identifier": uuid.uuid4().urn, "event_type": event_type,
            "date_time": self.times[time or event_type], "detail": text, "outcome": outcome,
            "outcome_detail": outcome_detail, "object_ids": objects, "agent_ids": tuple(agents)})


class _NotingPacked:
    """A verifier that first notes when the bag was complete; its other attributes are the verifier's."""

    def __init__(self, times: dict[str, dt.datetime], verify: Verifier) -> None:
        self._times, self._verify = times, verify

    def __call__(self, path: Path) -> Sequence[Finding]:
        self._times.setdefault("pac", _now())
        return self._verify(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._verify, name)


def _what_changed(previous: Path, record_raw: bytes, payload: Sequence[PayloadDigest]) -> tuple[str, str]:
    """("mod" or "mem", a sentence): how this version's payload and record differ from ``previous``."""
    try:
        algorithms = manifest_algorithms(previous)
        old_record = (previous / "metadata" / "record.yaml").read_bytes()
    except OSError:
        algorithms, old_record = [], b""
    common = [a for a in ("sha512", *algorithms) if a in algorithms and payload and a in payload[0].digests]
    before: dict[str, str] = {}
    if common:
        before = dict(iter_manifest(previous / manifest_name(common[0])))
    now = {p.path: p.digests[common[0]] if common else "" for p in payload}
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(p for p in set(now) & set(before) if now[p] != before[p])
    metadata = record_raw != old_record

    def listed(paths: list[str]) -> str:
        return ", ".join(paths) if paths else "none"

    text = (f"New version derived from {previous.name}: payload files added: {listed(added)}; removed: "
            f"{listed(removed)}; changed: {listed(changed)}; metadata "
            + ("changed (record.yaml, and dc.xml and dcterms.jsonld made from it)" if metadata else "unchanged"))
    return ("mod" if added or removed or changed else "mem"), text


def _bagit_python_agent() -> PremisAgent:
    import bagit

    return PremisAgent(identifier=f"bagit-python/{bagit.VERSION}", name="bagit-python",
                       version=str(bagit.VERSION))
