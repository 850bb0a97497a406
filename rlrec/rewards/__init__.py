"""Reward functions for the GRPO stage, by name (`REWARDS`) or by `package.module:function` for user code.

Each reward is a plain function `(completions, **kwargs) -> list[float]` as TRL's GRPOTrainer calls it; those that
need the SID index or item embeddings are made by a factory from a `RewardContext`. `load_rewards` builds a
recipe's list and wraps each in `checked`, so a malformed completion scores a penalty and is counted, never a crash.
"""

from rlrec.rewards.checked import checked
from rlrec.rewards.context import RewardContext, RewardFunc, completion_text, reward_factory
from rlrec.rewards.exact import exact_match
from rlrec.rewards.format import valid_format
from rlrec.rewards.ranking import ranking
from rlrec.rewards.registry import REWARDS, RewardRecipe, build_reward, load_rewards, parse_reward_recipe
from rlrec.rewards.semantic import semantic_cosine, token_semantic

__all__ = [
    "REWARDS",
    "RewardContext",
    "RewardFunc",
    "RewardRecipe",
    "build_reward",
    "checked",
    "completion_text",
    "exact_match",
    "load_rewards",
    "parse_reward_recipe",
    "ranking",
    "reward_factory",
    "semantic_cosine",
    "token_semantic",
    "valid_format",
]
