"""What a staged bag must pass before publication, now that the re-read hashes one strong digest.

Strongroom's own verification re-reads every staged payload file once, with the fastest strong
algorithm among the manifests (the manifests were all computed in one read of the source), and
still reads and checks every manifest; bagit-python's second opinion stays on by default and,
for payloads of large files, hashes several files at once in a child started during the copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

from pipeline.bag import second_opinion
from pipeline.bag.second_opinion import SecondOpinion, processes_for
from pipeline.bag.validator import validate_bag
from pipeline.bag.verifiers import default_verifiers, reread_algorithms, strongroom_verifier
from pipeline.bag.writer import STAGING_DIR, BagOptions, bag_directory, scan_directory, write_bag
from pipeline.errors import BagInvalidError
from pipeline.findings import Finding
from pipeline.ingest import IngestOptions, ingest_record
from pipeline.premis import NO_SECOND_OPINION_NOTE
from tests.conftest import run_cli

PREMIS = "{http://www.loc.gov/premis/v3}"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n" * 1000)
    (src / "sub" / "b.bin").write_bytes(os.urandom(5000))
    return src


def test_the_reread_uses_one_strong_algorithm_never_a_weak_one_alone() -> None:
    assert reread_algorithms(["sha512", "sha256"]) in (("sha256",), ("sha512",))
    assert reread_algorithms(["md5", "sha512"]) == ("sha512",)
    assert reread_algorithms(["sha1", "sha384"]) == ("sha384",)
    assert reread_algorithms(["md5", "sha1"]) is None  # no strong digest: every algorithm recomputed
    assert reread_algorithms([]) is None


def _staged_then(change: object, verifiers: list[object]) -> list[object]:
    """Verifiers that first apply ``change`` to the staged bag (as damage after the copy would)."""
    def damage_then_verify(path: Path) -> list[Finding]:
        change(path)  # type: ignore[operator]
        found: list[Finding] = []
        for verify in verifiers:
            found.extend(verify(path))  # type: ignore[operator]
        return found

    return [damage_then_verify]


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("algorithms", [("sha512", "sha256"), ("sha256", "sha512"), ("md5", "sha1")])
def test_a_staged_byte_changed_after_the_copy_stops_publication(tmp_path: Path, source: Path,
                                                                  algorithms: tuple[str, ...]) -> None:
    bags = tmp_path / "bags"
    bags.mkdir()
    verifiers = _staged_then(lambda staged: _flip_last_byte(staged / "data" / "sub" / "b.bin"),
                             [strongroom_verifier()])
    with pytest.raises(BagInvalidError, match="PAYLOAD-DIGEST-MISMATCH"):
        write_bag(bags / "b", scan_directory(source), BagOptions(algorithms=algorithms,
                                                                 verifiers=verifiers))  # type: ignore[arg-type]
    assert [p.name for p in bags.iterdir()] == [STAGING_DIR] and not any((bags / STAGING_DIR).iterdir())


def test_the_manifest_not_recomputed_is_still_read_and_checked(tmp_path: Path, source: Path) -> None:
    """A line dropped from either manifest stops publication, whichever digest the re-read uses."""
    for alg in ("sha512", "sha256"):
        bags = tmp_path / f"bags-{alg}"
        bags.mkdir()

        def drop_a_line(staged: Path, alg: str = alg) -> None:
            manifest = staged / f"manifest-{alg}.txt"
            manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[1:]))

        with pytest.raises(BagInvalidError) as failed:
            write_bag(bags / "b", scan_directory(source),
                      BagOptions(verifiers=_staged_then(drop_a_line, [strongroom_verifier()])))  # type: ignore[arg-type]
        assert "PAYLOAD-UNLISTED" in {f.code for f in failed.value.findings}


def test_the_reread_reads_every_payload_byte_once(tmp_path: Path, source: Path) -> None:
    bag = bag_directory(source, tmp_path / "bag", verifiers=[]).path
    calls: list[tuple[int, int]] = []
    findings = strongroom_verifier(progress=lambda b, f: calls.append((b, f)))(bag)
    assert list(findings) == []
    assert calls[-1] == (6000 + 5000, 2)
    full = validate_bag(bag)  # the standalone validation still recomputes every algorithm
    assert full.valid and full.payload_files == 2


def test_the_second_opinion_is_on_by_default_and_off_only_when_asked() -> None:
    assert [type(v) for v in default_verifiers()][1:] == [SecondOpinion]
    assert len(default_verifiers(second_opinion=False)) == 1
    assert default_verifiers()[1] is not default_verifiers()[1]  # one per bag: it holds that bag's child


def test_large_payloads_get_several_bagit_python_processes_small_ones_one() -> None:
    assert processes_for(4, 4 * 256 << 20) == min(4, os.cpu_count() or 1)
    assert processes_for(10_000, 10_000 * 4096) == 1
    assert processes_for(1, 1 << 30) == 1
    assert processes_for(4, None) == 1


def _two_large_files(tmp_path: Path) -> Path:
    src = tmp_path / "large"
    src.mkdir()
    for name in ("x.bin", "y.bin"):
        (src / name).write_bytes(os.urandom(second_opinion.PARALLEL_BYTES // 2 + 1))
    return src


@pytest.mark.slow
def test_the_early_child_with_several_processes_catches_damage(tmp_path: Path) -> None:
    """bagit-python in a child started before the copy, two processes: a changed byte still stops it."""
    src = _two_large_files(tmp_path)
    bags = tmp_path / "bags"
    bags.mkdir()
    opinion = SecondOpinion()
    with pytest.raises(BagInvalidError, match="SECOND-OPINION"):
        write_bag(bags / "b", scan_directory(src), BagOptions(
            verifiers=_staged_then(lambda staged: _flip_last_byte(staged / "data" / "y.bin"), [opinion])))  # type: ignore[arg-type]
    assert not any((bags / STAGING_DIR).iterdir())
    written = bag_directory(src, bags / "ok")  # the default, undamaged: published, both verifiers agree
    assert written.path.is_dir() and validate_bag(written.path).valid


def test_an_early_child_of_a_failed_write_is_ended(tmp_path: Path) -> None:
    opinion = SecondOpinion()
    opinion.prepare(second_opinion.CHILD_PROCESS_FILES, 1)
    child = opinion._child
    assert child is not None
    opinion.close()
    assert child.returncode == 0 and opinion._child is None


def test_cli_bag_without_second_opinion_says_so(tmp_path: Path, source: Path) -> None:
    done = run_cli("bag", "--no-second-opinion", source, tmp_path / "bag")
    assert done.returncode == 0, done.stderr
    assert "bagit-python's second opinion not asked" in done.stdout
    assert validate_bag(tmp_path / "bag").valid
    default = run_cli("bag", source, tmp_path / "bag2")
    assert default.returncode == 0 and "valid (Strongroom and bagit-python)" in default.stdout


def _record(tmp_path: Path) -> Path:
    root = tmp_path / "records" / "item-1"
    root.mkdir(parents=True)
    (root / "item.txt").write_text("payload\n")
    (root / "record.yaml").write_text(
        "id: item-1\ndc:\n  title:\n    - {value: An item, lang: en}\nrights:\n  statement:\n"
        "    - {value: Copyright Undetermined., lang: en}\n  uri: http://rightsstatements.org/vocab/UND/1.0/\n"
        "source_organization: Strongroom tests\npayload:\n  - path: item.txt\n")
    return root / "record.yaml"


def _validation_event(bag: Path) -> tuple[str, str | None, list[str]]:
    root = etree.fromstring((bag / "metadata" / "premis.xml").read_bytes(), etree.XMLParser(resolve_entities=False))
    for event in root.iter(f"{PREMIS}event"):
        if event.findtext(f"{PREMIS}eventType") == "validation":
            note = event.findtext(f"{PREMIS}eventOutcomeInformation/{PREMIS}eventOutcomeDetail/"
                                  f"{PREMIS}eventOutcomeDetailNote")
            agents = [a.findtext(f"{PREMIS}linkingAgentIdentifierValue") or ""
                      for a in event.iter(f"{PREMIS}linkingAgentIdentifier")]
            return event.findtext(f"{PREMIS}eventDetailInformation/{PREMIS}eventDetail") or "", note, agents
    raise AssertionError("no validation event")


def test_premis_records_whether_the_second_opinion_was_given(tmp_path: Path) -> None:
    record = _record(tmp_path)
    default = ingest_record(record, tmp_path / "bags")
    assert default.outcome == "bagged", default.error
    detail, note, agents = _validation_event(default.bag)  # type: ignore[arg-type]
    assert "bagit-python (second opinion)" in detail and any(a.startswith("bagit-python") for a in agents)
    assert note is None
    without = ingest_record(record, tmp_path / "bags2", IngestOptions(second_opinion=False))
    assert without.outcome == "bagged", without.error
    detail, note, agents = _validation_event(without.bag)  # type: ignore[arg-type]
    assert "bagit-python" not in detail and not any(a.startswith("bagit-python") for a in agents)
    assert note is not None and NO_SECOND_OPINION_NOTE in note


def test_ingest_keeps_the_second_opinions_hooks_when_it_notes_the_packing_time() -> None:
    # Ingest wraps each verifier to note when the bag was complete; the writer must still find the
    # second opinion's prepare/close (its child starts while the payload is copied).
    from pipeline.bag.second_opinion import SecondOpinion
    from pipeline.preservation import IngestSteps

    inner = SecondOpinion()
    steps = IngestSteps.__new__(IngestSteps)
    steps.times = {}
    wrapped = steps.packed_then(inner)
    assert getattr(wrapped, "prepare") == inner.prepare and getattr(wrapped, "close") == inner.close
    inner.close()
