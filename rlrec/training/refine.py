"""What every stage that refines an SFT model (`rlrec grpo`, `rlrec dpo`) does around its own trainer.

Both read the SFT model's folder and prompt it as it was trained (`start_refinement`), train with valid
selection (`train_with_selection`), and save an ordinary model folder that the next stages read unchanged:
the weights (LoRA merged), the tokenizer, the SID index in `sid/`, `inference_config.json` (how to prompt
and decode it) (`finish_refinement`). The run itself (output folder, resume, manifest last) is the
`StageRun` every training stage shares.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rlrec.data.schema import PreparedDataset
from rlrec.ranking.spec import RankingSpec
from rlrec.sid.index import SIDIndex
from rlrec.training.stage import StageRun
from rlrec.training.valid_selection import SelectionCheckpoints, ValidSelectionArguments, settle_valid_selection
from rlrec.utils.errors import ConfigError
from rlrec.utils.ranges import AT_LEAST_ONE, Range
from rlrec.utils.stage_fields import ModelDataArguments


@dataclass
class RefinementDataArguments(ModelDataArguments):
    """What a refinement stage trains on: the fields `rlrec grpo` and `rlrec dpo` share."""

    field_ranges: ClassVar[dict[str, Range]] = {"max_history": AT_LEAST_ONE}  # checked by rlrec/utils/ranges.py

    num_train_prompts: int | None = field(
        default=None, metadata={"help": "Train on a random subset of this many train examples; None: all."}
    )
    max_history: int | None = field(
        default=None,
        metadata={"help": "History items per prompt; None: what the SFT model was trained with (its manifest)."},
    )

    def __post_init__(self) -> None:
        if self.num_train_prompts is not None and self.num_train_prompts < 1:
            raise ConfigError(f"`num_train_prompts` must be positive, got {self.num_train_prompts}")


@dataclass
class RefinementStart:
    """What a refinement stage knows before it builds its trainer."""

    run: StageRun
    model_path: Path
    valid_args: ValidSelectionArguments
    sid_dir: str
    dataset: PreparedDataset  # its train split already without what test-like validation leaves out
    index: SIDIndex
    trained: RankingSpec  # how the SFT model was prompted
    max_history: int | None
    eval_config: Any
    checkpoints: SelectionCheckpoints | None  # valid selection's, when it is on (`settle_valid_selection`)


def start_refinement(stage: str, script_args: RefinementDataArguments, eval_args: Any, training_args: Any,
                     model_args: Any, valid_args: ValidSelectionArguments | None) -> RefinementStart:
    """Open the stage's run and read the dataset, the SID index and how the SFT model was prompted."""
    from rlrec.sid.index import check_index_matches
    from rlrec.training.end_eval import end_eval_config

    if not model_args.model_name_or_path:
        raise ConfigError(f"{stage}: set `model_name_or_path` to the SFT model folder (`rlrec sft` output)")
    model_path = Path(model_args.model_name_or_path)
    valid_args = valid_args or ValidSelectionArguments()
    if valid_args.enabled and model_args.use_peft:
        raise ConfigError("valid selection is not supported with use_peft (untested with LoRA checkpoints); "
                          "train without it or drop valid_every_steps")
    run = StageRun.open(stage, training_args, {"script": script_args, "eval": eval_args, "model": model_args,
                                               "valid_selection": valid_args, "training": training_args})
    checkpoints = settle_valid_selection(training_args, valid_args)
    sid_dir = script_args.sid_dir or str(model_path / "sid")
    dataset = PreparedDataset.load(script_args.dataset_dir)
    index = SIDIndex.load(sid_dir)
    check_index_matches(index, dataset, sid_dir, script_args.dataset_dir)
    dataset.train = valid_args.training_examples(dataset.train)
    trained = RankingSpec.load(model_path)  # the SFT model is prompted as it was trained
    max_history = script_args.max_history or trained.max_history
    eval_config = end_eval_config(eval_args, training_args, run.output_dir, script_args.dataset_dir, max_history)
    return RefinementStart(run, model_path, valid_args, sid_dir, dataset, index, trained, max_history, eval_config,
                           checkpoints)


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


def train_with_selection(trainer: Any, start: RefinementStart, tokenizer: Any,
                         seed: int) -> tuple[Any, dict[str, Any] | None]:
    """Train (resuming when asked) with valid selection if it is on; returns (train result, the selection's
    manifest record or None)."""
    from rlrec.training.valid_selection import valid_ranking

    ranking = valid_ranking(start.valid_args, start.dataset, start.index, tokenizer, start.max_history, seed)
    return start.run.train(trainer, ranking, start.checkpoints)


def refinement_manifest(start: RefinementStart, trainer: Any, result: Any, selection: dict[str, Any] | None,
                        **extra: Any) -> dict[str, Any]:
    """The manifest fields a refinement stage shares; `extra` adds the stage's own (rewards, pairs, logs)."""
    return start.run.manifest(
        trainer, result, base_model=str(start.model_path), dataset_dir=start.run.arguments["script"].dataset_dir,
        sid_dir=start.sid_dir, prompt_max_history=start.max_history, **extra, valid_selection=selection)


def finish_refinement(trainer: Any, start: RefinementStart, tokenizer: Any,
                      manifest: dict[str, Any]) -> dict[str, Any]:
    """Save the model folder (LoRA merged) with the tokenizer, the SID index and how to prompt it, let the other
    processes go, evaluate it and write the manifest last. The caller drops its own references to the model
    before calling."""
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.training.end_eval import run_end_eval
    from rlrec.training.model import save_final_model

    output_dir, dtype = start.run.output_dir, start.run.arguments["model"].dtype or "auto"
    saved_as = save_final_model(trainer, output_dir, merge_lora=True,  # every process takes part
                                rebuild=lambda: load_checkpoint(start.model_path, device="cpu", dtype=dtype)[0])
    if trainer.accelerator.is_main_process:  # beside the model: what every later stage reads
        tokenizer.save_pretrained(output_dir)
        start.index.save(output_dir / "sid")
        RankingSpec(max_history=start.max_history,
                    num_beams=start.run.arguments["eval"].eval_num_beams).save(output_dir)
    if not start.run.end_training(trainer):
        return {}
    report = run_end_eval(start.eval_config) if start.eval_config is not None else None
    return start.run.write_manifest({**manifest, "saved_as": saved_as, **({"eval": report} if report else {})})
