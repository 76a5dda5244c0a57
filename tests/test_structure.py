"""The pipeline's shape (README "Layout"): sources -> model -> simulate -> rules -> score ->
reports and CLI.  A module imports only from its own stage or earlier ones, so the rule
language never reaches into scoring and the model never into the simulator."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"

# Earlier stages first.  A module not named takes the stage of its package.
STAGES = [
    {"engine", "engine.errors", "engine.units", "engine.memo", "engine.paths", "engine.files",
     "engine.schemas"},
    {"engine.model", "engine.names"},
    {"engine.sources"},
    {"engine.relocate", "engine.strategies"},
    {"engine.rules"},
    {"engine.score"},
    {"engine.examples", "engine.audit", "engine.export", "engine.fleet", "engine.coverage"},
    {"engine.report"},
    {"engine.mine", "engine.verify"},
    {"engine.cli", "engine.__main__"},
]


def stage(module: str) -> int:
    name = module
    while name:
        for n, names in enumerate(STAGES):
            if name in names:
                return n
        name = name.rpartition(".")[0]
    raise AssertionError(f"{module}: no stage (add it to STAGES)")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(text: str, module: str, package: bool = False) -> set[str]:
    """Every engine module the source ``text`` of ``module`` imports, at the top or inside a
    function."""
    where = module if package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = where.split(".")[:len(where.split(".")) - node.level + 1]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:
                found.update(".".join([*base, a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("engine"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("engine"))
    return found


def upward(text: str, module: str, package: bool = False) -> list[str]:
    return [f"{module} imports {target}" for target in sorted(imports(text, module, package))
            if stage(target) > stage(module)]


def test_no_import_runs_up_the_pipeline():
    wrong = []
    for path in sorted(ENGINE.rglob("*.py")):
        wrong += upward(path.read_text(), module_name(path), path.name == "__init__.py")
    assert wrong == []


def test_an_upward_import_is_seen():
    """The rule language reaching into scoring, as engine/rules/testing.py once did, and the
    model into the simulator; imports inside functions count too."""
    assert upward("from ..score import judge\n", "engine.rules.testing") == [
        "engine.rules.testing imports engine.score"]
    assert upward("def f():\n    from .relocate import Layout\n", "engine.model") == [
        "engine.model imports engine.relocate"]
    assert upward("from . import ast\nfrom ..model import Device\n", "engine.rules.x") == []
