"""Every recipe under recipes/ parses with its stage's parser: a renamed field cannot rot a recipe unseen, and
every value reaches the config as the recipe wrote it (whatever it is tuned to: no test pins a tuned value)."""

from __future__ import annotations

import dataclasses
import enum
import importlib
from pathlib import Path

import pytest
import yaml

from rlrec.cli import STAGES, parse_stage
from rlrec.utils.errors import ConfigError, UsageError
from rlrec.utils.ranges import LIBRARY_RANGES, check_ranges, class_ranges
from rlrec.utils.renamed_fields import renames_for

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*/*.yaml"))
# How transformers/peft normalise a value on parsing: the recipe's form -> the config's.
NORMALISED = {("report_to", "none"): [], ("lora_target_modules", ("all-linear",)): "all-linear"}


def test_there_are_recipes():
    assert len(RECIPES) >= 10


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_parses_with_its_stage(recipe):
    stage = recipe.stem.split("-")[0]  # prepare-cold.yaml is a `prepare` recipe
    assert stage in STAGES, f"{recipe}: no stage named {stage!r}"
    parser = importlib.import_module(STAGES[stage][0]).make_parser()
    configs = parser.parse_args_and_config(["--config", str(recipe)])
    assert configs, recipe
    check_ranges(configs)  # every shipped value is in range
    for name, value in (yaml.safe_load(recipe.read_text()) or {}).items():
        parsed = [getattr(config, name) for config in configs if hasattr(config, name)]
        assert parsed, f"{recipe}: {name} is a field of no config of {stage}"
        got = parsed[0].value if isinstance(parsed[0], enum.Enum) else parsed[0]
        written = tuple(value) if isinstance(value, list) else value
        expected = next((normal for (field, form), normal in NORMALISED.items()
                         if field == name and written == form), value)
        assert got == pytest.approx(expected) if isinstance(expected, float) else got == expected, (recipe, name)


def _stage_fields() -> list[tuple[type, dataclasses.Field]]:
    return [(dataclass_type, f) for module, _ in STAGES.values()
            for dataclass_type in importlib.import_module(module).make_parser().dataclass_types
            for f in dataclasses.fields(dataclass_type)]


def test_every_library_range_names_a_field_transformers_or_trl_declares():
    """The table holds only what rlrec cannot write beside the declaration; rlrec's own fields carry their range
    in their metadata, so a field's default, range and help are in one place."""
    declared_by = {}
    for dataclass_type, f in _stage_fields():
        owners = {c.__module__.split(".")[0] for c in dataclass_type.__mro__
                  if f.name in vars(c).get("__annotations__", {})}
        declared_by.setdefault(f.name, set()).update(owners)
    assert sorted(set(LIBRARY_RANGES) - set(declared_by)) == []
    # rlrec may give a library field another default (RecTrainingDefaults), never a field of its own here
    assert {name: owners for name, owners in declared_by.items()
            if name in LIBRARY_RANGES and not owners & {"transformers", "trl"}} == {}
    own = {f.name for config, f in _stage_fields() if f.name in class_ranges(config) and f.name not in LIBRARY_RANGES}
    assert {"max_history", "codebook_size", "kmeans_iters", "embedding_batch_size", "rollout_batch_size"} <= own


def test_a_fields_own_range_is_held_and_shown(capsys):
    from rlrec.sid.config import SIDConfig
    from rlrec.training.grpo_config import GRPOScriptArguments

    assert class_ranges(SIDConfig)["codebook_size"].describe() == "a number >= 2"
    # A subclass adds its ranges to its bases': GRPO's rollout batch beside the refinement stages' history cap.
    assert {"rollout_batch_size", "max_history", "learning_rate"} <= set(class_ranges(GRPOScriptArguments))
    with pytest.raises(ConfigError, match="codebook_size=1; expected a number >= 2"):
        check_ranges([SIDConfig(codebook_size=1)])
    with pytest.raises(ConfigError, match="max_history=0; expected a number >= 1"):
        check_ranges([GRPOScriptArguments(max_history=0)])
    check_ranges([SIDConfig(), GRPOScriptArguments(max_history=None)])  # None: left unset


def test_a_range_says_what_it_allows():
    ranges = LIBRARY_RANGES
    assert ranges["max_steps"].holds(-1) and ranges["max_steps"].holds(3) and not ranges["max_steps"].holds(0)
    assert ranges["num_train_epochs"].describe() == "a number > 0"
    assert ranges["adam_beta1"].describe() == "a number in [0, 1]" and not ranges["adam_beta1"].holds(1.5)
    assert not ranges["learning_rate"].holds(float("nan")) and not ranges["learning_rate"].holds(float("inf"))


def test_defaults_and_recipes_parse_to_the_recorded_values():
    """Each stage's defaults and what each recipe means stay as recorded (tests/recipe_values.py says how to
    rewrite the record after a change meant to alter a value)."""
    import json

    from recipe_values import SNAPSHOT, all_values

    recorded, now = json.loads(SNAPSHOT.read_text()), all_values()
    for part in ("defaults", "recipes"):
        assert sorted(now[part]) == sorted(recorded[part]), part
        for name, values in recorded[part].items():
            changed = sorted(k for k in set(values) | set(now[part][name])
                             if values.get(k, "<absent>") != now[part][name].get(k, "<absent>"))
            assert changed == [], f"{part} {name}: {changed} differ from tests/data/recipe_values.json"


def _recipe_with(tmp_path: Path, recipe: str, old: str, new: str) -> Path:
    """`recipe` rewritten with the field `new` under its old name `old`."""
    text = (ROOT / recipe).read_text()
    assert f"\n{new}:" in text, (recipe, new)
    path = tmp_path / Path(recipe).name
    path.write_text(text.replace(f"\n{new}:", f"\n{old}:"))
    return path


@pytest.mark.parametrize("recipe, old, new", [
    ("recipes/ml-100k-compact/sft.yaml", "max_history_items", "max_history"),
    ("recipes/ml-100k/prepare.yaml", "max_history", "history_cut"),
])
def test_a_renamed_field_still_parses_under_its_old_name_with_a_warning(tmp_path, caplog, recipe, old, new):
    stage = Path(recipe).stem
    _, current = parse_stage(stage, ["--config", str(ROOT / recipe)])
    old_recipe = _recipe_with(tmp_path, recipe, old, new)
    line = old_recipe.read_text().splitlines().index(next(
        row for row in old_recipe.read_text().splitlines() if row.startswith(f"{old}:"))) + 1
    with caplog.at_level("WARNING"):
        _, parsed = parse_stage(stage, ["--config", str(old_recipe)])
    assert [dataclasses.asdict(c) if dataclasses.is_dataclass(c) else c for c in parsed] == \
        [dataclasses.asdict(c) if dataclasses.is_dataclass(c) else c for c in current]
    assert f"{old_recipe}: line {line}: field `{old}` is now called `{new}`" in caplog.text


def test_a_renamed_flag_still_parses_and_both_names_together_are_refused(tmp_path, caplog):
    recipe = str(ROOT / "recipes/ml-100k/prepare.yaml")
    with caplog.at_level("WARNING"):
        (config,) = parse_stage("prepare", ["--config", recipe, "--max_history", "3"])[1]
    assert config.history_cut == 3 and "--max_history is now called --history_cut" in caplog.text
    (sft, *_), = [parse_stage("sft", ["--config", str(ROOT / "recipes/ml-100k-compact/sft.yaml"),
                                      "--max_history_items=4"])[1]]
    assert sft.max_history == 4
    with pytest.raises(UsageError, match="--max_history is the old name of --history_cut"):
        parse_stage("prepare", ["--config", recipe, "--max_history", "3", "--history_cut", "4"])
    both = tmp_path / "both.yaml"
    both.write_text((ROOT / "recipes/ml-100k/prepare.yaml").read_text() + "max_history: 5\n")
    with pytest.raises(UsageError, match=r"both.yaml: line \d+: `max_history` is the old name of `history_cut`"):
        parse_stage("prepare", ["--config", str(both)])


def test_an_old_name_is_renamed_only_where_it_is_not_a_current_field():
    """`max_history` is prepare's old name and every prompt-building stage's current one."""
    def renames(stage: str) -> dict[str, str]:
        return renames_for(importlib.import_module(STAGES[stage][0]).make_parser(), stage)
    assert renames("prepare") == {"max_history": "history_cut"}
    for stage in ("sft", "grpo", "dpo"):
        assert renames(stage) == {"max_history_items": "max_history"}, stage
    # `rlrec rewards` takes GRPO's rollout settings under GRPO's names; in grpo itself `batch_size` stays unknown
    assert renames("rewards") == {"max_history_items": "max_history", "top_k": "rollout_top_k",
                                  "batch_size": "rollout_batch_size"}
    assert renames("evaluate") == renames("export") == {"max_history_items": "max_history"}
    assert renames("sid") == {}
