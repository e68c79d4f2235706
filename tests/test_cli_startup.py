"""What ``strongroom validate`` pays before it reads a bag, and the light ``Finding`` that keeps it small.

Start-up is a tenth of validating 10,000 small files, so the validate command imports only what
it uses: no pydantic (``Finding`` is a plain dataclass), no importlib.metadata (the version is a
literal), and none of the other commands' modules.  ``--help`` still lists every command.
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline
from pipeline.cli import COMMANDS, build_parser
from pipeline.findings import Finding

REPO = Path(__file__).resolve().parents[1]


def _loaded_after(argv: list[str]) -> set[str]:
    """Modules loaded by running ``strongroom ARGV`` in a fresh interpreter (exit status ignored)."""
    code = ("import sys; sys.argv = ['strongroom', *sys.argv[1:]]\n"
            "from pipeline.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    return set(done.stderr.split())


def test_validate_imports_neither_pydantic_nor_metadata_nor_other_commands() -> None:
    """A bag that names no profile is validated without pydantic (profiles load only when needed)."""
    loaded = _loaded_after(["validate", str(REPO / "tests" / "data" / "bags" / "VALID_plain-1.0")])
    assert "pipeline.cli.validate" in loaded and "pipeline.bag.validator" in loaded
    unwanted = {"pydantic", "importlib.metadata", "prefect", "pipeline.cli.ingest", "pipeline.cli.audit",
                "pipeline.cli.deposit", "pipeline.cli.records"}
    assert unwanted & loaded == set()


def test_a_profile_given_is_still_loaded_and_checked() -> None:
    loaded = _loaded_after(["validate", str(REPO / "tests" / "data" / "bags" / "VALID_plain-1.0"),
                            "--profile", str(REPO / "schemas" / "profiles" / "strongroom-1.0.json")])
    assert "pipeline.bag.profiles" in loaded


def test_help_still_lists_every_command() -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0
    listed = re.findall(r"^    ([a-z]+)  ", done.stdout, flags=re.MULTILINE)
    assert listed == list(COMMANDS)


def test_the_command_table_names_what_each_module_registers() -> None:
    """COMMANDS must match the modules: a command missing from it could not be run by name."""
    for module in dict.fromkeys(COMMANDS.values()):
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module).register(sub)
        assert set(sub.choices) == {c for c, m in COMMANDS.items() if m == module}, module
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(COMMANDS)  # type: ignore[union-attr]


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert pipeline.__version__ == version("strongroom")
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "--version"], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert done.stdout.strip() == f"strongroom {pipeline.__version__}"


def test_finding_keeps_its_model_face() -> None:
    f = Finding(code="PAYLOAD-MISSING", path="data/a.txt", message="is listed but absent")
    assert (f.severity, f.expected, f.found) == ("error", None, None)
    assert f.line() == "PAYLOAD-MISSING data/a.txt: is listed but absent"
    assert f.model_dump() == {"code": "PAYLOAD-MISSING", "severity": "error", "path": "data/a.txt",
                              "message": "is listed but absent", "expected": None, "found": None}
    assert pickle.loads(pickle.dumps(f)) == f and hash(f) == hash(Finding(**f.model_dump()))
    with pytest.raises(AttributeError):
        f.code = "OTHER"  # type: ignore[misc]


@pytest.mark.parametrize("bad", [{"severity": "fatal"}, {"severity": "ERROR"}, {"code": 7},
                                 {"expected": b"ab"}])
def test_finding_refuses_what_the_model_refused(bad: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        Finding(**{"code": "X", "message": "m", **bad})  # type: ignore[arg-type]


def test_finding_takes_keywords_only() -> None:
    with pytest.raises(TypeError):
        Finding("X", "error", "", "m")  # type: ignore[misc]
