"""The copy-mode atomic writer: what it writes, what it refuses, and that the source is untouched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import bagit
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.bag.names import decode_path, encode_path
from pipeline.bag.second_opinion import bagit_python_findings
from pipeline.bag.tagfiles import iter_manifest, read_bag_info
from pipeline.bag.writer import (
    STAGING_DIR,
    BagOptions,
    DirectoryPayload,
    PayloadFile,
    bag_directory,
    remove_stale_staging,
    write_bag,
)
from pipeline.errors import BagInvalidError, BagWriteError, FixityError, PayloadError
from pipeline.findings import Finding

from .conftest import kill_after_files

SECOND_OPINION_ONLY = [bagit_python_findings]


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file below root: content digest and mtime, to prove a tree was not touched."""
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub dir" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "sub dir" / "b.bin").write_bytes(bytes(range(256)) * 5000)
    (src / "sub dir" / "deeper" / "empty").write_bytes(b"")
    return src


def test_bag_directory_copies_and_leaves_the_source_untouched(tmp_path: Path, source: Path) -> None:
    before = snapshot(source)
    bag = bag_directory(source, tmp_path / "bag", verifiers=SECOND_OPINION_ONLY).path
    assert snapshot(source) == before
    for rel in before:
        assert (bag / "data" / rel).read_bytes() == (source / rel).read_bytes()
    assert (bag / "bagit.txt").read_bytes() == b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    bagit.Bag(str(bag)).validate()


def test_manifests_for_every_algorithm_and_tag_manifests_cover_tag_files(tmp_path: Path, source: Path) -> None:
    bag = bag_directory(source, tmp_path / "bag", verifiers=SECOND_OPINION_ONLY).path
    for alg in ("sha512", "sha256"):
        entries = dict(iter_manifest(bag / f"manifest-{alg}.txt"))
        assert set(entries) == {"data/a.txt", "data/sub dir/b.bin", "data/sub dir/deeper/empty"}
        assert entries["data/a.txt"] == hashlib.new(alg, b"alpha\n").hexdigest()
        tags = dict(iter_manifest(bag / f"tagmanifest-{alg}.txt"))
        assert set(tags) == {"bagit.txt", "bag-info.txt", "manifest-sha512.txt", "manifest-sha256.txt"}
        for rel, digest in tags.items():
            assert hashlib.new(alg, (bag / rel).read_bytes()).hexdigest() == digest


def test_bag_info_keeps_the_callers_order_and_adds_oxum_date_agent(tmp_path: Path, source: Path) -> None:
    info = [("Zeta-Label", "last alphabetically, first here"), ("Contact-Name", "A. Archivist"),
            ("Internal-Sender-Description", "two\nlines")]
    bag = bag_directory(source, tmp_path / "bag", info=info, verifiers=SECOND_OPINION_ONLY).path
    labels = [label for label, _ in read_bag_info(bag)]
    assert labels[:3] == ["Zeta-Label", "Contact-Name", "Internal-Sender-Description"]
    assert dict(read_bag_info(bag))["Internal-Sender-Description"] == "two\nlines"
    assert dict(read_bag_info(bag))["Payload-Oxum"] == f"{6 + 256 * 5000}.3"
    assert {"Bagging-Date", "Bag-Software-Agent"} <= set(labels)


def test_algorithm_choice_is_honoured(tmp_path: Path, source: Path) -> None:
    bag = bag_directory(source, tmp_path / "bag", algorithms=["SHA256"], verifiers=SECOND_OPINION_ONLY).path
    assert sorted(p.name for p in bag.glob("*manifest-*")) == ["manifest-sha256.txt", "tagmanifest-sha256.txt"]


def _nothing_published(bags: Path) -> bool:
    staging = bags / STAGING_DIR
    leftovers = [p for p in bags.iterdir() if p.name != STAGING_DIR]
    return not leftovers and (not staging.exists() or not any(staging.iterdir()))


def test_a_stated_digest_that_differs_publishes_nothing(tmp_path: Path, source: Path) -> None:
    bags = tmp_path / "bags"
    bags.mkdir()
    options = BagOptions(expected={"data/a.txt": {"sha256": "0" * 64}}, verifiers=SECOND_OPINION_ONLY)
    with pytest.raises(FixityError) as caught:
        write_bag(bags / "b", [PayloadFile(source / "a.txt", PurePosixPath("a.txt"))], options)
    assert caught.value.expected == "0" * 64
    assert caught.value.found == hashlib.sha256(b"alpha\n").hexdigest()
    assert "a.txt" in str(caught.value) and "sha256 mismatch" in str(caught.value)
    assert _nothing_published(bags)


def test_a_stated_digest_in_another_algorithm_is_checked_too(tmp_path: Path, source: Path) -> None:
    options = BagOptions(expected={"data/a.txt": {"md5": hashlib.md5(b"alpha\n").hexdigest()}},
                         verifiers=SECOND_OPINION_ONLY)
    bag = write_bag(tmp_path / "b", [PayloadFile(source / "a.txt", PurePosixPath("a.txt"))], options)
    assert bag.path.is_dir()


def test_symlinked_payload_is_refused_before_anything_is_written(tmp_path: Path, source: Path) -> None:
    (source / "link").symlink_to("/etc/passwd")
    bags = tmp_path / "bags"
    bags.mkdir()
    with pytest.raises(PayloadError, match="symbolic link"):
        bag_directory(source, bags / "b", verifiers=SECOND_OPINION_ONLY)
    assert list(bags.iterdir()) == []


def test_special_files_are_refused(tmp_path: Path, source: Path) -> None:
    os.mkfifo(source / "pipe")
    with pytest.raises(PayloadError, match="not a regular file"):
        bag_directory(source, tmp_path / "b", verifiers=SECOND_OPINION_ONLY)


def test_names_colliding_after_normalisation_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / unicodedata.normalize("NFC", "café")).write_text("1")
    (src / unicodedata.normalize("NFD", "café")).write_text("2")
    with pytest.raises(PayloadError, match="collides"):
        bag_directory(src, tmp_path / "b", verifiers=SECOND_OPINION_ONLY)


def test_an_existing_destination_is_never_overwritten(tmp_path: Path, source: Path) -> None:
    dest = tmp_path / "bag"
    dest.mkdir()
    with pytest.raises(BagWriteError, match="never overwritten"):
        bag_directory(source, dest, verifiers=SECOND_OPINION_ONLY)
    assert list(dest.iterdir()) == []


def test_a_rejecting_verifier_stops_publication(tmp_path: Path, source: Path) -> None:
    def reject(path: Path) -> list[Finding]:
        assert (path / "bagit.txt").is_file()  # it sees the complete staged bag
        return [Finding(code="TEST-REJECT", message="rejected for the test")]

    bags = tmp_path / "bags"
    bags.mkdir()
    with pytest.raises(BagInvalidError, match="TEST-REJECT"):
        bag_directory(source, bags / "b", verifiers=[reject])
    assert _nothing_published(bags)


def test_tag_files_written_after_verification_are_in_the_tag_manifests(tmp_path: Path, source: Path) -> None:
    seen_notes: list[str] = []

    def final(_digests: object, notes: str) -> dict[str, bytes]:
        seen_notes.append(notes)
        return {"metadata/after.txt": b"written after verification\n"}

    options = BagOptions(tag_files=lambda d: {"metadata/before.txt": b"before\n"},
                         after_verify=final, verifiers=SECOND_OPINION_ONLY)
    payload = [PayloadFile(source / "a.txt", PurePosixPath("a.txt"))]
    bag = write_bag(tmp_path / "b", payload, options).path
    tags = dict(iter_manifest(bag / "tagmanifest-sha512.txt"))
    assert {"metadata/before.txt", "metadata/after.txt"} <= set(tags)
    assert seen_notes == [""]
    bagit.Bag(str(bag)).validate()


@pytest.mark.parametrize("name", ["bagit.txt", "manifest-md5.txt", "data/x.txt", "../x", "/abs"])
def test_tag_files_may_not_take_reserved_or_unsafe_names(tmp_path: Path, source: Path, name: str) -> None:
    options = BagOptions(tag_files=lambda d: {name: b"x"}, verifiers=SECOND_OPINION_ONLY)
    with pytest.raises(BagWriteError, match="cannot be written"):
        write_bag(tmp_path / "b", [PayloadFile(source / "a.txt", PurePosixPath("a.txt"))], options)
    assert not (tmp_path / "b").exists()


def test_stale_staging_of_a_dead_process_is_removed_and_live_staging_kept(tmp_path: Path) -> None:
    import socket

    staging = tmp_path / STAGING_DIR
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = staging / f"x.v1~{socket.gethostname()}~{dead}~abc"
    live = staging / f"y.v1~{socket.gethostname()}~{os.getpid()}~def"
    foreign = staging / f"z.v1~another-host~{dead}~ghi"
    for d in (stale, live, foreign):
        (d / "data").mkdir(parents=True)
    assert remove_stale_staging(tmp_path) == [stale]
    assert live.exists() and foreign.exists()


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1, max_size=20,
).filter(lambda s: s not in (".", "..") and not s.startswith("~") and "\\" not in s)


@given(st.lists(names, min_size=1, max_size=4))
def test_percent_encoding_round_trips(parts: list[str]) -> None:
    path = "/".join(parts)
    encoded = encode_path(path)
    assert "\n" not in encoded and "\r" not in encoded
    assert decode_path(encoded) == path
    assert decode_path(encoded.replace("%0A", "%0a").replace("%0D", "%0d")) == path


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["plain.txt", "with space.txt", "50%.txt", "%0A literal.txt", "new\nline",
                                 "carriage\rreturn", "caf\u00e9.txt", "nai\u0308ve.txt", "日本語.txt"]),
                min_size=1, max_size=5, unique=True))
def test_awkward_names_round_trip_through_writer_and_both_validators(tmp_path_factory: pytest.TempPathFactory,
                                                                  chosen: list[str]) -> None:
    root = tmp_path_factory.mktemp("names")
    src = root / "src"
    src.mkdir()
    for i, name in enumerate(chosen):
        (src / name).write_bytes(f"{i}\n".encode())
    bag = bag_directory(src, root / "bag").path  # both verifiers: Strongroom's and bagit-python
    listed = {p for p, _ in iter_manifest(bag / "manifest-sha256.txt")}
    assert listed == {f"data/{name}" for name in chosen}
    for name in chosen:
        assert (bag / "data" / name).read_bytes() == (src / name).read_bytes()


def test_sigkill_while_writing_leaves_no_bag_and_the_next_run_completes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02}.bin").write_bytes(os.urandom(256 * 1024))
    before = snapshot(src)
    bags = tmp_path / "bags"
    bags.mkdir()
    # The child announces each copied file; the parent kills it half-way through the payload.
    status = kill_after_files(
        "from pipeline.bag.writer import bag_directory\n"
        "from pipeline.bag.second_opinion import bagit_python_findings\n"
        f"bag_directory(Path({str(src)!r}), Path({str(bags / 'b')!r}), verifiers=[bagit_python_findings], "
        "progress=progress)\n", 20)
    assert status == -9
    assert not (bags / "b").exists()
    assert any((bags / STAGING_DIR).iterdir())  # the half-written bag is only a staging directory
    assert snapshot(src) == before
    assert len(remove_stale_staging(bags)) == 1
    bag = bag_directory(src, bags / "b", verifiers=SECOND_OPINION_ONLY).path
    bagit.Bag(str(bag)).validate()
    assert snapshot(src) == before


def test_a_payload_name_starting_with_tilde_is_an_ordinary_file_below_data(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "~backup.txt").write_bytes(b"tilde")
    bag = bag_directory(src, tmp_path / "bag", verifiers=SECOND_OPINION_ONLY).path
    assert (bag / "data" / "~backup.txt").read_bytes() == b"tilde"


def test_a_published_bag_has_the_mode_a_plain_mkdir_would_give(tmp_path: Path, source: Path) -> None:
    old = os.umask(0o022)
    try:
        bag = bag_directory(source, tmp_path / "bag", verifiers=SECOND_OPINION_ONLY).path
    finally:
        os.umask(old)
    assert bag.stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700: others may read the archive


def _manifest_bytes_as_before(bag: Path, alg: str) -> bytes:
    """The manifest the writer always wrote: every payload file, lines sorted by decoded bag path."""
    files = sorted(p.relative_to(bag).as_posix() for p in (bag / "data").rglob("*") if p.is_file())
    lines = (f"{hashlib.new(alg, (bag / rel).read_bytes()).hexdigest()}  {encode_path(rel)}\n" for rel in files)
    return "".join(lines).encode("utf-8")


def test_manifests_stream_in_bag_path_order_byte_for_byte(tmp_path: Path) -> None:
    """Written as files are copied, the manifests are still sorted exactly as a full sort gives
    ('a/b.txt' < 'a/b/x' < 'a/b0': the directory walk orders names with '/' appended to folders)."""
    src = tmp_path / "src"
    for rel in ["a/b.txt", "a/b/x", "a/b0", "a/b/y/z", "a.txt", "A", "50%.txt", "new\nline", "é/ü"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    bag = bag_directory(src, tmp_path / "bag", verifiers=[]).path
    for alg in ("sha512", "sha256"):
        assert (bag / f"manifest-{alg}.txt").read_bytes() == _manifest_bytes_as_before(bag, alg)


def test_a_payload_list_in_any_order_gives_sorted_manifests(tmp_path: Path, source: Path) -> None:
    payload = [PayloadFile(source / "sub dir" / "b.bin", PurePosixPath("z/b.bin")),
               PayloadFile(source / "a.txt", PurePosixPath("a.txt")),
               PayloadFile(source / "sub dir" / "deeper" / "empty", PurePosixPath("m/empty"))]
    bag = write_bag(tmp_path / "b", payload, BagOptions(verifiers=SECOND_OPINION_ONLY)).path
    assert [p for p, _ in iter_manifest(bag / "manifest-sha256.txt")] == ["data/a.txt", "data/m/empty", "data/z/b.bin"]
    assert (bag / "manifest-sha512.txt").read_bytes() == _manifest_bytes_as_before(bag, "sha512")


def test_the_written_payload_is_read_back_from_the_manifests(tmp_path: Path, source: Path) -> None:
    written = bag_directory(source, tmp_path / "bag", verifiers=[])
    assert len(written.payload) == 3 and written.octets == 6 + 256 * 5000
    entries = {p.path: p for p in written.payload}
    assert entries["data/a.txt"].size == 6
    assert entries["data/a.txt"].digests == {alg: hashlib.new(alg, b"alpha\n").hexdigest()
                                             for alg in ("sha512", "sha256")}
    assert entries["data/sub dir/b.bin"].size == 256 * 5000
    assert entries["data/a.txt"] in written.payload


class _ChangedOnSecondPass(DirectoryPayload):
    """A source directory that ``change`` alters after the writer's check pass, before its copy pass."""

    def __init__(self, root: Path, change: Callable[[Path], None]) -> None:
        super().__init__(root)
        self.change, self.passes = change, 0

    def pairs(self) -> Iterator[tuple[str, str]]:
        self.passes += 1
        if self.passes == 2:
            self.change(self.root)
        return super().pairs()


def test_a_source_that_changes_between_check_and_copy_publishes_nothing(tmp_path: Path, source: Path) -> None:
    """The check pass and the copy pass must see the same files: one added in between is refused."""
    growing = _ChangedOnSecondPass(source, lambda root: (root / "late.txt").write_bytes(b"arrived after the check\n"))
    bags = tmp_path / "bags"
    bags.mkdir()
    with pytest.raises(PayloadError, match="changed while it was being bagged"):
        write_bag(bags / "b", growing, BagOptions(verifiers=[]))
    assert growing.passes == 2 and _nothing_published(bags)


def test_a_fifo_put_in_place_of_a_checked_file_is_refused_not_waited_on(tmp_path: Path, source: Path) -> None:
    def swap(root: Path) -> None:
        (root / "a.txt").unlink()
        os.mkfifo(root / "a.txt")

    bags = tmp_path / "bags"
    bags.mkdir()
    with pytest.raises(PayloadError, match="a.txt.*cannot be copied"):
        write_bag(bags / "b", _ChangedOnSecondPass(source, swap), BagOptions(verifiers=[]))
    assert _nothing_published(bags)


def test_an_unreadable_source_directory_is_refused_not_skipped(tmp_path: Path, source: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """os.walk skipped directories it could not list; a bag must not silently lose a subtree."""
    from pipeline.bag import payload

    real_scandir = os.scandir

    def scandir(path: str) -> object:  # as a directory without read permission answers (root reads all)
        if path.endswith("deeper"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(payload.os, "scandir", scandir)
    with pytest.raises(PayloadError, match="sub dir/deeper' cannot be listed: Permission denied"):
        bag_directory(source, tmp_path / "b", verifiers=[])
    assert not (tmp_path / "b").exists()


def _one_file_source(tmp_path: Path) -> tuple[Path, Path]:
    """A source directory of one small file, and where its bag goes (its parent exists)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"durable and verified\n")
    (tmp_path / "bags").mkdir()
    return src, tmp_path / "bags" / "b"


def test_the_flush_overlaps_verification_but_publication_waits_for_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    import pipeline.bag.writer as writer_module

    src, dest = _one_file_source(tmp_path)
    log: list[str] = []
    verifying = threading.Event()
    real_flush = writer_module.flush_tree

    def slow_flush(root: Path) -> None:
        verifying.wait(10)  # the verifier is already reading: the two overlap
        time.sleep(0.2)
        real_flush(root)
        log.append("flushed")

    def verifier(path: Path) -> list[Finding]:
        verifying.set()
        log.append("verified")
        assert not dest.exists()
        return []

    monkeypatch.setattr(writer_module, "flush_tree", slow_flush)
    bag_directory(src, dest, verifiers=[verifier])
    assert log == ["verified", "flushed"] and dest.is_dir()


def test_a_failed_flush_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.bag.writer as writer_module

    src, dest = _one_file_source(tmp_path)

    def failing_flush(root: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(writer_module, "flush_tree", failing_flush)
    with pytest.raises(BagWriteError, match="cannot flush the bag to disk: Input/output error"):
        bag_directory(src, dest, verifiers=[lambda path: []])
    assert not dest.exists()
    assert list((dest.parent / ".strongroom-staging").iterdir()) == []
