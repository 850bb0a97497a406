"""Defaults that several stages' configs share, each written once: a stage cannot drift from the others.

`tests/test_layout.py` fails when a dataclass field repeats a numeric literal default that another config
class already declares under the same name (`valid_`, `eval_`, `rollout_` and `sasrec_` prefixes aside):
the second must import the value from here or from the class that owns it.
"""

DEFAULT_SEED = 42  # data subsets, splits, SID fits, SASRec, reward rollouts
DEFAULT_NUM_BEAMS = 20  # beams of constrained beam search: the most items ranked per user
DEFAULT_RANKING_BATCH_SIZE = 32  # users ranked together (evaluation, valid checks, the top-K cache)
DEFAULT_ROLLOUT_BATCH_SIZE = 16  # prompts decoded together in a GRPO rollout (and `rlrec rewards`)
DEFAULT_MAX_LENGTH = 512  # tokenized length of an SFT or DPO example: recommendation prompts are short
