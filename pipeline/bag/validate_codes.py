"""The validator's finding codes, and the collector every check writes its findings into.

Codes are stable: once published a code keeps its meaning forever (a new problem gets a new
code).  A code names the problem, not its severity, because RFC 8493 makes some problems errors
in BagIt 1.0 and only warnings in the drafts (0.93-0.97) still found in the wild; the severity
given here is the usual one and :meth:`Collector.add` may be told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.findings import Finding, Severity

#: code -> (usual severity, what it means).  README documents each with an example.
CODES: dict[str, tuple[Severity, str]] = {
    # The bag as a whole
    "BAG-NOT-DIRECTORY": ("error", "the path is not a directory (serialized bags are not read)"),
    "FAST-ONLY": ("info", "fast validation: structure, tag files, Payload-Oxum; no payload digest"),
    "FAST-NO-OXUM": ("error", "fast validation of a bag with no Payload-Oxum: nothing to compare"),
    "SYMLINK": ("error", "a symbolic link inside the bag (never followed)"),
    "SPECIAL-FILE": ("error", "a device, FIFO or socket inside the bag"),
    "UNREADABLE": ("error", "a file or directory of the bag cannot be read"),
    # bagit.txt
    "BAGIT-TXT-MISSING": ("error", "bagit.txt is absent"),
    "BAGIT-TXT-BOM": ("error", "bagit.txt starts with a byte-order mark"),
    "BAGIT-TXT-ENCODING": ("error", "bagit.txt is not UTF-8"),
    "BAGIT-TXT-LINES": ("error", "bagit.txt does not hold exactly the two required lines"),
    "BAGIT-TXT-SYNTAX": ("error", "a bagit.txt line is not 'Label: value' as the version requires"),
    "BAGIT-VERSION": ("error", "BagIt-Version is not of the form M.N"),
    # A strict validator does not call a bag of a version nobody defined valid (there is no 2.0).
    "BAGIT-VERSION-UNKNOWN": ("error", "a well-formed BagIt version Strongroom does not know"),
    "TAG-ENCODING-UNKNOWN": ("error", "Tag-File-Character-Encoding names no known encoding"),
    "TAG-ENCODING-DECODE": ("error", "a tag file is not in the declared encoding"),
    "TAG-FILE-BOM": ("warning", "a UTF-8 tag file starts with a byte-order mark"),
    # Structure and manifests
    "DATA-MISSING": ("error", "the payload directory data/ is absent"),
    "MANIFEST-MISSING": ("error", "no payload manifest"),
    "MANIFEST-NAME": ("warning", "a file named like a manifest but not manifest-<alg>.txt"),
    "ALGORITHM-UNSUPPORTED": ("error", "a manifest algorithm Strongroom cannot compute"),
    "ALGORITHM-WEAK": ("warning", "a BagIt 1.0 bag with only md5/sha1 manifests"),
    "MANIFEST-LINE": ("error", "a manifest line is not 'digest whitespace path'"),
    "MANIFEST-BLANK-LINE": ("warning", "a blank line in a manifest"),
    "MANIFEST-DIGEST-SYNTAX": ("error", "a digest is not hexadecimal of the algorithm's length"),
    "MANIFEST-BINARY-MARKER": ("warning", "an md5sum-style '*path' line"),
    "MANIFEST-DUPLICATE": ("error", "a path listed twice in one manifest"),
    "MANIFEST-DUPLICATE-NORMALIZATION": ("warning", "a path listed twice in two Unicode forms"),
    "MANIFEST-DUPLICATE-CASE": ("warning", "a path listed twice, differing only by case"),
    "MANIFEST-DIRECTORY": ("error", "a manifest lists a directory"),
    "PATH-DOT-SLASH": ("warning", "a path written with a leading './'"),
    "PATH-UNSAFE": ("error", "a path that would reach outside the bag"),
    "PATH-NOT-PAYLOAD": ("error", "a payload manifest or fetch.txt names a path outside data/"),
    "PAYLOAD-UNLISTED": ("error", "a payload file missing from a payload manifest"),
    "PAYLOAD-MISSING": ("error", "a payload file listed in a manifest is absent"),
    "PAYLOAD-DIGEST-MISMATCH": ("error", "a payload file's digest differs from its manifest"),
    "NAME-NORMALIZATION-COLLISION": ("warning", "two names in one directory equal after NFC"),
    "NAME-CASE-COLLISION": ("warning", "two names in one directory differ only by case"),
    "SYSTEM-FILE": ("warning", "an operating-system metadata file (.DS_Store, Thumbs.db...)"),
    "EMPTY-DIRECTORY": ("warning", "an empty payload directory (manifests cannot keep it)"),
    # Tag manifests
    "TAG-MANIFEST-OMITS-MANIFEST": ("error", "a tag manifest does not list a payload manifest"),
    "TAG-MANIFEST-LISTS-TAG-MANIFEST": ("error", "a tag manifest lists a tag manifest"),
    "TAG-MANIFEST-LISTS-PAYLOAD": ("error", "a tag manifest lists a payload file"),
    "TAG-UNLISTED": ("warning", "a tag file not listed in every tag manifest"),
    "TAG-MISSING": ("error", "a tag file listed in a tag manifest is absent"),
    "TAG-DIGEST-MISMATCH": ("error", "a tag file's digest differs from its tag manifest"),
    # bag-info.txt
    "BAGINFO-SYNTAX": ("error", "a bag-info.txt line is not 'Label: value' or a continuation"),
    "BAGINFO-DATE": ("warning", "Bagging-Date is not YYYY-MM-DD"),
    "BAGINFO-BAG-COUNT": ("warning", "Bag-Count is not 'N of T' (T may be '?')"),
    "BAGINFO-REPEATED": ("warning", "a label that should not repeat is repeated"),
    "OXUM-SYNTAX": ("error", "Payload-Oxum is not octets.filecount"),
    "OXUM-REPEATED": ("error", "Payload-Oxum appears more than once"),
    "OXUM-MISMATCH": ("error", "Payload-Oxum differs from the payload on disk"),
    # fetch.txt
    "FETCH-LINE": ("error", "a fetch.txt line is not 'URL length path'"),
    "FETCH-URL": ("error", "a fetch.txt URL is not an absolute URI"),
    "FETCH-LENGTH": ("error", "a fetch.txt length is not a number or '-', or differs"),
    "FETCH-NOT-IN-MANIFEST": ("error", "a fetch.txt path is not in every payload manifest"),
    "FETCH-PENDING": ("error", "a fetch.txt file is not fetched yet: the bag is incomplete"),
    # Profiles (BagIt Profiles 1.4)
    "PROFILE-BAGIT-VERSION": ("error", "the profile does not accept this BagIt version (fatal)"),
    "PROFILE-SERIALIZATION": ("error", "the profile's Serialization rule is not met (fatal)"),
    "PROFILE-IDENTIFIER": ("error", "bag-info.txt does not name the profile"),
    "PROFILE-UNKNOWN": ("info", "the bag names a profile Strongroom does not ship"),
    "PROFILE-BAGINFO-REQUIRED": ("error", "a bag-info label the profile requires is absent"),
    "PROFILE-BAGINFO-RECOMMENDED": ("warning", "a bag-info label the profile recommends is absent"),
    "PROFILE-BAGINFO-VALUE": ("error", "a bag-info value the profile does not allow"),
    "PROFILE-BAGINFO-REPEATED": ("error", "a bag-info label the profile says is not repeatable"),
    "PROFILE-MANIFEST-REQUIRED": ("error", "a payload manifest the profile requires is absent"),
    "PROFILE-MANIFEST-NOT-ALLOWED": ("error", "a payload manifest the profile does not allow"),
    "PROFILE-TAG-MANIFEST-REQUIRED": ("error", "a tag manifest the profile requires is absent"),
    "PROFILE-TAG-MANIFEST-NOT-ALLOWED": ("error", "a tag manifest the profile does not allow"),
    "PROFILE-FETCH-NOT-ALLOWED": ("error", "fetch.txt present, the profile forbids it"),
    "PROFILE-FETCH-REQUIRED": ("error", "fetch.txt absent, the profile requires it"),
    "PROFILE-DATA-NOT-EMPTY": ("error", "Data-Empty: data/ holds more than one empty file"),
    "PROFILE-TAG-FILE-REQUIRED": ("error", "a tag file the profile requires is absent"),
    "PROFILE-TAG-FILE-NOT-ALLOWED": ("error", "a tag file the profile does not allow"),
    "PROFILE-PAYLOAD-FILE-REQUIRED": ("error", "a payload path the profile requires is absent"),
    "PROFILE-PAYLOAD-FILE-NOT-ALLOWED": ("error", "a payload file the profile does not allow"),
}


@dataclass
class Collector:
    """The findings of one validation, with what the checks learn about the bag as they go."""

    bag: Path
    findings: list[Finding] = field(default_factory=list)
    #: (major, minor) of BagIt-Version; 1.0 rules apply when unknown.
    version: tuple[int, int] = (1, 0)
    version_text: str | None = None
    encoding: str = "utf-8"

    @property
    def strict(self) -> bool:
        """True when RFC 8493 (BagIt 1.0 or later) rules apply rather than the older drafts'."""
        return self.version >= (1, 0)

    def add(self, code: str, path: str, message: str, *, severity: Severity | None = None,
            expected: str | None = None, found: str | None = None) -> None:
        """Record one finding; ``severity`` defaults to the code's usual one."""
        usual, _ = CODES[code]
        self.findings.append(Finding(code=code, severity=severity or usual, path=path,
                                     message=message, expected=expected, found=found))

    def by_version(self, code: str, path: str, message: str, *, expected: str | None = None,
                   found: str | None = None) -> None:
        """An error under BagIt 1.0, a warning under the older drafts."""
        self.add(code, path, message, severity="error" if self.strict else "warning",
                 expected=expected, found=found)
