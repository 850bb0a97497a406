"""Every recipe under recipes/ parses with its stage's parser: a renamed field cannot rot a recipe unseen."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from rlrec.cli import STAGES
from rlrec.utils.ranges import RANGES, check_ranges

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*/*.yaml"))


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
