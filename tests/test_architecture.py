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


def _pipeline_imports(path: Path) -> set[str]:
    """Every ``pipeline.*`` module ``path`` imports, at module level or inside functions.

    Imports under ``if TYPE_CHECKING:`` are left out: they never run.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pipeline."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("pipeline."):
            found.add(node.module)
    return found


def _package_of(module: str) -> str:
    """The room a module lives in: ``pipeline.audit.check`` -> ``pipeline.audit``."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_imports_between_the_library_rooms_run_one_way() -> None:
    """No circle among pipeline's packages and modules (ledger -> audit -> deposit -> ledger was one)."""
    graph: dict[str, set[str]] = {}
    for path in (REPO / "pipeline").rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        src = _package_of(module)
        for target in _pipeline_imports(path):
            dst = _package_of(target)
            if dst != src and src != "pipeline.cli":
                graph.setdefault(src, set()).add(dst)

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    return trail + [nxt]
                if nxt not in trail:
                    stack.append((nxt, trail + [nxt]))
        return None

    cycles = [c for c in (cycle_from(n) for n in sorted(graph)) if c]
    assert cycles == [], f"import cycles: {cycles}"


def test_the_ledger_knows_nothing_of_audits_or_deposits() -> None:
    for path in (REPO / "pipeline" / "ledger").rglob("*.py"):
        bad = {m for m in _pipeline_imports(path) if _package_of(m) in ("pipeline.audit", "pipeline.deposit")}
        assert bad == set(), f"{path} imports {bad}"
