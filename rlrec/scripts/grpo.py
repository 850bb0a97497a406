"""`rlrec grpo`: refine an SFT model with TRL's `GRPOTrainer`, MiniOneRec style.

    rlrec grpo --config recipes/ml-100k/grpo.yaml [--num_generations 8 --rollout sample ...]
    accelerate launch --config_file accelerate_configs/zero2.yaml -m rlrec grpo --config ...

Each train example becomes a prompt (the next-item prompt the SFT model was trained on) with its
target item. Rollouts are constrained beam search over the SID trie (`rlrec.generation.rollout`):
the group of a prompt is its top `num_generations` real, distinct items, each tagged with its item id
and beam rank, which reach the rewards. Rewards come from the recipe's `rewards` list: registered
names (`rlrec.rewards.REWARDS`) or `package.module:function`, each with a weight and parameters.

`output_dir` receives the trainer's checkpoints, then a plain model folder (LoRA merged), the SID
index in `sid/`, and `manifest.json`, written last.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from trl import ModelConfig, TrlParser

from rlrec.data.schema import PreparedDataset
from rlrec.sid.index import SIDIndex
from rlrec.training.config import EndEvalArguments
from rlrec.training.grpo_config import GRPOScriptArguments, RecGRPOConfig
from rlrec.training.refine import train_examples
from rlrec.training.valid_selection import ValidSelectionArguments
from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)


def make_parser() -> TrlParser:
    return TrlParser((GRPOScriptArguments, EndEvalArguments, RecGRPOConfig, ModelConfig, ValidSelectionArguments))


def prompt_dataset(dataset: PreparedDataset, index: SIDIndex, tokenizer: Any, max_history: int | None,
                   num_prompts: int | None, seed: int):
    """One GRPO row per train example (`prompt_rows`, which `rlrec rewards` builds its groups from too): the
    next-item prompt (as the SFT model learned it), its target item, the target's SID and the user."""
    from datasets import Dataset

    from rlrec.tasks.reward_batch import prompt_rows

    examples = train_examples("grpo", dataset, index, num_prompts, seed)
    return Dataset.from_list(prompt_rows(examples, index, tokenizer, max_history))


def build_rewards(script_args: GRPOScriptArguments, training_args: RecGRPOConfig, index: SIDIndex,
                  dataset: PreparedDataset):
    """The reward functions and their weights (into `training_args.reward_weights`)."""
    from rlrec.rewards import load_rewards, parse_reward_recipe
    from rlrec.rewards.registry import recipe_context

    recipe = parse_reward_recipe(script_args.rewards)
    context = recipe_context(recipe.specs, index, train=dataset.train, invalid_penalty=script_args.invalid_penalty,
                             num_generations=training_args.num_generations, feedback=dataset.feedback())
    rewards = load_rewards(recipe.specs, context, recipe.params)
    if training_args.reward_weights is not None and list(training_args.reward_weights) != recipe.weights:
        if any(w != 1.0 for w in recipe.weights):
            raise ConfigError("set reward weights either in `rewards` entries or in `reward_weights`, not both")
    else:
        training_args.reward_weights = recipe.weights
    return rewards, recipe


def main(script_args: GRPOScriptArguments, eval_args: EndEvalArguments, training_args: RecGRPOConfig,
         model_args: ModelConfig, valid_args: ValidSelectionArguments | None = None) -> dict[str, Any]:
    from rlrec.generation.rollout import SIDRollout, sid_token_ids
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.rewards.feedback import rated_items_lookup
    from rlrec.training.grpo_trainer import RecGRPOTrainer
    from rlrec.training.model import lora_config
    from rlrec.training.refine import finish_refinement, refinement_manifest, start_refinement, train_with_selection

    start = start_refinement("grpo", script_args, eval_args, training_args, model_args, valid_args)
    index, dataset = start.index, start.dataset
    rewards, recipe = build_rewards(script_args, training_args, index, dataset)

    rated_items = rated_items_lookup(script_args.rollout_add_rated, recipe, dataset.train, dataset.feedback(),
                                     training_args.num_generations, script_args.rollout_add_target)

    model, tokenizer = load_checkpoint(start.model_path, device="cpu", dtype=model_args.dtype or "auto")
    model.train()
    rollout = SIDRollout(index, tokenizer, training_args.num_generations, mode=script_args.rollout,
                         top_k=script_args.rollout_top_k, batch_size=script_args.rollout_batch_size,
                         seed=training_args.seed, add_target=script_args.rollout_add_target,
                         credit=script_args.rollout_credit, rated_items=rated_items)
    train_dataset = prompt_dataset(dataset, index, tokenizer, start.max_history, script_args.num_train_prompts,
                                   training_args.seed)
    logger.info("grpo: %d prompts, %d candidates each, rewards %s (weights %s)", len(train_dataset),
                training_args.num_generations, recipe.specs, training_args.reward_weights)

    trainer = RecGRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(model_args),
        rollout_func=rollout,
        batch_targets=rollout.targets,
        anchor_coef=script_args.anchor_coef,
        level_credit=script_args.level_credit,
        target_ids=functools.partial(sid_token_ids, tokenizer, index),
    )
    result, selection = train_with_selection(trainer, start, tokenizer, training_args.seed)
    manifest = refinement_manifest(
        start, trainer, result, selection,
        rewards={"specs": recipe.specs, "weights": list(training_args.reward_weights), "params": recipe.params},
        reward_log=[entry for entry in trainer.state.log_history if "reward" in entry],
        rollout_added_targets=rollout.added_targets,
        **({"rollout_added_rated": rollout.added_rated} if rated_items is not None else {}),
    )
    del model, selection
    return finish_refinement(trainer, start, tokenizer, manifest)
