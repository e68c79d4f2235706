"""Ingest: one metadata record and its payload become one verified, versioned bag.

Bags are named ``<record id>.v<N>`` in the bags directory.  Re-ingesting an unchanged record
(same record bytes, same payload paths and digests as the newest version) creates nothing and
reports ``unchanged``; any change becomes version N+1 beside the old one.  A bag is never
overwritten or deleted.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from pipeline.audit import register_bag
from pipeline.bag.names import unsafe_reason
from pipeline.bag.payload import PayloadFile
from pipeline.bag.tagfiles import iter_manifest, manifest_algorithms, manifest_name
from pipeline.bag.writer import (
    STAGING_DIR,
    STRONGROOM_PROFILE_ID,
    BagOptions,
    Progress,
    Verifier,
    default_verifiers,
    remove_stale_staging,
    write_bag,
)
from pipeline.errors import BagWriteError, FixityError, PayloadError, StrongroomError
from pipeline.fixity import DEFAULT_ALGORITHMS, check_algorithms, digest_file
from pipeline.formats import identification_enabled
from pipeline.preservation import IngestSteps
from pipeline.premis import PremisEvent
from pipeline.records import LoadedRecord, load_record

if TYPE_CHECKING:
    from pipeline.ledger import Ledger

Outcome = Literal["bagged", "unchanged", "failed"]
_VERSION = re.compile(r"^(?P<id>.+)\.v(?P<n>[1-9][0-9]*)$")


@dataclass
class IngestResult:
    """What happened to one record."""

    record: Path
    outcome: Outcome
    identifier: str | None = None
    bag: Path | None = None
    files: int = 0
    bytes: int = 0
    error: str | None = None
    events: list[PremisEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth saying, not a problem (e.g. no digest stated)
    #: a problem that does not stop the ingest, never silent (e.g. the record's format disagrees)
    warnings: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        """A flat, JSON-ready view (for --json, reports and Prefect artifacts)."""
        return {"record": str(self.record), "identifier": self.identifier,
                "bag": str(self.bag) if self.bag else None, "files": self.files,
                "bytes": self.bytes, "outcome": self.outcome, "error": self.error, "notes": self.notes,
                "warnings": self.warnings}


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest (shared by every record of a run)."""

    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    verifiers: Sequence[Verifier] | None = None  # None: Strongroom's validator + bagit-python
    progress: Progress | None = None
    #: identify every payload file's format against PRONOM; None: unless STRONGROOM_IDENTIFY=0
    identify: bool | None = None
    #: False: Strongroom's own verification only, said in the PREMIS validation event.
    second_opinion: bool = True


def ingest_record(record_path: Path, bags_dir: Path, options: IngestOptions = IngestOptions()) -> IngestResult:
    """Ingest one record into ``bags_dir``; failures are returned, not raised."""
    try:
        return _ingest(record_path, bags_dir, options)
    except StrongroomError as exc:
        return IngestResult(record_path, "failed", error=str(exc))


@dataclass
class IngestReport:
    """The results of one ingest run, in record order."""

    results: list[IngestResult]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def exit_code(self) -> int:
        """0 when every record was bagged or unchanged, 1 when any failed."""
        return 1 if self.count("failed") else 0

    def summary_line(self) -> str:
        return (f"{len(self.results)} record(s): {self.count('bagged')} bagged, "
                f"{self.count('unchanged')} unchanged, {self.count('failed')} failed")

    def as_json(self) -> dict[str, Any]:
        return {"records": [r.as_row() for r in self.results],
                "bagged": self.count("bagged"), "unchanged": self.count("unchanged"),
                "failed": self.count("failed"), "exit_code": self.exit_code}


def duplicate_identifiers(record_paths: Sequence[Path]) -> dict[Path, str]:
    """Records whose identifier another record of the run also claims: path -> error line."""
    owners: dict[str, list[Path]] = {}
    for path in record_paths:
        try:
            owners.setdefault(load_record(path).record.id, []).append(path)
        except StrongroomError:
            continue  # the record's own task reports why it cannot be read
    clashes: dict[Path, str] = {}
    for identifier, paths in owners.items():
        for path in paths if len(paths) > 1 else ():
            others = ", ".join(str(p) for p in paths if p != path)
            clashes[path] = f"{path}: duplicate record identifier '{identifier}' (also in {others})"
    return clashes


def register_result(result: IngestResult, ledger: Ledger) -> IngestResult:
    """Register the bag of a bagged or unchanged result in the fixity ledger (idempotent).

    An unchanged bag is registered again so that a run that made a bag but failed to register
    it (a crash, the ledger unreachable) is completed by the next run.
    """
    if result.bag is None:
        return result
    try:
        register_bag(ledger, result.bag, origin="ingest", events=result.events)
    except StrongroomError as exc:
        result.outcome = "failed"
        result.error = f"{result.record}: bag {result.bag.name} made, but not registered in the ledger: {exc}"
    return result


def unchanged_result(record_path: Path, bags_dir: Path) -> IngestResult | None:
    """The ``unchanged`` result of a record whose newest bag holds it as it is now, else None.

    Reads what :func:`ingest_record` would read to decide the same, and nothing more; any problem
    (an invalid record, a missing payload file) is None: the full ingest reports it.
    """
    try:
        loaded = load_record(record_path)
        payload = resolve_payload(loaded)
        versions = bag_versions(bags_dir, loaded.record.id)
        if not versions or not _unchanged(versions[-1], loaded, payload):
            return None
        return IngestResult(record_path, "unchanged", loaded.record.id, versions[-1], len(payload),
                            sum(p.source.stat().st_size for p in payload))
    except (StrongroomError, OSError):
        return None


def bag_versions(bags_dir: Path, identifier: str) -> list[Path]:
    """The published versions of the bag of ``identifier``, oldest first."""
    if not bags_dir.is_dir():
        return []
    found = []
    for entry in bags_dir.iterdir():
        m = _VERSION.match(entry.name)
        if m and m.group("id") == identifier and entry.is_dir() and not entry.is_symlink():
            found.append((int(m.group("n")), entry))
    return [path for _, path in sorted(found)]


def prepare_bags_dir(bags_dir: Path) -> list[Path]:
    """Create ``bags_dir`` if needed and remove staging left by crashed runs; return what was removed."""
    try:
        bags_dir.mkdir(parents=True, exist_ok=True)
        probe = bags_dir / STAGING_DIR
        probe.mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".probe.", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise BagWriteError(f"{bags_dir}: bags directory is not writable ({exc.strerror})") from exc
    return remove_stale_staging(bags_dir)


def _ingest(record_path: Path, bags_dir: Path, options: IngestOptions) -> IngestResult:
    loaded = load_record(record_path)
    record = loaded.record
    payload = resolve_payload(loaded)
    algorithms = check_algorithms(options.algorithms)
    versions = bag_versions(bags_dir, record.id)
    if versions and _unchanged(versions[-1], loaded, payload):
        return IngestResult(record_path, "unchanged", record.id, versions[-1], len(payload),
                            sum(p.source.stat().st_size for p in payload))
    dest = bags_dir / f"{record.id}.v{_next_version(versions) if versions else 1}"
    identify = options.identify if options.identify is not None else identification_enabled()
    steps = IngestSteps(loaded, dest, versions[-1] if versions else None, identify_formats=identify,
                        tag_files=lambda: _metadata_files(loaded), second_opinion=options.second_opinion)
    verifiers = (default_verifiers(second_opinion=options.second_opinion) if options.verifiers is None
                 else options.verifiers)
    options_for_bag = BagOptions(
        algorithms=algorithms,
        info=_bag_info(loaded),
        profile_id=STRONGROOM_PROFILE_ID,
        tag_files=steps.after_copy,
        expected={f"data/{p.path}": dict(p.checksums) for p in record.payload if p.checksums},
        verifiers=[steps.packed_then(v) for v in verifiers],
        after_verify=lambda digests, notes: {"metadata/premis.xml": steps.premis(digests, notes)},
        progress=options.progress,
    )
    try:
        bags_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BagWriteError(f"{bags_dir}: cannot create the bags directory: {exc.strerror}") from exc
    try:
        written = write_bag(dest, payload, options_for_bag)
    except FixityError as exc:  # say which record and which of its payload files
        rel = Path(exc.path).relative_to(loaded.root).as_posix()
        raise FixityError(f"{loaded.path}: payload '{rel}'", exc.algorithm, exc.expected, exc.found) from exc
    notes = [f"{record_path}: no digest stated for '{p.path}': fixity starts at ingest"
             for p in record.payload if not p.checksums]
    return IngestResult(record_path, "bagged", record.id, written.path, len(written.payload),
                        written.octets, events=steps.events, notes=notes + steps.notes,
                        warnings=steps.warnings)


def _next_version(versions: Sequence[Path]) -> int:
    m = _VERSION.match(versions[-1].name)
    assert m is not None  # bag_versions only returns matching names
    return int(m.group("n")) + 1


def resolve_payload(loaded: LoadedRecord) -> list[PayloadFile]:
    """The record's payload as files inside its root; refuses escapes, symlinks and special files."""
    files: list[PayloadFile] = []
    for spec in loaded.record.payload:
        rel = spec.path
        reason = unsafe_reason(f"data/{rel}")  # the path it will have in the bag
        if reason:
            raise PayloadError(loaded.path, rel, f"escapes the record's directory or is unsafe: {reason}")
        current = loaded.root
        for part in PurePosixPath(rel).parts:
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                raise PayloadError(loaded.path, rel, "not found") from None
            if stat.S_ISLNK(mode):
                raise PayloadError(loaded.path, rel, f"is or passes through a symbolic link ({current.name})")
        if not stat.S_ISREG(mode):
            raise PayloadError(loaded.path, rel, "is not a regular file")
        files.append(PayloadFile(current, PurePosixPath(rel)))
    return files


def _unchanged(bag: Path, loaded: LoadedRecord, payload: Sequence[PayloadFile]) -> bool:
    """Same record bytes, same payload names, sizes and digests as the bag's newest version."""
    try:
        if (bag / "metadata" / "record.yaml").read_bytes() != loaded.raw:
            return False
        algorithms = manifest_algorithms(bag)
        if not algorithms:
            return False
        alg = "sha512" if "sha512" in algorithms else algorithms[0]
        in_bag = dict(iter_manifest(bag / manifest_name(alg)))
    except OSError:
        return False
    wanted = {f"data/{p.path.as_posix()}": p for p in payload}
    if set(in_bag) != set(wanted):
        return False
    return all(digest_file(p.source, [alg])[1][alg] == in_bag[path] for path, p in wanted.items())


def _bag_info(loaded: LoadedRecord) -> list[tuple[str, str]]:
    from pipeline.dublin_core import bag_info_fields

    return bag_info_fields(loaded.record)


def _metadata_files(loaded: LoadedRecord) -> dict[str, bytes]:
    from pipeline.dublin_core import to_jsonld, to_oai_dc

    return {
        "metadata/dc.xml": to_oai_dc(loaded.record),
        "metadata/dcterms.jsonld": to_jsonld(loaded.record),
        "metadata/record.yaml": loaded.raw,
    }
