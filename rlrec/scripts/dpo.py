"""`rlrec dpo`: refine an SFT model with TRL's `DPOTrainer` on the model's own beam negatives (S-DPO style).

    rlrec dpo --config recipes/ml-100k-compact/dpo.yaml [--num_negatives 4 --beta 0.1 ...]
    accelerate launch --config_file accelerate_configs/zero2.yaml -m rlrec dpo --config ...

Before training, the SFT model ranks every train prompt by constrained beam search (the evaluation's own
`SIDRanker`); each prompt's `num_negatives` highest-ranked items other than its target become rejected
completions, the target's SID the chosen one: one preference pair per negative. These are the items the
model would wrongly recommend, the hard negatives S-DPO and MiniOneRec's DPO baseline use; S-DPO's softmax
over several negatives is approximated by one pair per negative (TRL's losses are pairwise).
`negatives: random` draws them uniformly from the catalog instead (a control: easy negatives).

The pairs are fixed for the run (offline DPO, as the papers' baselines) and scored on the SID tokens alone,
as the ranking scores items (`rlrec.training.dpo_trainer`); the reference model is the SFT model.
`output_dir` receives the trainer's checkpoints, then a plain model folder, the SID index in `sid/`,
`inference_config.json` and `manifest.json`, written last.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

from trl import DPOConfig, ModelConfig, TrlParser

from rlrec.data.schema import PreparedDataset
from rlrec.sid.index import SIDIndex
from rlrec.training.config import EndEvalArguments, RecTrainingDefaults
from rlrec.training.refine import RefinementDataArguments, train_examples
from rlrec.training.valid_selection import ValidSelectionArguments
from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)

NEGATIVE_SOURCES = ("beam", "random")


@dataclass
class DPOScriptArguments(RefinementDataArguments):
    """What the DPO stage reads and how it picks the rejected items."""

    negatives: str = field(
        default="beam",
        metadata={"help": "beam: the SFT model's top-ranked items other than the target (hard negatives); "
                  "random: uniform catalog items other than the target (a control)."},
    )
    num_negatives: int = field(default=4, metadata={"help": "Rejected items per prompt: one pair each."})
    negative_beams: int = field(
        default=20, metadata={"help": "Beams of the search that finds the negatives (>= num_negatives + 1)."}
    )
    rollout_batch_size: int = field(default=64, metadata={"help": "Prompts decoded together to find negatives."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.negatives not in NEGATIVE_SOURCES:
            raise ConfigError(f"`negatives` must be one of {NEGATIVE_SOURCES}, got {self.negatives!r}")
        if self.num_negatives < 1:
            raise ConfigError(f"`num_negatives` must be positive, got {self.num_negatives}")
        if self.negative_beams < self.num_negatives + 1:
            raise ConfigError(f"`negative_beams` ({self.negative_beams}) must be at least num_negatives + 1 "
                              f"({self.num_negatives + 1}): the target may take one of the beams")


@dataclass
class RecDPOConfig(RecTrainingDefaults, DPOConfig):
    """TRL's `DPOConfig` with rlrec's defaults: bf16 from the hardware, no gradient checkpointing (TRL turns it on;
    it costs ~20% on the short SID sequences and saves nothing at this size), short sequences."""

    max_length: int | None = field(
        default=512, metadata={"help": "Maximum tokenized prompt + completion; recommendation prompts are short."}
    )


def make_parser() -> TrlParser:
    return TrlParser((DPOScriptArguments, EndEvalArguments, RecDPOConfig, ModelConfig, ValidSelectionArguments))


def negative_items(ranker: Any, examples: list, script_args: DPOScriptArguments, seed: int) -> list[list[str]]:
    """Each example's rejected items: its `num_negatives` best-ranked other items, or random other items."""
    n = script_args.num_negatives
    if script_args.negatives == "random":
        rng = random.Random(seed)
        catalog = list(ranker.item_ids)
        if len(catalog) <= n:
            raise ConfigError(f"dpo: the catalog has {len(catalog)} items; num_negatives={n} needs more")
        picked = []
        for ex in examples:
            items: list[str] = []
            while len(items) < n:
                item = rng.choice(catalog)
                if item != ex.target and item not in items:
                    items.append(item)
            picked.append(items)
        return picked
    from tqdm.auto import tqdm

    picked = []
    for start in tqdm(range(0, len(examples), script_args.rollout_batch_size), desc="dpo: beam negatives",
                      unit="batch"):
        chunk = examples[start: start + script_args.rollout_batch_size]
        ranked = ranker.rank([ex.history for ex in chunk], n + 1)
        for ex, found in zip(chunk, ranked, strict=True):
            picked.append([item for item, _ in found if item != ex.target][:n])
    return picked


def preference_dataset(ranker: Any, dataset: PreparedDataset, index: SIDIndex, script_args: DPOScriptArguments,
                       seed: int):
    """Token-id rows (prompt, chosen = the target's SID, rejected = a negative's SID), one per negative: the
    prompt tokenized as the ranking reads it, the completions bare SIDs (no `<eos>`: `SIDDPOTrainer` says why)."""
    from datasets import Dataset

    examples = train_examples("dpo", dataset, index, script_args.num_train_prompts, seed)
    negatives = negative_items(ranker, examples, script_args, seed)
    tokenizer = ranker.tokenizer
    prompts = tokenizer(ranker.prompt_texts([ex.history for ex in examples]), add_special_tokens=False)["input_ids"]

    def sid_ids(item: str) -> list[int]:
        return tokenizer.convert_tokens_to_ids(index.tokens(item))

    rows = [{"prompt_ids": prompt, "chosen_ids": sid_ids(ex.target), "rejected_ids": sid_ids(item)}
            for ex, prompt, items in zip(examples, prompts, negatives, strict=True) for item in items]
    return Dataset.from_list(rows), len(examples)


def main(script_args: DPOScriptArguments, eval_args: EndEvalArguments, training_args: RecDPOConfig,
         model_args: ModelConfig, valid_args: ValidSelectionArguments | None = None) -> dict[str, Any]:
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.ranking import SIDRanker
    from rlrec.training.dpo_trainer import SIDDPOTrainer
    from rlrec.training.model import lora_config
    from rlrec.training.refine import finish_refinement, refinement_manifest, start_refinement, train_with_selection

    start = start_refinement("dpo", script_args, eval_args, training_args, model_args, valid_args)
    index, dataset = start.index, start.dataset
    model, tokenizer = load_checkpoint(start.model_path, device="cpu", dtype=model_args.dtype or "auto")
    ranker = SIDRanker(model, tokenizer, index, num_beams=script_args.negative_beams,
                       batch_size=script_args.rollout_batch_size, max_history=start.max_history)
    train_dataset, num_prompts = preference_dataset(ranker, dataset, index, script_args, training_args.seed)
    logger.info("dpo: %d prompts x %d %s negatives = %d pairs", num_prompts, script_args.num_negatives,
                script_args.negatives, len(train_dataset))
    model.train()
    trainer = SIDDPOTrainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=tokenizer,
                            peft_config=lora_config(model_args))
    result, selection = train_with_selection(trainer, start, tokenizer, model_args.use_peft, training_args.seed)
    manifest = refinement_manifest(
        start, trainer, result, selection,
        pairs={"prompts": num_prompts, "pairs": len(train_dataset), "negatives": script_args.negatives,
               "num_negatives": script_args.num_negatives},
        dpo_log=[entry for entry in trainer.state.log_history if "rewards/accuracies" in entry],
    )
    del model, ranker, selection
    return finish_refinement(trainer, start, tokenizer, manifest)
