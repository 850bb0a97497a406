"""Configs of the GRPO stage: what to roll out and reward (`GRPOScriptArguments`) and how to train
(`RecGRPOConfig`, TRL's `GRPOConfig` with rlrec's defaults). `rlrec grpo --help` lists every field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from trl import GRPOConfig

from rlrec.rewards.registry import DEFAULT_REWARDS, parse_rewards_field
from rlrec.training.config import RecTrainingDefaults
from rlrec.training.grpo_trainer import check_anchor_coef, check_level_credit
from rlrec.training.refine import RefinementDataArguments
from rlrec.utils.defaults import DEFAULT_ROLLOUT_BATCH_SIZE
from rlrec.utils.errors import ConfigError
from rlrec.utils.ranges import AT_LEAST_ONE, NON_NEGATIVE, Range


@dataclass
class GRPOScriptArguments(RefinementDataArguments):
    """What the GRPO stage reads, how it rolls out, and which rewards score the rollouts."""

    field_ranges: ClassVar[dict[str, Range]] = {  # checked by rlrec/utils/ranges.py
        "rollout_batch_size": AT_LEAST_ONE, "rollout_add_rated": NON_NEGATIVE}

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
    rollout_add_rated: int = field(
        default=0,
        metadata={"help": "With the `rating` reward: put the items of the user's next N rated train events after "
                  "the prompt's target into every group that missed them (off-policy, like rollout_add_target), "
                  "so each group contrasts what this user went on to like and dislike; N <= the reward's "
                  "future_window. 0: the search's candidates only."},
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
