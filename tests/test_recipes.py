"""Every recipe under recipes/ parses with its stage's parser: a renamed field cannot rot a recipe unseen."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from rlrec.cli import STAGES

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
