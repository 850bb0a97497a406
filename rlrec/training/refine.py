"""What every stage that refines an SFT model (`rlrec grpo`, `rlrec dpo`) does around its own trainer.

Both read the SFT model's folder and prompt it as it was trained (`start_refinement`), train with valid
selection (`train_with_selection`), and save an ordinary model folder that the next stages read unchanged:
the weights (LoRA merged), the tokenizer, the SID index in `sid/`, `inference_config.json` (how to prompt
and decode it), then run the end-of-training evaluation and write `manifest.json` last, so a folder
holding one is finished (`finish_refinement`).
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlrec
from rlrec.data.schema import PreparedDataset
from rlrec.ranking.spec import RankingSpec
from rlrec.sid.index import SIDIndex
from rlrec.training.valid_selection import ValidSelectionArguments
from rlrec.utils.errors import ConfigError
from rlrec.utils.io import write_json
from rlrec.utils.output_dirs import MANIFEST


@dataclass
class RefinementDataArguments:
    """What a refinement stage trains on: the fields `rlrec grpo` and `rlrec dpo` share."""

    dataset_dir: str = field(default="runs/ml-100k/data", metadata={"help": "Prepared dataset (`rlrec prepare`)."})
    sid_dir: str | None = field(
        default=None, metadata={"help": "SID index folder; None: the `sid/` saved with the SFT model."}
    )
    num_train_prompts: int | None = field(
        default=None, metadata={"help": "Train on a random subset of this many train examples; None: all."}
    )
    max_history_items: int | None = field(
        default=None,
        metadata={"help": "History items per prompt; None: what the SFT model was trained with (its manifest)."},
    )

    def __post_init__(self) -> None:
        if self.num_train_prompts is not None and self.num_train_prompts < 1:
            raise ConfigError(f"`num_train_prompts` must be positive, got {self.num_train_prompts}")


@dataclass
class RefinementStart:
    """What a refinement stage knows before it builds its trainer."""

    stage: str
    started: float
    model_path: Path
    output_dir: Path
    valid_args: ValidSelectionArguments
    resume: str | None  # the checkpoint to resume, if any
    sid_dir: str
    dataset: PreparedDataset  # its train split already without what test-like validation leaves out
    index: SIDIndex
    trained: RankingSpec  # how the SFT model was prompted
    max_history: int | None
    eval_config: Any
    arguments: dict[str, Any]  # the stage's parsed arguments by group, for the manifest


def start_refinement(stage: str, script_args: RefinementDataArguments, eval_args: Any, training_args: Any,
                     model_args: Any, valid_args: ValidSelectionArguments | None) -> RefinementStart:
    """Check the output folder and read the dataset, the SID index and how the SFT model was prompted."""
    from rlrec.sid.index import check_index_matches
    from rlrec.training.end_eval import end_eval_config
    from rlrec.utils.output_dirs import prepare_training_output

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    started = time.perf_counter()
    if not model_args.model_name_or_path:
        raise ConfigError(f"{stage}: set `model_name_or_path` to the SFT model folder (`rlrec sft` output)")
    model_path = Path(model_args.model_name_or_path)
    output_dir = Path(training_args.output_dir)
    valid_args = valid_args or ValidSelectionArguments()
    resume = prepare_training_output(training_args, stage)
    sid_dir = script_args.sid_dir or str(model_path / "sid")
    dataset = PreparedDataset.load(script_args.dataset_dir)
    index = SIDIndex.load(sid_dir)
    check_index_matches(index, dataset, sid_dir, script_args.dataset_dir)
    dataset.train = valid_args.training_examples(dataset.train)
    trained = RankingSpec.load(model_path)  # the SFT model is prompted as it was trained
    max_history = script_args.max_history_items or trained.max_history
    eval_config = end_eval_config(eval_args, training_args, output_dir, script_args.dataset_dir, max_history)
    arguments = {"script": script_args, "eval": eval_args, "model": model_args, "valid_selection": valid_args,
                 "training": training_args}
    return RefinementStart(stage, started, model_path, output_dir, valid_args, resume, sid_dir, dataset, index,
                           trained, max_history, eval_config, arguments)


def train_examples(stage: str, dataset: PreparedDataset, index: SIDIndex, num_prompts: int | None,
                   seed: int) -> list:
    """The train examples a refinement stage prompts with: those whose target has an SID, or a seeded random
    `num_prompts` of them."""
    examples = [ex for ex in dataset.train if ex.target in index]
    if num_prompts is not None and num_prompts < len(examples):
        examples = random.Random(seed).sample(examples, num_prompts)
    if not examples:
        raise ConfigError(f"{stage}: no train example has a target in the SID index")
    return examples


def train_with_selection(trainer: Any, start: RefinementStart, tokenizer: Any, use_peft: bool,
                         seed: int) -> tuple[Any, dict[str, Any] | None]:
    """Train (resuming when asked) with valid selection if it is on; returns (train result, the selection's
    manifest record or None)."""
    from rlrec.training.model import gather_zero3_weights_on_save
    from rlrec.training.valid_selection import attach_valid_selection, end_valid_selection, valid_ranking

    ranking = valid_ranking(start.valid_args, start.dataset, start.index, tokenizer, start.max_history, seed)
    if ranking is not None:
        if use_peft:
            raise ConfigError("valid selection is not supported with use_peft (untested with LoRA checkpoints); "
                              "train without it or drop valid_every_steps")
        attach_valid_selection(trainer, start.valid_args, ranking)
    if trainer.accelerator.is_main_process:
        (start.output_dir / MANIFEST).unlink(missing_ok=True)  # unfinished until the new one lands
    gather_zero3_weights_on_save(trainer)
    result = trainer.train(resume_from_checkpoint=start.resume)
    return result, end_valid_selection(trainer) if ranking is not None else None


def refinement_manifest(start: RefinementStart, trainer: Any, result: Any, selection: dict[str, Any] | None,
                        **extra: Any) -> dict[str, Any]:
    """The manifest fields a refinement stage shares; `extra` adds the stage's own (rewards, pairs, logs)."""
    return {
        "stage": start.stage,
        "rlrec_version": rlrec.__version__,
        "base_model": str(start.model_path),
        "dataset_dir": start.arguments["script"].dataset_dir,
        "sid_dir": start.sid_dir,
        "world_size": trainer.accelerator.num_processes,
        "distributed_type": str(trainer.accelerator.distributed_type.value),
        "global_step": trainer.state.global_step,
        "prompt_max_history": start.max_history,
        "train": {key: value for key, value in result.metrics.items() if isinstance(value, int | float)},
        **extra,
        "valid_selection": selection,
        "config": {name: args.to_dict() if name == "training" else dataclasses.asdict(args)
                   for name, args in start.arguments.items()},
    }


def finish_refinement(trainer: Any, start: RefinementStart, tokenizer: Any,
                      manifest: dict[str, Any]) -> dict[str, Any]:
    """Save the model folder, end the distributed run, evaluate on the main process and write the manifest.

    The caller drops its own references to the model before calling: the trainer's are released here, so the
    evaluation does not hold the training copy (and a reference model) beside the one it reloads.
    """
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.training.end_eval import run_end_eval
    from rlrec.training.model import collect_memory, release_training, save_final_model

    output_dir = start.output_dir
    dtype = start.arguments["model"].dtype or "auto"
    saved_as = save_final_model(trainer, output_dir, merge_lora=True,
                                rebuild=lambda: load_checkpoint(start.model_path, device="cpu", dtype=dtype)[0])
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir)
        start.index.save(output_dir / "sid")
        RankingSpec(max_history=start.max_history, phrasing=start.trained.phrasing,
                    num_beams=start.arguments["eval"].eval_num_beams).save(output_dir)
        manifest = {**manifest, "saved_as": saved_as}
    else:
        manifest = {}
    if hasattr(trainer, "ref_model"):
        trainer.ref_model = None
    is_main = release_training(trainer)  # the other ranks are done; the evaluation below is the main process's
    collect_memory()
    if is_main:
        if start.eval_config is not None:
            manifest["eval"] = run_end_eval(start.eval_config)
        manifest["seconds"] = round(time.perf_counter() - start.started, 1)
        write_json(output_dir / MANIFEST, manifest)
    return manifest
