"""`RecSFTTrainer`: TRL's `SFTTrainer` that can choose its checkpoint by ranking the valid users.

`rlrec sft` trains chat rows with it (and SID-only rows with its plain-loss subclass); with valid selection on,
its `evaluate` ranks the valid users instead of computing a validation loss (`ValidRankingMixin`).
"""

from __future__ import annotations

from trl import SFTTrainer

from rlrec.training.valid_selection import ValidRankingMixin


class RecSFTTrainer(ValidRankingMixin, SFTTrainer):
    """`SFTTrainer` with `evaluate` ranking the valid users when a `ValidRanking` is attached."""
