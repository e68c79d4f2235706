"""Repair: heal every recorded copy of a bag from copies verified good, file by file, against the ledger.

For one bag, under a claim on it in the ledger (the audit's lease: no audit and no other repair
takes the bag meanwhile), a repair

1. checks every recorded copy against the ledger's reference (:mod:`pipeline.audit.check`), or
   takes the checks an audit has just made;
2. plans, copy by copy, exactly what differs from the reference: files to rewrite (changed,
   truncated, missing payload; changed or missing tag files and manifests, the consistent rewrite
   of AUD006 included), extra files to quarantine, a whole missing copy to restore.  Each file to
   rewrite needs a *source*: another copy whose file the check found identical to the reference
   (bag directories first: local disks are the cheapest to read).  When some file has none, the
   bag is UNREPAIRABLE and nothing of it is touched;
3. reads each needed file once from its source, hashing every byte as it is read and writing it to
   a staged file for every copy that needs it; a source whose bytes do not match the reference is
   refused (a failed fixity-check event) and the next source is tried;
4. installs the staged files (see :mod:`pipeline.audit.copies`: flushed, re-read, renamed into
   place: a SIGKILL leaves each file old or repaired, and a rerun finishes), moves extra files to
   ``<bags>/.quarantine/<bag>/<time>/<copy>/`` and restores a whole missing deposit from a bag
   directory now intact (the target's own verified deposit);
5. records PREMIS events in the ledger: *fixity check* for each source read, *recovery* per
   repaired file (source copy, repaired copy, digests), *quarantine* per file moved away.

The ledger's reference is never changed.  ``dry_run`` stops after the plan: nothing is written
anywhere, the ledger included.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline.audit.check import BAG_MISSING, CHANGED, CLASSES, EXTRA, REWRITTEN, TAG_CHANGED
from pipeline.audit.check import LocationCheck, check_location
from pipeline.audit.copies import WORK_DIR, Copy, DirectoryCopy, S3Copy, is_partial, open_copy, safe_path
from pipeline.audit.run import _keep_claims
from pipeline.audit.sources import allowed_sources
from pipeline.errors import RepairError, StrongroomError
from pipeline.fixity import digest_copy
from pipeline.ledger import BagReference, CheckRecord, FileReference, utcnow
from pipeline.premis import Outcome, PremisEvent, strongroom_agent

if TYPE_CHECKING:
    from pipeline.ledger import Ledger

#: The quarantine area of a bags directory (hidden: no listing of bags sees it).
QUARANTINE_DIR = ".quarantine"
Outcome_ = Literal["intact", "repaired", "would-repair", "unrepairable", "failed", "busy"]


@dataclass(frozen=True)
class RepairOptions:
    """What a repair may do.

    ``bags_dir``: the bags directory (quarantine and S3 staging live there).  ``sources``: the
    ``--from`` URLs (locations or target URLs) a file may be read from; empty: every copy.
    ``only``: repair only these locations (the others are sources); ``extra``: locations to repair
    besides the recorded ones (the new copy of ``strongroom restore``).  ``wait_seconds``: how long
    to wait for a bag another process holds.  ``on_bytes(n)`` sees every block copied.
    """

    bags_dir: Path
    sources: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    dry_run: bool = False
    lease_seconds: float = 300.0
    wait_seconds: float = 300.0
    on_bytes: Callable[[int], None] | None = None


@dataclass(frozen=True)
class Action:
    """One thing a repair did (or would do) to one copy."""

    action: Literal["rewrite", "quarantine", "restore"]
    location: str
    path: str
    code: str
    source: str = ""
    to: str = ""


@dataclass(frozen=True)
class Refusal:
    """A damaged file no copy could give back: every copy tried and why it was refused."""

    path: str
    tried: tuple[tuple[str, str], ...]


@dataclass
class BagRepair:
    """The repair of one bag."""

    name: str
    outcome: Outcome_
    checks: tuple[LocationCheck, ...] = ()
    actions: list[Action] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is left damaged (or, in a dry run, everything could be repaired)."""
        return self.outcome in ("intact", "repaired", "would-repair")


@dataclass
class RepairReport:
    """Every bag a repair run covered."""

    bags: list[BagRepair] = field(default_factory=list)
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        """0 when nothing was damaged or everything was repaired, 1 when anything is left."""
        return 0 if all(b.ok for b in self.bags) else 1


# -- one bag ---------------------------------------------------------------------------------------


def repair_run(ledger: Ledger, names: Sequence[str], options: RepairOptions,
               checks: Mapping[str, Sequence[LocationCheck]] | None = None,
               on_bag: Callable[[BagRepair], None] | None = None) -> RepairReport:
    """Repair each bag of ``names`` in turn (``checks``: an audit's, by bag name, to start from)."""
    report = RepairReport(dry_run=options.dry_run)
    for name in names:
        result = repair_bag(ledger, name, options, checks=(checks or {}).get(name))
        report.bags.append(result)
        if on_bag is not None:
            on_bag(result)
    return report


def repair_bag(ledger: Ledger, name: str, options: RepairOptions,
               checks: Sequence[LocationCheck] | None = None) -> BagRepair:
    """Check every copy of ``name`` (or use ``checks``) and repair what differs from the reference.

    RepairError when the ledger holds no reference for the bag; LedgerError when it does not know it.
    """
    bag = ledger.bag(name)
    reference = ledger.files(name)
    if not reference:
        raise RepairError(f"{name}: the ledger holds no reference digests for this bag; repair refused")
    for path in reference:
        safe_path(path)
    if options.dry_run:
        return _Repair(ledger, bag, reference, options).run(checks)
    with _claimed(ledger, name, options) as held:
        if not held:
            return BagRepair(name, "busy", problems=[
                f"held by another audit or repair for more than {options.wait_seconds:g} s; not repaired"])
        return _Repair(ledger, bag, reference, options).run(checks)


@contextmanager
def _claimed(ledger: Ledger, name: str, options: RepairOptions) -> Iterator[bool]:
    """Claim the bag in the ledger (waiting up to ``wait_seconds`` for another holder), renewed meanwhile."""
    holder = f"repair:{uuid.uuid4()}"
    deadline = time.monotonic() + options.wait_seconds
    pause = 0.05
    while not ledger.claim_bags([name], holder, lease_seconds=options.lease_seconds):
        if time.monotonic() >= deadline:
            yield False
            return
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    try:
        with _keep_claims(ledger, [name], holder, options.lease_seconds):
            yield True
    finally:
        ledger.release_claims([name], holder)


class _Abort(Exception):
    """A file found no source whose bytes match the reference while they were read."""


class _Repair:
    """The repair of one claimed bag: plan, stage, install, record."""

    def __init__(self, ledger: Ledger, bag: BagReference, reference: Mapping[str, FileReference],
                 options: RepairOptions) -> None:
        self.ledger, self.bag, self.reference, self.options = ledger, bag, reference, options
        self.name = bag.name
        self.algorithms = bag.algorithms or tuple(sorted({a for r in reference.values() for a in r.digests}))
        self.locations = list(dict.fromkeys([*bag.locations, *options.extra]))
        self.sources = allowed_sources(options.sources, self.name, self.locations) if options.sources else None
        self.result = BagRepair(self.name, "intact")
        self.copies: list[Copy] = []
        self.checks: dict[str, LocationCheck] = {}
        self.records: list[CheckRecord] = []
        self.when = utcnow()

    # -- 1. check

    def run(self, checks: Sequence[LocationCheck] | None) -> BagRepair:
        work = self.options.bags_dir / WORK_DIR
        for location in self.locations:
            try:
                self.copies.append(open_copy(location, self.name, work))
            except StrongroomError as exc:
                self.result.problems.append(f"{location}: cannot be opened: {exc}")
        # File copies first: sources are tried in this order, and remote copies restored from them.
        self.copies.sort(key=lambda c: c.kind != "file")
        if not self.options.dry_run:
            for copy in self.copies:
                copy.clean()
        given = {c.location: c for c in checks or ()}
        for copy in self.copies:
            self.checks[copy.location] = given.get(copy.location) or check_location(
                copy.location, self.name, self.reference, self.algorithms)
        self.result.checks = tuple(self.checks[c.location] for c in self.copies)
        try:
            return self._plan_and_repair()
        finally:
            if not self.options.dry_run:
                for copy in self.copies:
                    copy.discard()

    # -- 2. plan

    def _good(self, path: str) -> list[Copy]:
        ref = self.reference[path]
        return [c for c in self.copies if self._may_read(c) and _intact(ref, self.checks[c.location].observed.get(path))]

    def _may_read(self, copy: Copy) -> bool:
        return self.sources is None or copy.location in self.sources

    def _plan_and_repair(self) -> BagRepair:
        rewrite: dict[str, list[str]] = {}
        extras: dict[str, list[str]] = {}
        whole: list[Copy] = []
        for copy in self.copies:
            if self.options.only and copy.location not in self.options.only:
                continue
            check = self.checks[copy.location]
            bag_level = [f for f in check.findings if not f.path]
            if any(f.code == BAG_MISSING for f in bag_level):
                whole.append(copy)
            elif bag_level and not check.observed:
                self.result.problems.extend(f"{copy.location}: {f.code} {CLASSES[f.code]}: {f.message}"
                                            for f in bag_level)
            else:
                rewrite[copy.location] = [p for p in sorted(self.reference)
                                          if not _intact(self.reference[p], check.observed.get(p))]
                extras[copy.location] = [p for p in sorted(check.observed)
                                         if p not in self.reference and not is_partial(p)]
        needed = {p for paths in rewrite.values() for p in paths}
        if any(c.kind == "file" for c in whole) or any(self._rebuilt(c, rewrite, extras) for c in self.copies):
            needed |= set(self.reference)
        self.result.refusals = [Refusal(p, self._tried(p)) for p in sorted(needed) if not self._good(p)]
        donor = self._donor(whole)
        remote_whole = [c for c in whole if c.kind != "file"]
        if remote_whole and donor is None:
            self.result.refusals.append(Refusal("", tuple(
                (c.location, "no bag directory of this bag to deposit the whole copy from; restore one first")
                for c in remote_whole)))
        self._plan_actions(rewrite, extras, whole, donor)
        if self.result.refusals:
            self.result.outcome = "unrepairable"
            self.result.actions = []
            return self.result
        if not self.result.actions:
            self.result.outcome = "failed" if self.result.problems else "intact"
            return self.result
        if self.options.dry_run:
            self.result.outcome = "failed" if self.result.problems else "would-repair"
            return self.result
        self._execute(rewrite, extras, whole, donor)
        return self.result

    @staticmethod
    def _rebuilt(copy: Copy, rewrite: Mapping[str, list[str]], extras: Mapping[str, list[str]]) -> bool:
        """True for a tar-serialised S3 copy with anything to repair: its one object is rebuilt whole."""
        return isinstance(copy, S3Copy) and copy.tar and bool(rewrite.get(copy.location) or extras.get(copy.location))

    def _donor(self, whole: Sequence[Copy]) -> DirectoryCopy | None:
        """A bag directory that will be intact once repaired: what a whole remote copy is deposited from."""
        for copy in self.copies:
            check = self.checks[copy.location]
            if isinstance(copy, DirectoryCopy) and (check.observed or copy in whole):
                return copy
        return None

    def _tried(self, path: str) -> tuple[tuple[str, str], ...]:
        out = []
        for copy in self.copies:
            check = self.checks[copy.location]
            here = [f for f in check.findings if f.path == path] or [f for f in check.findings if not f.path]
            if not self._may_read(copy):
                why = "not among the --from sources"
            elif here:
                why = "; ".join(f"{f.code} {CLASSES[f.code]}: {f.message}" for f in here)
            else:
                why = "differs from the ledger's reference (a manifest rewritten with its content)"
            out.append((copy.location, why))
        return tuple(out)

    def _code(self, copy: Copy, path: str) -> str:
        check = self.checks[copy.location]
        found = [f.code for f in check.findings if f.path == path]
        if found:
            return found[0]
        if any(f.code == BAG_MISSING for f in check.findings):
            return BAG_MISSING
        if any(f.code == REWRITTEN for f in check.findings):
            return REWRITTEN  # a manifest whose change the consistent rewrite explains
        return TAG_CHANGED if self.reference[path].kind == "tag" else CHANGED

    def _plan_actions(self, rewrite: Mapping[str, list[str]], extras: Mapping[str, list[str]],
                      whole: Sequence[Copy], donor: DirectoryCopy | None) -> None:
        stamp = self.when.strftime("%Y%m%dT%H%M%S.%fZ")
        for copy in self.copies:
            if copy in whole:
                source = donor.location if copy.kind != "file" and donor else "verified copies"
                self.result.actions.append(Action("restore", copy.location, "", BAG_MISSING, source=source))
            for path in rewrite.get(copy.location, ()):
                good = self._good(path)
                self.result.actions.append(Action("rewrite", copy.location, path, self._code(copy, path),
                                                  source=good[0].location if good else ""))
            label = f"{self.locations.index(copy.location) + 1}-{copy.kind}"  # its place in the ledger's list
            strays: list[str] = []
            if copy in whole and copy.kind != "file":  # what the deposit restoring it would delete
                try:
                    strays = copy.strays(sorted(self.reference))
                except StrongroomError as exc:
                    self.result.problems.append(f"{copy.location}: cannot list what is left of the copy: {exc}")
            for path in [*extras.get(copy.location, ()), *strays]:
                try:
                    dest = self.options.bags_dir / QUARANTINE_DIR / self.name / stamp / label / safe_path(path)
                except RepairError as exc:  # a name no path on disk may take: left for a person to look at
                    self.result.problems.append(f"{copy.location}: {exc}")
                    continue
                self.result.actions.append(Action("quarantine", copy.location, path, EXTRA, to=str(dest)))

    # -- 3. stage: read each needed file once, verified while it is read

    def _execute(self, rewrite: Mapping[str, list[str]], extras: Mapping[str, list[str]],
                 whole: Sequence[Copy], donor: DirectoryCopy | None) -> None:
        jobs: dict[str, list[tuple[Copy, bool]]] = {}
        for copy in self.copies:
            if self._rebuilt(copy, rewrite, extras):  # the tar is written again from every file of the bag
                for path in self.reference:
                    jobs.setdefault(path, []).append((copy, True))
                continue
            for path in rewrite.get(copy.location, ()):
                jobs.setdefault(path, []).append((copy, False))
            if copy in whole and copy.kind == "file":
                for path in self.reference:
                    jobs.setdefault(path, []).append((copy, True))
        staged: dict[tuple[str, str], Path] = {}
        sources: dict[str, str] = {}
        try:
            for path in sorted(jobs):
                sinks = [(copy, copy.stage(path, whole=w)) for copy, w in jobs[path]]
                sources[path] = self._fetch(path, sinks)
                staged.update(((copy.location, path), target) for copy, target in sinks)
        except _Abort:
            self.result.outcome = "unrepairable"
            self.result.actions = []
            self._record()
            return
        except (StrongroomError, OSError) as exc:
            self.result.outcome = "failed"
            self.result.actions = []
            self.result.problems.append(f"staging the repaired files failed, nothing was changed: {_why(exc)}")
            self._record()
            return
        self._install(rewrite, extras, whole, donor, staged, sources)

    def _fetch(self, path: str, sinks: Sequence[tuple[Copy, Path]]) -> str:
        """Copy ``path`` from the first good source whose bytes match the reference into every sink."""
        ref = self.reference[path]
        tried: list[tuple[str, str]] = []
        for source in self._good(path):
            for _, target in sinks:  # what a refused source left is not kept
                target.unlink(missing_ok=True)
            try:
                size, found = self._copy(source, path, [target for _, target in sinks], sorted(ref.digests))
            except (StrongroomError, OSError) as exc:
                tried.append((source.location, f"cannot be read: {_why(exc)}"))
                self._event("fix", source.location, path, "fai", None, f"could not be read: {_why(exc)}")
                continue
            detail = "; ".join(f"{a} expected {v} found {found.get(a, '-')}" for a, v in sorted(ref.digests.items()))
            if size == ref.size and all(found.get(a) == v for a, v in ref.digests.items()):
                self._event("fix", source.location, path, "suc", None, f"{size} bytes; {detail}")
                return source.location
            tried.append((source.location, f"the bytes read do not match the ledger ({size} bytes; {detail})"))
            self._event("fix", source.location, path, "fai", CHANGED, f"{size} bytes; {detail}")
        for _, target in sinks:
            target.unlink(missing_ok=True)
        self.result.refusals.append(Refusal(path, tuple(tried) + tuple(
            (loc, why) for loc, why in self._tried(path) if loc not in {t[0] for t in tried})))
        raise _Abort()

    def _copy(self, source: Copy, path: str, targets: Sequence[Path], algorithms: Sequence[str]
              ) -> tuple[int, dict[str, str]]:
        """One read of the source, hashed as it passes (every algorithm at once), written to every target."""
        fds = [os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666) for t in targets]
        on_bytes = self.options.on_bytes

        def write(block: memoryview) -> None:
            for fd in fds:
                done = 0
                while done < len(block):
                    done += os.write(fd, block[done:])
            if on_bytes is not None:
                on_bytes(len(block))

        try:
            with source.reader(path) as readinto:
                return digest_copy(readinto, write, algorithms)
        finally:
            for fd in fds:
                os.close(fd)

    # -- 4. install, 5. record

    def _install(self, rewrite: Mapping[str, list[str]], extras: Mapping[str, list[str]], whole: Sequence[Copy],
                 donor: DirectoryCopy | None, staged: Mapping[tuple[str, str], Path], sources: Mapping[str, str]
                 ) -> None:
        done: list[Action] = []
        planned: dict[tuple[str, str, str], Action] = {(a.action, a.location, a.path): a for a in self.result.actions}
        for copy in self.copies:
            try:
                if isinstance(copy, S3Copy) and self._rebuilt(copy, rewrite, extras):
                    self._quarantine(copy, extras.get(copy.location, ()), planned, done)  # out of the old tar first
                    copy.install_tar({p: (r.size, r.digests) for p, r in self.reference.items()})
                    for path in rewrite.get(copy.location, ()):
                        done.append(Action("rewrite", copy.location, path, self._code(copy, path),
                                           source=sources[path]))
                        self._recovered(copy, path, sources[path], self._code(copy, path),
                                        how="the tar object rebuilt from verified files and read back")
                    self._record()
                    continue
                if copy in whole and copy.kind == "file":
                    copy.install_whole()
                    used = ", ".join(dict.fromkeys(sources[p] for p in sorted(self.reference)))
                    done.append(Action("restore", copy.location, "", BAG_MISSING, source=used))
                    for path in sorted(self.reference):
                        self._recovered(copy, path, sources[path], BAG_MISSING)
                for path in rewrite.get(copy.location, ()):
                    copy.install(path, staged[(copy.location, path)], self.reference[path].digests)
                    done.append(Action("rewrite", copy.location, path, self._code(copy, path), source=sources[path]))
                    self._recovered(copy, path, sources[path], self._code(copy, path))
                self._quarantine(copy, extras.get(copy.location, ()), planned, done)
            except (StrongroomError, OSError) as exc:
                self.result.problems.append(f"{copy.location}: repair stopped: {_why(exc)}")
            self._record()
        for copy in whole:
            if copy.kind != "file" and donor is not None:
                self._deposit(copy, donor, done, planned)
        self.result.actions = done
        self.result.outcome = "failed" if self.result.problems else "repaired"

    def _quarantine(self, copy: Copy, paths: Sequence[str], planned: Mapping[tuple[str, str, str], Action],
                    done: list[Action]) -> None:
        """Move the copy's files ``paths`` (none of the bag's) to their planned place in quarantine."""
        for path in paths:
            action = planned.get(("quarantine", copy.location, path))
            if action is None:  # refused when planned (an unsafe name): reported there
                continue
            copy.quarantine(path, Path(action.to))
            done.append(action)
            self._event("qua", copy.location, path, "suc", EXTRA, f"{EXTRA} {CLASSES[EXTRA]}: moved to {action.to}")

    def _deposit(self, copy: Copy, donor: DirectoryCopy, done: list[Action],
                 planned: Mapping[tuple[str, str, str], Action]) -> None:
        """Restore a whole missing deposit from the (now intact) bag directory: the target's verified put.

        What is left under the copy's name and is none of the bag's (a deposit would delete it) is
        moved to quarantine first; when something there cannot be, the copy is not restored.
        """
        target = getattr(copy, "target", None)
        if target is None or any(p.startswith(donor.location) for p in self.result.problems):
            self.result.problems.append(f"{copy.location}: not restored: {donor.location} is not intact")
            return
        try:
            if any(p.startswith(copy.location) for p in self.result.problems):
                raise RepairError("files left there could not all be moved to quarantine (see above)")
            self._quarantine(copy, copy.strays(sorted(self.reference)), planned, done)
            self._record()
            if copy.strays(sorted(self.reference)):
                raise RepairError("files appeared there that are none of the bag's; left for a person to look at")
            target.put(donor.root)
        except (StrongroomError, OSError) as exc:
            self.result.problems.append(f"{copy.location}: restoring the copy failed: {_why(exc)}")
            return
        done.append(planned[("restore", copy.location, "")])
        for path in sorted(self.reference):
            self._recovered(copy, path, donor.location, BAG_MISSING,
                            how="deposited again and every file read back at the destination")
        self._record()

    def _recovered(self, copy: Copy, path: str, source: str, code: str, *, how: str = "") -> None:
        ref = self.reference[path]
        seen = self.checks[copy.location].observed.get(path)
        before = f"{seen[0]} bytes " + " ".join(f"{a}:{v}" for a, v in sorted(seen[1].items())) if seen else "absent"
        after = " ".join(f"{a}:{v}" for a, v in sorted(ref.digests.items()))
        self._event("rec", copy.location, path, "suc", code,
                    f"{code} {CLASSES[code]} repaired from {source}{'; ' + how if how else ''}; "
                    f"now {ref.size} bytes {after} (the ledger's reference); before: {before}",
                    source=source)

    def _event(self, event_type: str, location: str, path: str, outcome: Outcome, code: str | None,
               outcome_detail: str, *, source: str = "") -> None:
        details = {
            "fix": f"Fixity check of the source bytes of {path} at {location}, read for a repair of bag "
                   f"{self.name}: every byte hashed as it was copied and compared with the ledger's reference digests",
            "rec": f"Recovery of {path} in the copy of bag {self.name} at {location} from the verified copy at {source}",
            "qua": f"Quarantine of {path}, a file bag {self.name} never had, out of the copy at {location}",
        }
        event = PremisEvent(event_type=event_type, date_time=dt.datetime.now(dt.timezone.utc),
                            detail=details[event_type], outcome=outcome, outcome_detail=outcome_detail,
                            object_ids=(path,), agent_ids=(strongroom_agent().identifier,))
        self.records.append(CheckRecord(event, location, path, code))

    def _record(self) -> None:
        if self.records:
            self.ledger.add_records(self.name, self.records)
            self.records = []


def _intact(ref: FileReference, seen: tuple[int, dict[str, str]] | None) -> bool:
    return seen is not None and seen[0] == ref.size and all(seen[1].get(a) == v for a, v in ref.digests.items())


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc)
