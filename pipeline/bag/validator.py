"""The strict BagIt validator: RFC 8493 (BagIt 1.0) and the 0.93-0.97 drafts, three depths.

``validate_bag`` never raises on a bad bag: it returns a :class:`ValidationReport` whose findings
carry stable codes (:data:`pipeline.bag.validate_codes.CODES`).  The depths are the ones users
know from other BagIt tools:

- ``fast``: bagit.txt, structure, bag-info.txt, the tag manifests and every tag file's digest,
  and Payload-Oxum against the files on disk.  It proves nothing about payload content: a
  tampered payload file of the same size passes.
- ``completeness``: also every manifest, tag manifest and fetch.txt line, every file present and
  listed - but no digest computed.
- ``full`` (default): also every payload and tag file digest, each file read once for all the
  algorithms its manifests use.

Bags that name a profile Strongroom ships (``BagIt-Profile-Identifier``) are also checked against
it; so is an explicitly given profile.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipeline.bag import validate_manifests as vm
from pipeline.bag.validate_codes import Collector
from pipeline.bag.validate_text import BagInfo, bag_info_name, oxum, read_bag_info, read_bagit_txt
from pipeline.bag.validate_tree import Tree, walk
from pipeline.findings import Finding

if TYPE_CHECKING:
    from pipeline.bag.profiles import Profile

Depth = Literal["fast", "completeness", "full"]
DEPTHS: tuple[Depth, ...] = ("fast", "completeness", "full")
_DEPTH_SAYS = {
    "fast": "fast: structure, tag files and Payload-Oxum only, proves nothing about payload content",
    "completeness": "completeness: every file present and listed, digests not computed",
    "full": "full: every digest checked",  # "verified" read as a verdict on INVALID bags
}


@dataclass
class ValidationReport:
    """What one validation of one bag found."""

    bag: Path
    depth: Depth
    version: str | None = None
    findings: list[Finding] = field(default_factory=list)
    payload_files: int = 0
    payload_bytes: int = 0
    #: Identifiers of the profiles the bag was checked against.
    profiles: list[str] = field(default_factory=list)
    #: bag-info.txt as (label, value) pairs in file order (empty when absent or unreadable).
    bag_info: BagInfo = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """No error findings (warnings and info do not make a bag invalid)."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        """The findings that make the bag invalid."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings worth a look that do not make the bag invalid."""
        return [f for f in self.findings if f.severity == "warning"]

    def summary_line(self) -> str:
        """One line: verdict, depth, version, payload size, error and warning counts."""
        verdict = "valid" if self.valid else "INVALID"
        version = f"BagIt {self.version}" if self.version else "BagIt version unknown"
        counts = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        profiles = f", profile {', '.join(self.profiles)}" if self.profiles else ""
        return (f"{self.bag}: {verdict} ({_DEPTH_SAYS[self.depth]}; {version}; "
                f"{self.payload_files} payload file(s), {self.payload_bytes} bytes; {counts}{profiles})")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``strongroom validate --json`` and reports)."""
        return {
            "bag": str(self.bag), "depth": self.depth, "version": self.version, "valid": self.valid,
            "payload_files": self.payload_files, "payload_bytes": self.payload_bytes,
            "profiles": self.profiles, "summary": self.summary_line(),
            "findings": [f.model_dump() for f in self.findings],
        }


def validate_bag(path: Path, *, depth: Depth = "full", profile: Profile | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 recompute: Collection[str] | None = None) -> ValidationReport:
    """Validate the bag at ``path``; never raises on a bad bag.

    ``progress(bytes_done, files_done)`` is called as payload files are hashed (full depth).
    ``recompute`` (full depth): recompute payload digests only for the manifests of these
    algorithms (every manifest is still read, parsed and checked for completeness).  The bag
    writer uses it to re-read its staged copy with one strong digest: the copy's manifests were
    all computed in one read of the source, so one strong digest of the staged bytes proves them
    on disk as well as all of them would.  ``None``: every supported algorithm.
    """
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {DEPTHS}, not {depth!r}")
    report = ValidationReport(bag=path, depth=depth)
    c = Collector(bag=path)
    if path.is_symlink():
        # A bag is judged by what its own directory holds; a link could be re-pointed meanwhile.
        c.add("BAG-NOT-DIRECTORY", "", f"is a symbolic link (to {_link_target(path)!r}), not a bag "
              "directory; give the bag's own path")
    elif not path.is_dir():
        c.add("BAG-NOT-DIRECTORY", "", "is not a directory (a file or absent); Strongroom "
              "validates unpacked bags")
    if c.findings:
        report.findings = c.findings
        return report
    _check(c, report, depth, progress, recompute)
    report.version = c.version_text
    _check_profiles(c, report, profile)
    report.findings = c.findings
    return report


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _check(c: Collector, report: ValidationReport, depth: Depth,
           progress: Callable[[int, int], None] | None, recompute: Collection[str] | None = None) -> None:
    has_bagit = read_bagit_txt(c)
    tree = walk(c)
    report.payload_files, report.payload_bytes = tree.payload_files, tree.payload_bytes
    if not tree.has_data:
        c.add("DATA-MISSING", "data", "the payload directory data/ is absent (or not a directory)")
    report.bag_info = read_bag_info(c) or []
    _check_oxum(c, tree, report.bag_info)
    found = vm.find_manifests(c, tree)
    if has_bagit and not found.payload:
        c.add("MANIFEST-MISSING", "", "no payload manifest (manifest-<algorithm>.txt)")
    # Tag files are small and hold what every other check trusts (bag-info.txt, the manifests):
    # every depth verifies them, so even --fast catches a tampered Payload-Oxum or manifest.
    for j in range(len(found.tag)):
        vm.read_manifest(c, tree, found, j, tag=True)
    vm.check_tag_completeness(c, tree, found)
    vm.verify_digests(c, tree.tags, found.tag, tag=True)
    if depth == "fast":
        if not oxum(report.bag_info):
            # RFC 8493 2.2.2: the Payload-Oxum is what a quick check compares.  Without one a
            # fast check compared nothing; bagit-python and bagit-java refuse it too.
            c.add("FAST-NO-OXUM", bag_info_name(c.version), "has no Payload-Oxum, so a fast "
                  "validation has nothing to compare the payload with; run without --fast")
        c.add("FAST-ONLY", "", "fast validation checked structure, tag files and Payload-Oxum only"
              "; it proves nothing about payload content (run without --fast to verify "
              "every file)")
        return
    for i in range(len(found.payload)):
        vm.read_manifest(c, tree, found, i, tag=False)
    vm.read_fetch(c, tree, found)
    vm.check_payload_completeness(c, tree, found)
    if depth == "full":
        vm.verify_digests(c, tree.payload, found.payload, tag=False, progress=progress, only=recompute)


def _check_oxum(c: Collector, tree: Tree, info: BagInfo) -> None:
    stated = oxum(info)
    if stated is None:
        return
    actual = (tree.payload_bytes, tree.payload_files)
    if stated != actual:
        c.add("OXUM-MISMATCH", bag_info_name(c.version),
              f"Payload-Oxum says {stated[0]} bytes in {stated[1]} file(s), the payload on disk has "
              f"{actual[0]} bytes in {actual[1]} file(s)",
              expected=f"{stated[0]}.{stated[1]}", found=f"{actual[0]}.{actual[1]}")


def _check_profiles(c: Collector, report: ValidationReport, explicit: Profile | None) -> None:
    """The explicit profile, then every shipped profile the bag names (each checked once)."""
    named = [v.strip() for k, v in report.bag_info if k.lower() == "bagit-profile-identifier"]
    if explicit is None and not named:
        # Profiles are pydantic models: importing them cost 0.14 s (python -X importtime) and
        # ~10 MB of peak memory, more than validating a few thousand files, so a bag that names
        # no profile never pays it.
        return
    from pipeline.bag.profiles import check_profile, shipped_profile

    todo: list[Profile] = [explicit] if explicit is not None else []
    for identifier in named:
        if any(p.identifier == identifier for p in todo):
            continue
        shipped = shipped_profile(identifier)
        if shipped is None:
            c.add("PROFILE-UNKNOWN", bag_info_name(c.version),
                  f"names the profile {identifier!r}, which Strongroom does not ship; not checked "
                  "(use --profile FILE to check it)")
        else:
            todo.append(shipped)
    for prof in todo:
        report.profiles.append(prof.identifier)
        c.findings.extend(check_profile(c.bag, prof))
