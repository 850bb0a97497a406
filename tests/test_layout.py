"""The import graph: scripts are leaves. No library module imports `rlrec.scripts`, and no script imports another,
so each stage's logic is found from its CLI name in one hop and can be reused without a command's side effects."""

import ast
from pathlib import Path

import rlrec

PACKAGE = Path(rlrec.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_library_module_or_script_imports_a_script():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        if relative == "rlrec/cli.py":  # the dispatcher names the stage modules (by string, on demand)
            continue
        for name in imported_modules(path):
            if name == "rlrec.scripts" or name.startswith("rlrec.scripts."):
                offenders.append(f"{relative} imports {name}")
    assert offenders == []


def test_one_ranker_abstraction():
    """Every class with a `rank` method in the library is a `rlrec.ranking.Ranker` (or the cache's reader)."""
    from rlrec.ranking import Ranker

    rankers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(item, ast.FunctionDef) and item.name in ("rank", "_rank", "recommend")
                    for item in node.body):
                rankers.append((path, node.name))
    assert rankers, "the scan found no ranker at all"
    import importlib

    for path, name in rankers:
        module = importlib.import_module(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        cls = getattr(module, name)
        if name == "Recommender":  # the serving API: wraps a Ranker with titles and history resolution
            continue
        assert issubclass(cls, Ranker), f"{module.__name__}.{name} ranks items but is not a Ranker"


def test_no_module_of_rlrec_models_imports_one_that_imports_it_back():
    """Within `rlrec.models` the imports (inside functions too) form no cycle: the loader does not reach into the
    from-scratch builder, and production code takes nothing from the test-model module `tiny`."""
    folder = PACKAGE / "models"
    graph = {}
    for path in folder.glob("*.py"):
        module = f"rlrec.models.{path.stem}"
        graph[module] = {name for name in imported_modules(path)
                         if name.startswith("rlrec.models.") and name.count(".") == 2 and name != module}
    cycles = sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets
                    if a < b and a in graph.get(b, set()))
    assert cycles == []
    users_of_tiny = sorted(m for m, targets in graph.items() if "rlrec.models.tiny" in targets)
    assert users_of_tiny == []
