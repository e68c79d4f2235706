"""BagIt Profiles 1.4.0: load a profile, check a bag against it, find the profiles Strongroom ships.

Every key of the 1.4.0 specification is checked, including those the ``bagit-profile`` package
(1.3.1) does not know: ``Payload-Files-Required``/``-Allowed``, ``Data-Empty`` and
``Fetch.txt-Required``.  As the specification asks, ``Accept-BagIt-Version`` and serialisation are
checked first and are fatal: when they fail nothing else is reported.

Path patterns (``Tag-Files-Allowed``, ``Payload-Files-Allowed``) are matched with ``fnmatch``
semantics, so ``*`` also matches ``/`` and ``data/*`` allows the whole payload tree, which is what
published profiles mean by it.  The non-standard ``recommended`` flag some profiles (BTR) put on a
Bag-Info tag gives a warning when the tag is absent.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.bag.validate_codes import Collector
from pipeline.bag.validate_text import bag_info_name, read_bag_info, read_bagit_txt
from pipeline.errors import UsageError
from pipeline.findings import Finding

#: Where the profiles Strongroom ships live (``schemas/profiles`` of the Strongroom checkout).
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "schemas" / "profiles"
#: Files every bag may hold whatever the profile's Tag-Files-Allowed says (BagIt's own).
_BAGIT_FILES = ("bagit.txt", "bag-info.txt", "package-info.txt", "fetch.txt",
                "manifest-*.txt", "tagmanifest-*.txt")


class TagRule(BaseModel):
    """The rules for one bag-info.txt label."""

    model_config = ConfigDict(extra="allow", frozen=True)

    required: bool = False
    values: list[str] = Field(default_factory=list)
    repeatable: bool = True
    description: str = ""
    recommended: bool = False


class Profile(BaseModel):
    """A BagIt Profile (1.4.0 keys; unknown keys such as APTrust's ``Other-Info`` are kept)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    info: dict[str, str] = Field(alias="BagIt-Profile-Info")
    bag_info: dict[str, TagRule] = Field(default_factory=dict, alias="Bag-Info")
    manifests_required: list[str] = Field(default_factory=list, alias="Manifests-Required")
    manifests_allowed: list[str] | None = Field(default=None, alias="Manifests-Allowed")
    tag_manifests_required: list[str] = Field(default_factory=list, alias="Tag-Manifests-Required")
    tag_manifests_allowed: list[str] | None = Field(default=None, alias="Tag-Manifests-Allowed")
    tag_files_required: list[str] = Field(default_factory=list, alias="Tag-Files-Required")
    tag_files_allowed: list[str] | None = Field(default=None, alias="Tag-Files-Allowed")
    payload_files_required: list[str] = Field(default_factory=list, alias="Payload-Files-Required")
    payload_files_allowed: list[str] | None = Field(default=None, alias="Payload-Files-Allowed")
    allow_fetch: bool = Field(default=True, alias="Allow-Fetch.txt")
    fetch_required: bool = Field(default=False, alias="Fetch.txt-Required")
    data_empty: bool = Field(default=False, alias="Data-Empty")
    serialization: Literal["forbidden", "required", "optional"] = Field(default="optional",
                                                                        alias="Serialization")
    accept_serialization: list[str] = Field(default_factory=list, alias="Accept-Serialization")
    accept_bagit_version: list[str] = Field(alias="Accept-BagIt-Version", min_length=1)

    @property
    def identifier(self) -> str:
        """The profile's URI (``BagIt-Profile-Info`` / ``BagIt-Profile-Identifier``)."""
        return self.info["BagIt-Profile-Identifier"]


def load_profile(path: Path) -> Profile:
    """Read and check a profile JSON file; UsageError naming the file and the problem if bad."""
    try:
        data = json.loads(_read_profile(path).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: cannot read the profile: not UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON (line {exc.lineno}): {exc.msg}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a BagIt profile: the profile must be a JSON object")
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{path}: not a BagIt profile: {where}: {first['msg']}") from exc
    problem = _profile_problem(profile)
    if problem:
        raise UsageError(f"{path}: not a usable BagIt profile: {problem}")
    return profile


#: A profile is a page of JSON; anything much larger is a wrong file, not a profile.
MAX_PROFILE_BYTES = 1 << 20


def _read_profile(path: Path) -> bytes:
    """The bytes of a profile file; a FIFO or device is refused before it is opened (it could block)."""
    try:
        if not path.is_file():
            problem = "not a regular file" if path.exists() else "No such file or directory"
            raise UsageError(f"{path}: cannot read the profile: {problem}")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the profile: {exc.strerror or exc}") from exc
    if len(raw) > MAX_PROFILE_BYTES:
        raise UsageError(f"{path}: larger than {MAX_PROFILE_BYTES >> 20} MiB: not a BagIt profile")
    return raw


def _profile_problem(p: Profile) -> str | None:
    """What makes a well-formed profile self-contradictory (spec 1.4.0 'MUST's), or None."""
    for key in ("Source-Organization", "External-Description", "Version", "BagIt-Profile-Identifier"):
        if not p.info.get(key):
            return f"BagIt-Profile-Info lacks {key}"
    pairs = [("Manifests", p.manifests_required, p.manifests_allowed),
             ("Tag-Manifests", p.tag_manifests_required, p.tag_manifests_allowed)]
    for name, required, allowed in pairs:
        if allowed is not None and set(required) - set(allowed):
            return f"{name}-Required {sorted(set(required) - set(allowed))} not in {name}-Allowed"
    for name, files, patterns in [("Tag-Files", p.tag_files_required, p.tag_files_allowed),
                                  ("Payload-Files", p.payload_files_required, p.payload_files_allowed)]:
        uncovered = [f for f in files if patterns is not None and not _matches(f.rstrip("/"), patterns)
                     and not _matches(f, patterns)]
        if uncovered:
            return f"{name}-Required {uncovered} not covered by {name}-Allowed"
    if p.fetch_required and not p.allow_fetch:
        return "Fetch.txt-Required is true but Allow-Fetch.txt is false"
    if p.serialization == "required" and not p.accept_serialization:
        return "Serialization is required but Accept-Serialization is empty"
    return None


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Profile]:
    found: dict[str, Profile] = {}
    if SHIPPED_DIR.is_dir():
        for path in sorted(SHIPPED_DIR.glob("*.json")):
            profile = load_profile(path)
            found[profile.identifier] = profile
    return found


def shipped_profile(identifier: str) -> Profile | None:
    """The profile Strongroom ships under this identifier (``schemas/profiles/``), or None."""
    return _shipped().get(identifier.strip())


def shipped_profiles() -> list[Profile]:
    """Every profile Strongroom ships."""
    return list(_shipped().values())


def check_profile(bag: Path, profile: Profile) -> list[Finding]:
    """Check the bag directory ``bag`` against ``profile``; findings, never an exception.

    BagIt version and serialisation come first and are fatal, as the specification requires.
    """
    c = Collector(bag=bag)
    read_bagit_txt(c)
    quiet = Collector(bag=bag, version=c.version, encoding=c.encoding)
    out = Collector(bag=bag, version=c.version)
    if not _check_fatal(out, profile, c.version_text, bag):
        return out.findings
    info = read_bag_info(quiet) or []
    _check_bag_info(out, profile, info)
    names = _root_names(bag)
    _check_manifests(out, profile, names)
    _check_fetch(out, profile, names)
    _check_tag_files(out, profile, _tag_files(bag))
    _check_payload(out, profile, bag)
    return out.findings


def _check_fatal(out: Collector, p: Profile, version: str | None, bag: Path) -> bool:
    if version is None or version not in p.accept_bagit_version:
        out.add("PROFILE-BAGIT-VERSION", "bagit.txt", f"BagIt-Version {version or '(unreadable)'} is "
                f"not accepted by {p.identifier} (accepts {', '.join(p.accept_bagit_version)}); "
                "nothing else checked against this profile")
        return False
    if p.serialization == "required" and bag.is_dir():
        out.add("PROFILE-SERIALIZATION", "", f"{p.identifier} requires a serialized bag "
                f"({', '.join(p.accept_serialization)}); this is a directory; nothing else checked")
        return False
    return True


def _check_bag_info(out: Collector, p: Profile, info: list[tuple[str, str]]) -> None:
    where = bag_info_name(out.version)
    values: dict[str, list[str]] = {}
    for label, value in info:
        values.setdefault(label.lower(), []).append(value)
    named = [v.strip() for v in values.get("bagit-profile-identifier", [])]
    if p.identifier not in named:
        other = f" (it names {', '.join(repr(n) for n in named)}, not this profile's own identifier)" if named else ""
        out.add("PROFILE-IDENTIFIER", where, f"has no 'BagIt-Profile-Identifier: {p.identifier}'{other}, "
                "which bags conforming to a profile must carry")
    for label, rule in p.bag_info.items():
        given = [v for v in values.get(label.lower(), []) if v.strip()]
        if not given:
            if rule.required:
                out.add("PROFILE-BAGINFO-REQUIRED", where, f"lacks {label}, which {p.identifier} requires")
            elif rule.recommended:
                out.add("PROFILE-BAGINFO-RECOMMENDED", where, f"lacks {label}, which {p.identifier} recommends")
            continue
        if not rule.repeatable and len(values[label.lower()]) > 1:
            out.add("PROFILE-BAGINFO-REPEATED", where, f"{label} appears {len(values[label.lower()])} "
                    f"times; {p.identifier} says it is not repeatable")
        for value in given if rule.values else []:
            if value not in rule.values:
                out.add("PROFILE-BAGINFO-VALUE", where, f"{label} is {value!r}; {p.identifier} allows "
                        f"only {rule.values}", expected=" | ".join(rule.values), found=value)


def _root_names(bag: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(bag) if e.is_file(follow_symlinks=False))
    except OSError:
        return []


def _algorithms(names: list[str], prefix: str) -> list[str]:
    return [n[len(prefix):-4] for n in names if n.startswith(prefix) and n.endswith(".txt")]


def _check_manifests(out: Collector, p: Profile, names: list[str]) -> None:
    for kind, prefix, required, allowed in [
            ("MANIFEST", "manifest-", p.manifests_required, p.manifests_allowed),
            ("TAG-MANIFEST", "tagmanifest-", p.tag_manifests_required, p.tag_manifests_allowed)]:
        present = _algorithms(names, prefix)
        for alg in required:
            if alg not in present:
                out.add(f"PROFILE-{kind}-REQUIRED", f"{prefix}{alg}.txt",
                        f"is absent; {p.identifier} requires a {alg} {kind.lower().replace('-', ' ')}")
        for alg in present:
            if allowed is not None and alg not in allowed:
                out.add(f"PROFILE-{kind}-NOT-ALLOWED", f"{prefix}{alg}.txt",
                        f"{p.identifier} allows only {', '.join(allowed) or 'none'}")


def _check_fetch(out: Collector, p: Profile, names: list[str]) -> None:
    if "fetch.txt" in names and not p.allow_fetch:
        out.add("PROFILE-FETCH-NOT-ALLOWED", "fetch.txt", f"{p.identifier} does not allow fetch.txt")
    if "fetch.txt" not in names and p.fetch_required:
        out.add("PROFILE-FETCH-REQUIRED", "fetch.txt", f"is absent; {p.identifier} requires it")


def _tag_files(bag: Path) -> list[str]:
    """Bag paths of the files outside data/ (few), without following links."""
    return [rel for rel, _ in _walk(bag, skip_payload=True)]


def _walk(bag: Path, *, skip_payload: bool = False) -> Iterator[tuple[str, int]]:
    """(bag path, size) of every file, streamed in name order; links are listed, not followed."""
    if bag.is_symlink() or not bag.is_dir():  # os.walk would follow a link given as its top
        return
    for root, dirs, files in os.walk(bag):
        dirs.sort()
        rel_root = Path(root).relative_to(bag).as_posix()
        if skip_payload and rel_root == ".":
            dirs[:] = [d for d in dirs if d != "data"]
        prefix = "" if rel_root == "." else f"{rel_root}/"
        for name in sorted(files):
            yield prefix + name, os.lstat(os.path.join(root, name)).st_size


def _matches(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def _check_tag_files(out: Collector, p: Profile, tags: list[str]) -> None:
    for required in p.tag_files_required:
        if required not in tags:
            out.add("PROFILE-TAG-FILE-REQUIRED", required, f"is absent; {p.identifier} requires it")
    if p.tag_files_allowed is None:
        return
    for rel in tags:
        if not _matches(rel, list(_BAGIT_FILES)) and not _matches(rel, p.tag_files_allowed):
            out.add("PROFILE-TAG-FILE-NOT-ALLOWED", rel, f"is a tag file {p.identifier} does not allow "
                    f"(allowed: {', '.join(p.tag_files_allowed) or 'none'})")


def _check_payload(out: Collector, p: Profile, bag: Path) -> None:
    """Data-Empty, Payload-Files-Required and -Allowed in one streamed walk of data/."""
    files = non_empty = 0
    missing = set(p.payload_files_required)
    for rel, size in _walk(bag / "data"):
        rel = f"data/{rel}"
        files, non_empty = files + 1, non_empty + (size > 0)
        missing = {m for m in missing if not (rel == m or (m.endswith("/") and rel.startswith(m)))}
        if p.payload_files_allowed is not None and not _matches(rel, p.payload_files_allowed):
            out.add("PROFILE-PAYLOAD-FILE-NOT-ALLOWED", rel, f"{p.identifier} allows only payload "
                    f"matching {', '.join(p.payload_files_allowed) or 'nothing'}")
    if p.data_empty and (files > 1 or non_empty):
        out.add("PROFILE-DATA-NOT-EMPTY", "data", f"holds {files} file(s); {p.identifier} "
                "requires data/ to be empty or hold a single zero-byte file")
    for required in sorted(missing):
        what = "a non-empty directory" if required.endswith("/") else "a file"
        out.add("PROFILE-PAYLOAD-FILE-REQUIRED", required, f"is absent; {p.identifier} requires {what} here")
