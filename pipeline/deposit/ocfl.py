"""``ocfl:///path``: an OCFL 1.1 storage root (the way Fedora 6 and others keep objects), via ocfl-py.

Each bag is an OCFL object whose identifier is the record's identifier URI,
``urn:strongroom:record:<External-Identifier>`` (OCFL wants a URI: ocfl-py's W005), or the
``External-Identifier`` itself when it is already a URI; an object an earlier Strongroom made
under the bare identifier is still found and extended.  The whole bag, tag files included, is one
version's content, so every version checked out is a valid bag.  Bag
``<id>.v<N>`` is version ``vN`` of object ``<id>``: versions are deposited in order, and an
earlier version deposited again is compared, never rewritten.  Objects are placed by the
registered layout 0003 (hashed n-tuple tree with the id as last directory) unless ``?layout=``
names another layout ocfl-py knows.

An OCFL 1.0 storage root is used as it is: new objects in it are OCFL 1.0 objects, and every
object keeps its own specification version when a version is added (ocfl-py would declare each
new version 1.1, which a 1.0 object - and a 1.0 root - must not hold).  An object of the bag's
identifier that another tool made (a version holding no ``bagit.txt``) is refused by name.

Crash safety (ocfl-py writes in place, so Strongroom orders the writes itself):

* a new object is built complete in ``<root>/extensions/strongroom-staging/`` (outside the storage
  hierarchy, which readers do not walk), flushed, validated by ocfl-py, verified against the bag,
  then renamed to its place in one step;
* a new version directory is built there too, verified, then renamed into the object; the root
  ``inventory.json`` and its sidecar are replaced (``os.replace``) last.  A run killed between
  those steps leaves an object whose newest version directory is complete (it appeared by rename)
  but not yet in the root inventory: the next deposit rolls it forward from that version's own
  inventory.  Staging leftovers are removed by the next deposit.

Writes into one storage root are serialised by an advisory lock (``flock``) on the root directory.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def _import_ocfl() -> None:
    """Import ocfl-py without its side effect on logging.

    ocfl-py imports ``pairtree``, whose modules call ``logging.basicConfig(level=INFO)`` on import:
    that would turn on INFO output of every library in the process (Prefect's HTTP client, ocfl-py's
    per-object chatter) on the user's terminal.  The root logger is put back as it was.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    import ocfl  # noqa: F401
    import ocfl.validator  # noqa: F401

    root.setLevel(level)
    root.handlers[:] = handlers


_import_ocfl()
import ocfl  # noqa: E402 - already imported above, bound here for use and for the type checker
from ocfl.validator import Validator  # noqa: E402

from pipeline import SOFTWARE_NAME, __version__
from pipeline.bag.names import unsafe_reason
from pipeline.deposit.base import (
    DepositResult, already_held, Fixity, Target, algorithms_of, bag_expectations, bag_identity, compare,
    is_plain_file, mismatch, os_errors, redact, result_counts, safe_join, split_bag_name, wants_create,
)
from pipeline.durable import flush_tree, fsync_path, staging_dir
from pipeline.errors import DepositError, UsageError
from pipeline.fixity import digest_file

DEFAULT_LAYOUT = "0003-hash-and-id-n-tuple-storage-layout"
#: The record identifier URI an object's id is made from (as pipeline.dublin_core.item_iri).
RECORD_URN = "urn:strongroom:record:"
#: Storage root declarations Strongroom writes into, newest first.
ROOT_DECLARATIONS = {"1.1": "0=ocfl_1.1", "1.0": "0=ocfl_1.0"}
STAGING = ("extensions", "strongroom-staging")
INVENTORY = "inventory.json"
SIDECAR = "inventory.json.sha512"


class OcflTarget(Target):
    """Bags kept as versions of OCFL objects in one OCFL 1.1 storage root."""

    scheme = "ocfl"
    max_concurrency = 1  # writes into one storage root are serialised by its lock anyway

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query, keep_blank_values=True)
        if parts.netloc not in ("", "localhost") or set(query) - {"layout", "create"} or parts.fragment:
            raise UsageError(f"'{redact(url)}': use ocfl:///absolute/path[?layout=NAME][&create=1]")
        self.create = wants_create(url, query)
        root = Path(unquote(parts.path))
        if not root.is_absolute() or str(root) == "/":
            raise UsageError(f"'{redact(url)}': the storage root must be an absolute path below /")
        self.root = root
        self.layout = query.get("layout", [DEFAULT_LAYOUT])[0]
        super().__init__("ocfl://" + root.as_posix())

    # -- Target

    def put(self, bag: Path) -> DepositResult:
        with os_errors(self.url):
            return self._put(bag)

    def _put(self, bag: Path) -> DepositResult:
        name, identifier = bag_identity(bag)
        parsed = split_bag_name(name)
        if parsed is None:
            raise DepositError(f"{bag}: an OCFL deposit needs a bag named <record-id>.v<N>")
        if parsed[0] != identifier:  # bags are found again by name: name and object id must agree
            raise DepositError(f"{bag}: the name says record '{parsed[0]}' but External-Identifier is "
                               f"'{identifier}'; an OCFL object is found by the bag's name")
        number = parsed[1]
        expected = bag_expectations(bag)
        self._ensure_root()
        with self._locked():
            staging = self._fresh_staging()
            try:
                object_id, objdir = self._object_of(identifier)
                _roll_forward(objdir, staging)
                head = _head(objdir)
                if head:
                    _refuse_foreign(objdir, object_id)
                if number <= head:
                    return self._already_held(name, objdir, number, expected)
                if number != head + 1:
                    raise DepositError(f"{name}: OCFL object {identifier} has {head} version(s); "
                                       f"deposit {identifier}.v{head + 1} first")
                if head == 0 and os.path.lexists(objdir):
                    raise DepositError(f"{objdir}: exists but holds no OCFL object; it needs a person's look")
                if head == 0:
                    self._create(bag, object_id, objdir, staging, name, expected)
                else:
                    self._add_version(bag, objdir, staging, name, expected)
            finally:
                self._remove_staging()
        files, octets = result_counts(expected)
        return DepositResult(bag=name, outcome="deposited", location=self._location(name), files=files,
                             bytes=octets, verified=True, detail=f"OCFL object {object_id} v{number}")

    def locate(self, bag_name: str) -> str | None:
        found = self._find(bag_name)
        return self._location(bag_name) if found else None

    def list(self) -> list[str]:
        if self._root_spec() is None:
            return []
        names: list[str] = []
        store = ocfl.StorageRoot(root=str(self.root))
        for dirpath, _ in store.list_objects():
            inventory = _read_inventory(self.root / dirpath)
            record_id = str(inventory["id"]).removeprefix(RECORD_URN)
            names.extend(f"{record_id}.v{n}" for n in range(1, _version_count(inventory) + 1))
        return sorted(names)

    def fixity(self, bag_name: str, algorithms: Sequence[str]) -> Fixity:
        found = self._find(bag_name)
        if found is None:
            raise DepositError(f"{self.url}: holds no bag named {bag_name}")
        objdir, number = found
        return _version_fixity(objdir, _read_inventory(objdir), number, algorithms)

    # -- placing objects

    def _location(self, name: str) -> str:
        from pipeline.deposit import location_of

        return location_of(self.url, name)

    def _find(self, bag_name: str) -> tuple[Path, int] | None:
        parsed = split_bag_name(bag_name)
        if parsed is None or self._root_spec() is None:
            return None
        objdir = self._object_of(parsed[0])[1]
        if not (objdir / SIDECAR).is_file() or _head(objdir) < parsed[1]:
            return None
        return objdir, parsed[1]

    def _root_spec(self) -> str | None:
        """The OCFL version the storage root declares ("1.1", "1.0"), or None for no root."""
        return next((v for v, name in ROOT_DECLARATIONS.items() if (self.root / name).is_file()), None)

    def _object_of(self, identifier: str) -> tuple[str, Path]:
        """(object id, object directory) of a record: its URI, unless an object an earlier
        Strongroom made under the bare identifier is there (it is extended, not duplicated)."""
        object_id = object_id_of(identifier)
        objdir = self._object_dir(object_id)
        if object_id != identifier and not os.path.lexists(objdir):
            legacy = self._object_dir(identifier)
            if (legacy / INVENTORY).is_file():
                return identifier, legacy
        return object_id, objdir

    def _object_dir(self, identifier: str) -> Path:
        try:
            rel = ocfl.StorageRoot(root=str(self.root)).object_path(identifier)
        except (ocfl.StorageRootException, AttributeError) as exc:
            raise DepositError(f"{self.root}: not a usable OCFL storage root with a layout ({exc})") from exc
        reason = unsafe_reason(str(rel))
        if reason:
            raise DepositError(f"{self.root}: layout maps '{identifier}' outside the root ({reason})")
        return self.root / str(rel)

    def destination_problem(self) -> str | None:
        if self._root_spec() is not None:
            return None
        if self.root.is_dir() and not any(self.root.iterdir()):
            return None  # an empty directory made for the purpose: the user chose this place
        if os.path.lexists(self.root):
            others = sorted(p.name for p in self.root.glob("0=ocfl_*")) if self.root.is_dir() else []
            if others:
                return (f"{self.root}: declares {', '.join(others)}; Strongroom writes OCFL 1.1 and 1.0 "
                        "storage roots only")
            return (f"{self.root}: exists but is not an OCFL 1.1 storage root (nor a 1.0 one: no 0=ocfl_1.1 "
                    "or 0=ocfl_1.0 declaration)")
        if self.create:
            return None
        return (f"{self.url}: no such directory (a missing storage root is never created unless the URL "
                "asks for it with ?create=1)")

    def _ensure_root(self) -> None:
        if self._root_spec() is not None:
            return
        problem = self.destination_problem()
        if problem:
            raise DepositError(problem)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        if self.root.exists():
            self.root.rmdir()  # ocfl-py creates the root itself and refuses an existing one
        try:
            ocfl.StorageRoot(root=str(self.root), layout_name=self.layout).initialize(spec_version="1.1")
        except ocfl.StorageRootException:
            if not (self.root / "0=ocfl_1.1").is_file():  # not merely another process being first
                raise
        except Exception as exc:  # noqa: BLE001 - ocfl-py raises bare Exception for an unknown layout
            raise UsageError(f"{self.url}: cannot create an OCFL storage root: {exc}") from exc

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _staging_root(self) -> Path:
        return self.root.joinpath(*STAGING)

    def _fresh_staging(self) -> Path:
        """An empty staging directory; anything left there by a killed deposit is rolled back."""
        self._remove_staging()
        staging = self._staging_root()
        staging.mkdir(parents=True)
        return staging_dir(staging, "tmp")

    def _remove_staging(self) -> None:
        shutil.rmtree(self._staging_root(), ignore_errors=True)
        extensions = self.root / STAGING[0]
        if extensions.is_dir() and not any(extensions.iterdir()):
            extensions.rmdir()  # an extensions/ of our own making, now empty, would only draw a warning

    # -- writing

    def _already_held(self, name: str, objdir: Path, number: int, expected: Fixity) -> DepositResult:
        found = _version_fixity(objdir, _read_inventory(objdir), number, algorithms_of(expected))
        return already_held(name, self._location(name), compare(found, expected), expected, held="version")

    def _create(self, bag: Path, identifier: str, objdir: Path, staging: Path, name: str,
                expected: Fixity) -> None:
        built = staging / "object"
        obj = ocfl.Object(identifier=identifier, spec_version=self._root_spec() or "1.1")
        try:
            obj.create(srcdir=str(bag), metadata=_metadata(name), objdir=str(built))
        except (ocfl.ObjectException, ocfl.NewVersionException, OSError) as exc:
            raise DepositError(f"{bag}: cannot build OCFL object {identifier}: {exc}") from exc
        flush_tree(built)
        _validate(built, check_digests=True)
        findings = compare(_version_fixity(built, _read_inventory(built), 1, algorithms_of(expected)), expected)
        if findings:
            raise mismatch(self._location(name), findings, "the copy does not match the bag's manifests")
        objdir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(built, objdir)  # absent, checked under the root's lock
        for parent in [objdir.parent, *objdir.parent.parents]:
            fsync_path(parent)
            if parent == self.root:
                break

    def _add_version(self, bag: Path, objdir: Path, staging: Path, name: str, expected: Fixity) -> None:
        obj = ocfl.Object()
        try:
            new = obj.start_new_version(objdir=str(objdir), srcdir=str(bag), metadata=_metadata(name),
                                        carry_content_forward=False)
            new.add_from_srcdir()
        except (ocfl.ObjectException, ocfl.NewVersionException, OSError) as exc:
            raise DepositError(f"{objdir}: cannot prepare a new OCFL version: {exc}") from exc
        inventory = new.inventory
        # ocfl-py 2.1 declares every new version 1.1; the object keeps its own version (its
        # 0=ocfl_object_ declaration, which Strongroom does not rewrite, and its root's rules).
        inventory.spec_version = _spec_of(_read_inventory(objdir))
        vdir = str(inventory.head)
        for source, content_path in new.files_to_copy.items():
            target = safe_join(staging, content_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(safe_join(bag, source.lstrip("/")), target, follow_symlinks=False)
        _write_inventory(staging / vdir, inventory.as_json())
        flush_tree(staging / vdir)

        def resolve(content_path: str) -> Path:
            return safe_join(staging if content_path.startswith(vdir + "/") else objdir, content_path)

        found = _version_fixity(objdir, json.loads(inventory.as_json()), _number(vdir), algorithms_of(expected),
                                resolve=resolve)
        findings = compare(found, expected)
        if findings:
            raise mismatch(self._location(name), findings, "the new version does not match the bag's manifests")
        os.rename(staging / vdir, objdir / vdir)
        fsync_path(objdir)
        _publish_root_inventory(objdir, vdir, staging)
        _validate(objdir, check_digests=False)


# ----------------------------------------------------------------------------- inventories


def _metadata(name: str) -> Any:
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ocfl.VersionMetadata(created=created, message=f"Deposit of bag {name} by {SOFTWARE_NAME} {__version__}",
                                name=SOFTWARE_NAME, address="urn:strongroom:agent")


def object_id_of(identifier: str) -> str:
    """The OCFL object id of a record: its identifier URI (``urn:strongroom:record:<id>``), or the
    identifier itself when it already is a URI (``scheme:...``)."""
    scheme, colon, _ = identifier.partition(":")
    if colon and scheme[:1].isalpha() and all(c.isalnum() or c in "+-." for c in scheme):
        return identifier
    return RECORD_URN + identifier


def _spec_of(inventory: dict[str, Any]) -> str:
    """The OCFL version an inventory declares (``https://ocfl.io/1.0/spec/#inventory``: "1.0")."""
    m = re.fullmatch(r"https://ocfl\.io/(\d+\.\d+)/spec/#inventory", str(inventory.get("type", "")))
    if m is None:
        raise DepositError(f"OCFL object {inventory.get('id')!r}: inventory type {inventory.get('type')!r} "
                           "names no OCFL version")
    return m.group(1)


def _refuse_foreign(objdir: Path, object_id: str) -> None:
    """Refuse an object another tool made under the bag's id: every version must hold a bag."""
    inventory = _read_inventory(objdir)
    for vname, version in sorted(inventory["versions"].items(), key=lambda kv: _number(kv[0])):
        paths = {p for paths in version.get("state", {}).values() for p in paths}
        if "bagit.txt" not in paths:
            user = version.get("user") if isinstance(version.get("user"), dict) else {}
            made_by = f" (made by {user['name']})" if isinstance(user.get("name"), str) else ""
            raise DepositError(f"{objdir}: the storage root already holds OCFL object '{object_id}', "
                               f"not made by Strongroom: its version {vname}{made_by} holds no bag "
                               "(no bagit.txt); nothing deposited, the object is left as it is")


def _read_inventory(objdir: Path) -> dict[str, Any]:
    try:
        with open(objdir / INVENTORY, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise DepositError(f"{objdir / INVENTORY}: unreadable OCFL inventory: {exc}") from exc
    problem = _inventory_problem(data)
    if problem or not isinstance(data, dict):
        raise DepositError(f"{objdir / INVENTORY}: not an OCFL inventory ({problem})")
    return data


def _inventory_problem(data: Any) -> str | None:
    """What makes ``data`` unusable as an inventory here (read from a repository: trust nothing)."""
    def path_map(value: Any) -> bool:  # {digest: [path, ...]}
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(p, str) for p in v)
            for k, v in value.items())

    if not isinstance(data, dict) or not isinstance(data.get("id", ""), str):
        return "not a JSON object with a string id"
    versions = data.get("versions")
    if not isinstance(versions, dict) or not path_map(data.get("manifest", {})):
        return "versions or manifest malformed"
    for name, version in versions.items():
        if not (isinstance(name, str) and name[:1] == "v" and name[1:].isdigit()):
            return f"version name {name!r} is not v<N>"
        if not isinstance(version, dict) or not path_map(version.get("state", {})):
            return f"version {name} has no usable state"
    return None


def _number(vdir: str) -> int:
    return int(vdir.lstrip("v"))


def _version_count(inventory: dict[str, Any]) -> int:
    return max((_number(v) for v in inventory["versions"]), default=0)


def _head(objdir: Path) -> int:
    """Versions in the object's root inventory; 0 when there is no object."""
    if not (objdir / INVENTORY).is_file():
        return 0
    return _version_count(_read_inventory(objdir))


def _version_fixity(objdir: Path, inventory: dict[str, Any], number: int, algorithms: Sequence[str],
                    resolve: Callable[[str], Path] | None = None) -> Fixity:
    """Fixity of the bag held as version ``number``: every logical file re-read from its content path."""
    vdir = next((v for v in inventory["versions"] if _number(v) == number), None)
    if vdir is None:
        raise DepositError(f"{objdir}: OCFL object has no version {number}")
    manifest: dict[str, list[str]] = inventory.get("manifest", {})
    result: Fixity = {}
    for digest, logical_paths in inventory["versions"][vdir].get("state", {}).items():
        content = manifest.get(digest)
        if not content:
            raise DepositError(f"{objdir}: inventory state names digest {digest[:16]}... not in its manifest")
        path = resolve(content[0]) if resolve else safe_join(objdir, content[0])
        # A content file reached through a link is treated as absent: never read outside the object.
        plain = is_plain_file(path, below=objdir if path.is_relative_to(objdir) else None)
        measured = digest_file(path, algorithms) if plain else None
        for logical in logical_paths:
            if unsafe_reason(logical):
                raise DepositError(f"{objdir}: unsafe logical path '{logical}' in the inventory")
            if measured is not None:
                result[logical] = measured
    return result


def _write_inventory(vdir: Path, text: str) -> None:
    """A version's inventory and its sidecar (sha512, as the object's digest algorithm)."""
    vdir.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    (vdir / INVENTORY).write_bytes(data)
    (vdir / SIDECAR).write_text(f"{hashlib.sha512(data).hexdigest()} {INVENTORY}\n", encoding="utf-8")


def _publish_root_inventory(objdir: Path, vdir: str, staging: Path) -> None:
    """Copy version ``vdir``'s inventory and sidecar to the object root, each by one atomic replace."""
    for name in (INVENTORY, SIDECAR):
        temp = staging / f"root-{name}"
        shutil.copyfile(objdir / vdir / name, temp)
        fsync_path(temp)
        os.replace(temp, objdir / name)
    fsync_path(objdir)


def _roll_forward(objdir: Path, staging: Path) -> None:
    """Finish a version a killed deposit renamed into the object but did not yet publish."""
    if not (objdir / INVENTORY).is_file():
        return
    published = _version_count(_read_inventory(objdir))
    newest = max((_number(p.name) for p in objdir.glob("v*") if p.name[1:].isdigit() and p.is_dir()),
                 default=0)
    if newest <= published and _sidecar_ok(objdir):
        return
    vdir = f"v{newest}"
    if not _sidecar_ok(objdir / vdir):
        raise DepositError(f"{objdir}: version {vdir} is incomplete; the object needs attention")
    _publish_root_inventory(objdir, vdir, staging)


def _sidecar_ok(where: Path) -> bool:
    try:
        recorded = (where / SIDECAR).read_text(encoding="utf-8").split()[0]
        return hashlib.sha512((where / INVENTORY).read_bytes()).hexdigest() == recorded.lower()
    except (OSError, IndexError):
        return False


def _validate(objdir: Path, *, check_digests: bool) -> None:
    validator = Validator(check_digests=check_digests, log_warnings=False)
    if not validator.validate_object(str(objdir)):
        raise DepositError(f"{objdir}: OCFL validation failed: {validator.status_str().strip()[:500]}")


# ----------------------------------------------------------------------------- repair (pipeline.audit.repair)

#: Where a repair stages content files: inside the storage root (one filesystem, so a rename puts
#: them in place), outside the storage hierarchy, and apart from a deposit's own staging.
REPAIR_STAGING = ("extensions", "strongroom-repair")


def content_file(target: OcflTarget, bag_name: str, path: str) -> tuple[Path, str, str]:
    """Where the held bag's file ``path`` is stored, and what its inventory says it must hold.

    Returns (content file, the inventory's digest algorithm, the digest).  The logical path is
    looked up in the bag's version state; the content path is the manifest's first for that digest
    (the one :meth:`OcflTarget.fixity` reads).  DepositError when the bag or the file is not held.
    """
    found = target._find(bag_name)
    if found is None:
        raise DepositError(f"{target.url}: holds no bag named {bag_name}")
    objdir, number = found
    inventory = _read_inventory(objdir)
    vdir = next((v for v in inventory["versions"] if _number(v) == number), f"v{number}")
    for digest, logical in inventory["versions"].get(vdir, {}).get("state", {}).items():
        if path in logical:
            content = inventory.get("manifest", {}).get(digest)
            if not content:
                raise DepositError(f"{objdir}: inventory state names digest {digest[:16]}... not in its manifest")
            algorithm = str(inventory.get("digestAlgorithm", "sha512"))
            return safe_join(objdir, content[0]), algorithm, digest.lower()
    raise DepositError(f"{objdir}: version {vdir} holds no file '{path}'")


def repair_staging(target: OcflTarget) -> Path:
    """A fresh directory for a repair's staged content files, inside the storage root."""
    parent = target.root.joinpath(*REPAIR_STAGING)
    parent.mkdir(parents=True, exist_ok=True)
    return staging_dir(parent, "repair.")


def replace_content(target: OcflTarget, content: Path, staged: Path) -> None:
    """Put a verified, flushed ``staged`` file in place of ``content`` in one rename.

    The inventory is not touched: a repaired content file gets back the bytes its inventory digest
    names, and the object's history stays as written.  Serialised with deposits into the root.
    """
    with target._locked():
        content.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, content)
        fsync_path(content.parent)


def remove_repair_staging(target: OcflTarget) -> None:
    """Remove what repairs staged in the root (a killed repair's leftovers included)."""
    shutil.rmtree(target.root.joinpath(*REPAIR_STAGING), ignore_errors=True)
    extensions = target.root / REPAIR_STAGING[0]
    if extensions.is_dir() and not any(extensions.iterdir()):
        extensions.rmdir()
