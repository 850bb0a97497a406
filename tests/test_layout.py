"""The import graph: scripts are leaves. No library module imports `rlrec.scripts`, and no script imports another,
so each stage's logic is found from its CLI name in one hop and can be reused without a command's side effects."""

import ast
from pathlib import Path

import pytest

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


# The packages of rlrec from the bottom up: a package imports only packages listed before it (docs/design.md).
LAYERS = ["utils", "data", "baselines", "sid", "models", "init", "tasks", "generation", "ranking", "rewards",
          "evaluation", "training", "setrec", "inference", "export", "cli", "scripts", "__main__"]


def package_imports() -> dict[str, set[str]]:
    """Package -> the other rlrec packages its modules import, imports inside functions included (`rlrec` itself,
    the version, is below everything)."""
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts == ("__init__.py",):
            continue
        package = parts[0].removesuffix(".py")
        for name in imported_modules(path):
            pieces = name.split(".")
            if pieces[0] == "rlrec" and len(pieces) > 1 and pieces[1] != package:
                edges.setdefault(package, set()).add(pieces[1])
    return edges


def upward_imports(edges: dict[str, set[str]], layers: list[str]) -> list[str]:
    """Every import of a package at or above the importer's layer (and every package missing from `layers`)."""
    rank = {name: i for i, name in enumerate(layers)}
    problems = [f"{name} is in no layer" for name in sorted(set(edges) | set().union(*edges.values()))
                if name not in rank]
    problems += [f"{low} imports {high}, which sits above it" for low, targets in sorted(edges.items())
                 for high in sorted(targets) if low in rank and high in rank and rank[high] >= rank[low]]
    return problems


def test_packages_import_only_the_layers_below_them():
    edges = package_imports()
    assert {"ranking", "setrec", "training", "evaluation"} <= set(edges)  # the scan sees the packages
    assert upward_imports(edges, LAYERS) == []
    assert set(LAYERS) == {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
                           if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"} - {"__init__"}


def test_an_upward_import_fails_the_layer_check():
    edges = package_imports()
    edges.setdefault("ranking", set()).add("setrec")  # what ranking/load.py once did to open SETRec folders
    assert upward_imports(edges, LAYERS) == ["ranking imports setrec, which sits above it"]
    assert upward_imports({"utils": {"newpkg"}}, LAYERS) == ["newpkg is in no layer"]


def module_constants() -> dict[tuple[str, str], list[str]]:
    """(NAME, value) -> the modules that define that upper-case constant at top level."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                continue
            value = node.value.operand if isinstance(node.value, ast.UnaryOp) else node.value
            if not isinstance(value, ast.Constant):
                continue
            shown = ast.unparse(node.value)
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name) and target.id.isupper():
                    found.setdefault((target.id, shown), []).append(path.relative_to(PACKAGE).as_posix())
    return found


def test_no_constant_is_defined_twice():
    """A file name or a sentinel written in two modules drifts apart; each is defined once and imported."""
    constants = module_constants()
    assert ("MANIFEST", "'manifest.json'") in constants
    assert {key: where for key, where in constants.items() if len(where) > 1} == {}


# Prefixes a stage puts before a shared setting's name (`valid_num_beams` is the valid check's `num_beams`).
SETTING_PREFIXES = ("valid_", "eval_", "rollout_", "sasrec_")


def _literal_default(node: ast.expr | None) -> int | float | None:
    """A field's default when it is written as a number other than 0, 1 and -1 (`x: int = 20`, `field(default=20)`)."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "field":
        node = next((kw.value for kw in node.keywords if kw.arg == "default"), None)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return None if node.value in (0, 1) else node.value
    return None


def repeated_literal_defaults(sources: dict[str, str]) -> dict[tuple[str, float], list[str]]:
    """(setting, literal default) -> the dataclasses that write it, where more than one does."""
    found: dict[tuple[str, float], list[str]] = {}
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.ClassDef) or not any("dataclass" in ast.unparse(d)
                                                             for d in node.decorator_list):
                continue
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                    value = _literal_default(statement.value)
                    if value is not None:
                        setting = statement.target.id
                        for prefix in SETTING_PREFIXES:
                            setting = setting.removeprefix(prefix)
                        found.setdefault((setting, value), []).append(f"{name}:{node.name}")
    return {key: where for key, where in found.items() if len(where) > 1}


def test_no_literal_default_is_repeated_across_config_classes():
    """One default per value: a second config class with the same setting imports the first's default
    (rlrec/utils/defaults.py) instead of writing the number again, so the two cannot drift apart."""
    sources = {path.relative_to(PACKAGE).as_posix(): path.read_text(encoding="utf-8")
               for path in sorted(PACKAGE.rglob("*.py"))}
    assert repeated_literal_defaults(sources) == {}
    seeded = {"a.py": "@dataclass\nclass A:\n    num_beams: int = 20\n",
              "b.py": "@dataclass\nclass B:\n    valid_num_beams: int = field(default=20, metadata={})\n",
              "c.py": "@dataclass\nclass C:\n    num_beams: int = DEFAULT_NUM_BEAMS\n"}
    assert repeated_literal_defaults(seeded) == {("num_beams", 20): ["a.py:A", "b.py:B"]}


def test_every_stage_that_reads_a_prepared_dataset_inherits_the_field():
    """`dataset_dir` is declared once (`rlrec/utils/stage_fields.py`) for every stage whose dataset is required;
    only the stages where None means "the model's manifest's" declare their own."""
    import dataclasses
    import importlib

    from rlrec.cli import STAGES
    from rlrec.utils.stage_fields import DatasetArguments, ModelDataArguments

    own, inherited = set(), set()
    for module, _ in STAGES.values():
        for config in importlib.import_module(module).make_parser().dataclass_types:
            fields = {f.name: f for f in dataclasses.fields(config)}
            if "dataset_dir" not in fields:
                continue
            if fields["dataset_dir"].default is None:
                own.add(config.__name__)
            else:
                assert issubclass(config, DatasetArguments), f"{config.__name__} declares dataset_dir again"
                inherited.add(config.__name__)
            if issubclass(config, ModelDataArguments):
                assert fields["sid_dir"].default is None, config.__name__
    assert own == {"ExportConfig", "RecommendConfig", "CacheConfig"}
    assert {"SIDConfig", "SFTScriptArguments", "GRPOScriptArguments", "DPOScriptArguments", "EvaluateConfig",
            "RewardsConfig", "SETRecStageConfig"} == inherited


def test_an_eval_prefixed_copy_has_the_originals_type_help_and_default():
    """`eval_num_beams` and the other copies are declared by name in plain dataclasses, and each keeps
    EvalSettings' type and help and, unless its class says otherwise, its default."""
    import dataclasses

    from rlrec.evaluation.settings import EvalSettings, eval_field
    from rlrec.scripts.setrec import SETRecEvalArguments
    from rlrec.training.config import EndEvalArguments

    original = {f.name: f for f in dataclasses.fields(EvalSettings)}
    own_defaults = {("EndEvalArguments", "split"): "valid", ("SETRecEvalArguments", "split"): "test"}
    for cls in (EndEvalArguments, SETRecEvalArguments):
        copies = {f.name.removeprefix("eval_"): f for f in dataclasses.fields(cls) if f.name.startswith("eval_")}
        assert set(cls().settings_fields) == set(copies) & set(original) and cls().settings_fields
        for name in cls().settings_fields:
            copy, source = copies[name], original[name]
            assert copy.type == source.type and copy.metadata == source.metadata, (cls.__name__, name)
            value = getattr(cls(), f"eval_{name}")
            assert value == own_defaults.get((cls.__name__, name), getattr(EvalSettings(), name)), (cls, name)
    with pytest.raises(ValueError, match="not an EvalSettings field"):
        eval_field("beam_count")


def test_a_stage_file_run_as_a_script_goes_through_the_cli():
    """`python rlrec/scripts/STAGE.py` takes `rlrec STAGE`'s path (checks, renames, one-line errors): every stage
    file's `__main__` block hands its own stage name to `rlrec.cli.run_script`, and a bad flag fails as in `rlrec`."""
    import subprocess
    import sys

    from rlrec.cli import STAGES

    for stage, (module, _) in STAGES.items():
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        blocks = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
        calls = [ast.unparse(node) for block in blocks for node in ast.walk(block) if isinstance(node, ast.Call)]
        assert all(call == f"run_script({stage!r})" for call in calls), (stage, calls)
    run = subprocess.run([sys.executable, str(PACKAGE / "scripts" / "evaluate.py"), "--no_such_flag", "1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "rlrec: error: evaluate: unknown command-line option --no_such_flag" in run.stderr
