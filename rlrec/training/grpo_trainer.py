"""`RecGRPOTrainer`: TRL's `GRPOTrainer` that lets the rollout see the targets of the batch it decodes.

TRL hands a `rollout_func` the prompts only. A rollout that puts the target into a group it missed
(`SIDRollout(add_target=True)`) needs each prompt's target item, which is a column of the same batch;
this subclass keeps that column on the trainer (`current_targets`, in prompt order) while the batch is
generated and scored, and nothing else changes.
"""

from __future__ import annotations

from typing import Any

from trl import GRPOTrainer


class RecGRPOTrainer(GRPOTrainer):
    """A `GRPOTrainer` whose `current_targets` holds the `target` column of the batch being rolled out."""

    current_targets: list[Any] | None = None

    def _generate_and_score_completions(self, inputs):
        self.current_targets = [row.get("target") for row in inputs]
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self.current_targets = None
