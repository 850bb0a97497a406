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
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig, ModelConfig, TrlParser

from rlrec.data.schema import PreparedDataset
from rlrec.rewards.registry import DEFAULT_REWARDS, parse_rewards_field
from rlrec.sid.index import SIDIndex
from rlrec.training.config import EndEvalArguments, RecTrainingDefaults
from rlrec.training.grpo_trainer import check_anchor_coef, check_level_credit
from rlrec.training.refine import RefinementDataArguments, train_examples
from rlrec.training.valid_selection import ValidSelectionArguments
from rlrec.utils.defaults import DEFAULT_ROLLOUT_BATCH_SIZE
from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)



@dataclass
class GRPOScriptArguments(RefinementDataArguments):
    """What the GRPO stage reads, how it rolls out, and which rewards score the rollouts."""

    rewards: list[Any] | str | None = field(
        default=None,
        metadata={
            "help": "Rewards: a list of names or {name, weight, **params}; names from rlrec.rewards.REWARDS or "
            "'package.module:function'. JSON on the command line. Default: exact_match + ranking (MiniOneRec)."
        },
    )
    invalid_penalty: float = field(
        default=0.0, metadata={"help": "Reward of a completion that is not a catalog item (counted in the logs)."}
    )
    rollout: str = field(
        default="beam",
        metadata={"help": "beam: the group is the top num_generations items of a constrained beam search; "
                  "sample: num_generations constrained samples at GRPO's temperature."},
    )
    rollout_top_k: int | None = field(default=None, metadata={"help": "sample mode: top-k within the trie."})
    rollout_add_target: bool = field(
        default=False,
        metadata={"help": "Put the target item into every group that missed it, in place of the last candidate (an "
                  "off-policy positive, so an exact-match reward varies in every group)."},
    )
    rollout_credit: str = field(
        default="sequence",
        metadata={"help": "sequence: the policy gradient reaches every token of a candidate (GRPO); divergence: a "
                  "wrong candidate's only at the first token where its SID leaves the target's "
                  "(rlrec/generation/rollout.py says why); target: only the target's tokens (an SFT control)."},
    )
    anchor_coef: float = field(
        default=0.0,
        metadata={"help": "Add anchor_coef x the cross-entropy of each prompt's target SID (teacher-forced, the SFT "
                  "loss on the same prompts) to GRPO's loss, logged as anchor/ce; 0: plain GRPO. Holds the policy "
                  "on the targets so a higher learning rate does not drift (rlrec/training/grpo_trainer.py)."},
    )
    level_credit: float = field(
        default=0.0,
        metadata={"help": "Add level_credit x a per-SID-level advantage to each token's (sibling credit: a level's "
                  "token against the candidates with the same parent prefix, 1 if it still matches the target; "
                  "rlrec/training/grpo_trainer.py); 0: the sequence advantage alone (GRPO)."},
    )
    rollout_batch_size: int = field(
        default=DEFAULT_ROLLOUT_BATCH_SIZE, metadata={"help": "Prompts decoded together in a rollout."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rewards = parse_rewards_field(self.rewards) or list(DEFAULT_REWARDS)
        if self.rollout not in ("beam", "sample"):
            raise ConfigError(f"`rollout` must be 'beam' or 'sample', got {self.rollout!r}")
        check_anchor_coef(self.anchor_coef)
        check_level_credit(self.level_credit)


@dataclass
class RecGRPOConfig(RecTrainingDefaults, GRPOConfig):
    """TRL's `GRPOConfig` with defaults for SID rollouts: bf16 from the hardware, short completions."""

    max_completion_length: int = field(
        default=8, metadata={"help": "Completions are one SID (a few tokens); rollouts never exceed its depth."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        per_process = self.per_device_train_batch_size * self.steps_per_generation
        if per_process % self.num_generations:
            raise ConfigError(
                f"per_device_train_batch_size x steps_per_generation = {per_process} is not a multiple of "
                f"num_generations={self.num_generations}: each prompt's group of candidates must stay on one process"
            )


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
    from rlrec.training.grpo_trainer import RecGRPOTrainer
    from rlrec.training.model import lora_config
    from rlrec.training.refine import finish_refinement, refinement_manifest, start_refinement, train_with_selection

    start = start_refinement("grpo", script_args, eval_args, training_args, model_args, valid_args)
    index, dataset = start.index, start.dataset
    rewards, recipe = build_rewards(script_args, training_args, index, dataset)

    model, tokenizer = load_checkpoint(start.model_path, device="cpu", dtype=model_args.dtype or "auto")
    model.train()
    rollout = SIDRollout(index, tokenizer, training_args.num_generations, mode=script_args.rollout,
                         top_k=script_args.rollout_top_k, batch_size=script_args.rollout_batch_size,
                         seed=training_args.seed, add_target=script_args.rollout_add_target,
                         credit=script_args.rollout_credit)
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
    result, selection = train_with_selection(trainer, start, tokenizer, model_args.use_peft, training_args.seed)
    manifest = refinement_manifest(
        start, trainer, result, selection,
        rewards={"specs": recipe.specs, "weights": list(training_args.reward_weights), "params": recipe.params},
        reward_log=[entry for entry in trainer.state.log_history if "reward" in entry],
        rollout_added_targets=rollout.added_targets,
    )
    del model, selection
    return finish_refinement(trainer, start, tokenizer, manifest)
