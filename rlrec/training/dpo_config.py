"""Configs of the DPO stage: how the preference pairs are made (`DPOScriptArguments`) and how to train
(`RecDPOConfig`, TRL's `DPOConfig` with rlrec's defaults). `rlrec dpo --help` lists every field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trl import DPOConfig

from rlrec.training.config import RecTrainingDefaults
from rlrec.training.refine import RefinementDataArguments
from rlrec.utils.defaults import DEFAULT_MAX_LENGTH, DEFAULT_NUM_BEAMS
from rlrec.utils.errors import ConfigError
from rlrec.utils.ranges import AT_LEAST_ONE, Range

NEGATIVE_SOURCES = ("beam", "random", "none")


@dataclass
class DPOScriptArguments(RefinementDataArguments):
    """What the DPO stage reads and how it picks the rejected items."""

    field_ranges: ClassVar[dict[str, Range]] = {"rollout_batch_size": AT_LEAST_ONE}  # checked by rlrec/utils/ranges.py

    negatives: str = field(
        default="beam",
        metadata={"help": "beam: the SFT model's top-ranked items other than the target (hard negatives); "
                  "random: uniform catalog items other than the target (a control); none: no such pairs (with "
                  "rating_pairs only)."},
    )
    rating_pairs: int = field(
        default=0,
        metadata={"help": "On rated data, up to this many pairs per prompt from the user's own ratings: the target "
                  "against the user's disliked items nearest in time, or (a disliked target) the user's liked items "
                  "nearest in time against the target; 0: off."},
    )
    num_negatives: int = field(default=4, metadata={"help": "Rejected items per prompt: one pair each."})
    negative_beams: int = field(
        default=DEFAULT_NUM_BEAMS,
        metadata={"help": "Beams of the search that finds the negatives (>= num_negatives + 1)."}
    )
    rollout_batch_size: int = field(default=64, metadata={"help": "Prompts decoded together to find negatives."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.negatives not in NEGATIVE_SOURCES:
            raise ConfigError(f"`negatives` must be one of {NEGATIVE_SOURCES}, got {self.negatives!r}")
        if isinstance(self.rating_pairs, bool) or not isinstance(self.rating_pairs, int) or self.rating_pairs < 0:
            raise ConfigError(f"`rating_pairs` must be an integer >= 0, got {self.rating_pairs!r}")
        if self.negatives == "none" and not self.rating_pairs:
            raise ConfigError("`negatives: none` leaves no pairs: set rating_pairs (on rated data) or choose beam")
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
        default=DEFAULT_MAX_LENGTH,
        metadata={"help": "Maximum tokenized prompt + completion; recommendation prompts are short."}
    )
