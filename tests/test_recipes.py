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
from rlrec.utils.errors import UsageError
from rlrec.utils.ranges import RANGES, check_ranges
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


def test_every_range_names_a_field_of_some_stage():
    """The range table cannot drift from the configs: each name in it is a field some stage parses."""
    fields = set()
    for module, _ in STAGES.values():
        for dataclass_type in importlib.import_module(module).make_parser().dataclass_types:
            fields |= {f.name for f in dataclasses.fields(dataclass_type)}
    assert sorted(set(RANGES) - fields) == []


def test_a_range_says_what_it_allows():
    assert RANGES["max_steps"].holds(-1) and RANGES["max_steps"].holds(3) and not RANGES["max_steps"].holds(0)
    assert RANGES["num_train_epochs"].describe() == "a number > 0"
    assert RANGES["adam_beta1"].describe() == "a number in [0, 1]" and not RANGES["adam_beta1"].holds(1.5)
    assert not RANGES["learning_rate"].holds(float("nan")) and not RANGES["learning_rate"].holds(float("inf"))


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
        return renames_for(importlib.import_module(STAGES[stage][0]).make_parser())
    assert renames("prepare") == {"max_history": "history_cut"}
    for stage in ("sft", "grpo", "dpo", "rewards"):
        assert renames(stage) == {"max_history_items": "max_history"}, stage
    assert renames("evaluate") == renames("export") == {"max_history_items": "max_history"}
    assert renames("sid") == {}
