"""Every field value each stage defaults to and every shipped recipe parses to, flat (`field -> value`).

`tests/data/recipe_values.json` holds each stage's defaults (parsed from no arguments) and, per recipe, the
values that differ from its stage's defaults. `tests/test_recipes.py` compares a fresh parse with it, so a
refactor of the configs that changes a default or what a recipe means fails there, naming the field. After a
change that means to alter a value (a new field, a new default), rewrite the file and read its diff:

    python tests/recipe_values.py --write
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "data" / "recipe_values.json"
RECIPES = sorted((ROOT / "recipes").glob("*/*.yaml"))
# Values that depend on the machine or the log level that parses, not on the recipe.
MACHINE_FIELDS = {"logging_dir", "disable_tqdm", "local_rank", "world_size", "n_gpu", "bf16", "fp16", "device",
                  "hub_token"}


def plain(value: Any) -> Any:
    """A JSON form of a parsed value."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return "nan"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def parsed_values(stage: str, argv: list[str]) -> dict[str, Any]:
    """The flat values `rlrec STAGE argv` parses to (the first config holding a field wins, as in the CLI)."""
    from rlrec.cli import STAGES

    parser = importlib.import_module(STAGES[stage][0]).make_parser()
    values: dict[str, Any] = {}
    for config in parser.parse_args_and_config(argv):
        for f in dataclasses.fields(config):
            if f.name not in MACHINE_FIELDS and not f.name.startswith("_"):
                values.setdefault(f.name, plain(getattr(config, f.name)))
    return dict(sorted(values.items()))


def stage_defaults() -> dict[str, dict[str, Any]]:
    """Each stage's values with no arguments (a stage that needs one, such as `rewards`, is left out)."""
    from rlrec.cli import STAGES
    from rlrec.utils.errors import ConfigError

    defaults = {}
    for stage in STAGES:
        try:
            defaults[stage] = parsed_values(stage, [])
        except ConfigError:
            continue
    return defaults


def all_values() -> dict[str, Any]:
    """`{"defaults": {stage: values}, "recipes": {path: values unlike the stage's defaults}}`."""
    defaults = stage_defaults()
    recipes = {}
    for recipe in RECIPES:
        stage = recipe.stem.split("-")[0]  # prepare-cold.yaml is a `prepare` recipe
        base = defaults.get(stage, {})
        values = parsed_values(stage, ["--config", str(recipe)])
        recipes[recipe.relative_to(ROOT).as_posix()] = {k: v for k, v in values.items() if base.get(k, k) != v}
    return {"defaults": defaults, "recipes": recipes}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    SNAPSHOT.write_text(json.dumps(all_values(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
