"""Issue 10: a bag whose own payload is damaged is reported as damaged, not blamed on the copy.

The source is re-read against its own manifests before any copy is made, and before a copy already
held is called identical: the CLI (in a subprocess) names the source file, records no replication
and creates nothing; into an OCFL root already holding the bag it no longer says ``unchanged ...
verified``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.audit import register_bag
from pipeline.ledger import Ledger

from .conftest import run_cli

MakeBag = Callable[..., Path]


def _damage(bag: Path) -> Path:
    payload = bag / "data" / "text.txt"
    payload.write_bytes(payload.read_bytes().replace(b"payload", b"PAYLOAD"))  # same size, other digest
    return payload


def _rep_events(bag: Path) -> list[str]:
    with Ledger.open(None, bags_dir=bag.parent) as ledger:
        return [e.outcome for e in ledger.events(bag.name) if e.event_type == "rep"]


def _assert_source_blamed(out: "object", bag: Path) -> None:
    lines = out.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert out.returncode == 1, out  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith(f"strongroom: error: {bag}: invalid bag"), lines
    assert "data/text.txt" in lines[0] and "the copy does not match" not in lines[0]
    assert out.stdout.strip() == "1 bag(s): 0 deposited, 0 unchanged, 1 failed"  # type: ignore[attr-defined]


@pytest.mark.parametrize("scheme", ["file", "ocfl"])
def test_a_damaged_source_is_named_and_nothing_is_copied_or_recorded(
        scheme: str, make_bag: MakeBag, tmp_path: Path) -> None:
    bag = make_bag("rec")
    with Ledger.open(None, bags_dir=bag.parent) as ledger:
        register_bag(ledger, bag, origin="ingest")
    _damage(bag)
    store = tmp_path / "store"
    store.mkdir()
    out = run_cli("deposit", bag, "--to", f"{scheme}://{store}", "--no-flow")
    _assert_source_blamed(out, bag)
    assert list(store.iterdir()) == []  # no copy, not even a root inventory
    assert _rep_events(bag) == []  # the copy was not at fault: no failed replication either


def test_unchanged_into_ocfl_checks_the_source_too(make_bag: MakeBag, tmp_path: Path) -> None:
    bag = make_bag("rec")
    url = f"ocfl://{tmp_path / 'ocfl'}?create=1"
    first = run_cli("deposit", bag, "--to", url, "--no-flow", "--no-ledger")
    assert first.returncode == 0 and first.stdout.lstrip().startswith("deposited"), first
    _damage(bag)
    again = run_cli("deposit", bag, "--to", url, "--no-flow", "--no-ledger")
    _assert_source_blamed(again, bag)
