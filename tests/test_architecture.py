"""The library stays Prefect-free, and the fast commands never pay Prefect's import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_pipeline_never_imports_prefect() -> None:
    offenders = [p for p in (REPO / "pipeline").rglob("*.py") if "prefect" in _imports(p)]
    assert offenders == []


def test_only_the_cli_reaches_flows_and_only_inside_functions() -> None:
    for path in (REPO / "pipeline").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in top_level:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(n.split(".")[0] == "flows" for n in names), f"{path} imports flows at module level"


def test_bag_validate_and_show_do_not_load_prefect() -> None:
    code = ("import sys; from pipeline.cli import build_parser; build_parser(); "
            "import pipeline.bag.writer, pipeline.bag.show; "
            "print('prefect' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
