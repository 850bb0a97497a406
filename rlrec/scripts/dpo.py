"""`rlrec dpo`: refine an SFT model with TRL's `DPOTrainer` on the model's own beam negatives (S-DPO style).

    rlrec dpo --config recipes/ml-100k-compact/dpo.yaml [--num_negatives 4 --beta 0.1 ...]
    accelerate launch --config_file accelerate_configs/zero2.yaml -m rlrec dpo --config ...

Before training, the SFT model ranks every train prompt by constrained beam search (the evaluation's own
`SIDRanker`); each prompt's `num_negatives` highest-ranked items other than its target become rejected
completions, the target's SID the chosen one: one preference pair per negative. These are the items the
model would wrongly recommend, the hard negatives S-DPO and MiniOneRec's DPO baseline use; S-DPO's softmax
over several negatives is approximated by one pair per negative (TRL's losses are pairwise).
`negatives: random` draws them uniformly from the catalog instead (a control: easy negatives).

On rated data `rating_pairs: N` adds pairs from what the user thought (`rlrec.data.feedback`): a prompt whose
target the user did not dislike is paired against up to N items the same user disliked, nearest in time to the
target (target chosen); a prompt whose target the user disliked becomes the rejected side against up to N items
the user liked, nearest in time (those chosen). Next-item SFT learned to write disliked targets like any
other; these pairs are the signal it never had. With `rating_pairs`, beam pairs are made only for targets the
user did not dislike (a disliked target is no `chosen`), and `negatives: none` trains on the rating pairs alone.

The pairs are fixed for the run (offline DPO, as the papers' baselines) and scored on the SID tokens alone,
as the ranking scores items (`rlrec.training.dpo_trainer`); the reference model is the SFT model.
`output_dir` receives the trainer's checkpoints, then a plain model folder, the SID index in `sid/`,
`inference_config.json` and `manifest.json`, written last.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from trl import ModelConfig, TrlParser

from rlrec.data.feedback import UserRatings
from rlrec.data.schema import PreparedDataset
from rlrec.sid.index import SIDIndex
from rlrec.training.config import EndEvalArguments
from rlrec.training.dpo_config import DPOScriptArguments, RecDPOConfig
from rlrec.training.refine import train_examples
from rlrec.training.valid_selection import ValidSelectionArguments
from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)


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


def rating_pair_items(examples: list, ratings: UserRatings, count: int) -> list[list[tuple[str, str]]]:
    """Each example's `(chosen, rejected)` items from the user's ratings (`rating_pairs`, see the module doc)."""
    out = []
    for ex in examples:
        if ratings.rule.label(ex.rating) == "disliked":
            out.append([(item, ex.target) for item in ratings.nearest(ex.user_id, ex.target, "liked", count)])
        else:
            out.append([(ex.target, item) for item in ratings.nearest(ex.user_id, ex.target, "disliked", count)])
    return out


def preference_dataset(ranker: Any, dataset: PreparedDataset, index: SIDIndex, script_args: DPOScriptArguments,
                       seed: int) -> tuple[Any, dict[str, int]]:
    """Token-id rows (prompt, chosen = the target's SID, rejected = a negative's SID), one per negative, and the
    rating pairs: the prompt tokenized as the ranking reads it, the completions bare SIDs (no `<eos>`:
    `SIDDPOTrainer` says why). Returns the dataset and its counts (prompts, beam pairs, rating pairs)."""
    from datasets import Dataset

    examples = train_examples("dpo", dataset, index, script_args.num_train_prompts, seed)
    pairs: list[list[tuple[str, str]]] = [[] for _ in examples]
    rule = dataset.feedback() if script_args.rating_pairs else None
    if script_args.rating_pairs:
        if rule is None:
            raise ConfigError(f"dpo: rating_pairs={script_args.rating_pairs} needs rated data, and "
                              f"{dataset.folder or 'the dataset'} has no ratings (its manifest.json has no `ratings`)")
        from rlrec.data.feedback import UserRatings

        ratings = UserRatings.from_train(dataset.train, rule)
        pairs = [[(c, r) for c, r in found if c in index and r in index]
                 for found in rating_pair_items(examples, ratings, script_args.rating_pairs)]
    counts = {"prompts": len(examples), "rating_pairs": sum(len(p) for p in pairs)}
    if script_args.negatives != "none":
        disliked = [rule is not None and rule.label(ex.rating) == "disliked" for ex in examples]
        beam_examples = [ex for ex, skip in zip(examples, disliked, strict=True) if not skip]
        negatives = iter(negative_items(ranker, beam_examples, script_args, seed))
        for position, skip in enumerate(disliked):
            if not skip:
                pairs[position].extend((examples[position].target, item) for item in next(negatives))
    counts["beam_pairs"] = sum(len(p) for p in pairs) - counts["rating_pairs"]
    if not counts["beam_pairs"] + counts["rating_pairs"]:
        raise ConfigError("dpo: no preference pair: no prompt's user rated another item as the pairs need")
    tokenizer = ranker.tokenizer
    prompts = tokenizer(ranker.prompt_texts([ex.history for ex in examples]), add_special_tokens=False)["input_ids"]

    def sid_ids(item: str) -> list[int]:
        return tokenizer.convert_tokens_to_ids(index.tokens(item))

    rows = [{"prompt_ids": prompt, "chosen_ids": sid_ids(chosen), "rejected_ids": sid_ids(rejected)}
            for prompt, found in zip(prompts, pairs, strict=True) for chosen, rejected in found]
    return Dataset.from_list(rows), counts


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
    train_dataset, counts = preference_dataset(ranker, dataset, index, script_args, training_args.seed)
    logger.info("dpo: %d prompts, %d %s-negative pairs and %d rating pairs", counts["prompts"], counts["beam_pairs"],
                script_args.negatives, counts["rating_pairs"])
    model.train()
    trainer = SIDDPOTrainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=tokenizer,
                            peft_config=lora_config(model_args))
    result, selection = train_with_selection(trainer, start, tokenizer, training_args.seed)
    manifest = refinement_manifest(
        start, trainer, result, selection,
        pairs={"prompts": counts["prompts"], "pairs": len(train_dataset), "negatives": script_args.negatives,
               "num_negatives": script_args.num_negatives, "rating_pairs": counts["rating_pairs"],
               "rating_pairs_per_prompt": script_args.rating_pairs},
        dpo_log=[entry for entry in trainer.state.log_history if "rewards/accuracies" in entry],
    )
    del model, ranker, selection
    return finish_refinement(trainer, start, tokenizer, manifest)
