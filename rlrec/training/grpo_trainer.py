"""`RecGRPOTrainer`: TRL's `GRPOTrainer` that lets the rollout see the targets of the batch it decodes, and can
anchor the policy to them with a cross-entropy term.

TRL hands a `rollout_func` the prompts only. A rollout that puts the target into a group it missed
(`SIDRollout(add_target=True)`) needs each prompt's target item, which is a column of the same batch;
this subclass keeps that column on the trainer (`current_targets`, in prompt order) while the batch is
generated and scored.

`anchor_coef` > 0 adds `anchor_coef x` the next-item cross-entropy of each prompt's target SID (teacher-forced,
token-averaged over the batch's prompts, each prompt once however many candidates it has) to GRPO's loss: the
SFT objective on the same prompts, which holds the policy near the targets while the policy gradient
reorders the candidates. It is logged as `anchor/ce`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from trl import GRPOTrainer

from rlrec.utils.errors import ConfigError


def check_anchor_coef(coef: float) -> float:
    if isinstance(coef, bool) or not isinstance(coef, (int, float)) or not math.isfinite(coef) or coef < 0:
        raise ConfigError(f"`anchor_coef` must be a finite number >= 0, got {coef!r}")
    return float(coef)


class RecGRPOTrainer(GRPOTrainer):
    """A `GRPOTrainer` whose `current_targets` holds the `target` column of the batch being rolled out.

    Args (beyond `GRPOTrainer`'s):
        anchor_coef: weight of the target cross-entropy added to the loss (0: plain GRPO).
        target_ids: maps a target item to its SID token ids; needed when `anchor_coef` > 0.
    """

    current_targets: list[Any] | None = None

    def __init__(self, *args: Any, anchor_coef: float = 0.0,
                 target_ids: Callable[[Any], Sequence[int] | None] | None = None, **kwargs: Any) -> None:
        self.anchor_coef = check_anchor_coef(anchor_coef)
        if self.anchor_coef and target_ids is None:
            raise ConfigError("anchor_coef > 0 needs `target_ids` (item -> SID token ids)")
        self.target_ids = target_ids
        super().__init__(*args, **kwargs)

    def _generate_and_score_completions(self, inputs):
        self.current_targets = [row.get("target") for row in inputs]
        try:
            output = super()._generate_and_score_completions(inputs)
            if self.anchor_coef:
                output.update(self._anchor_inputs(self.current_targets, output["prompt_ids"].device))
            return output
        finally:
            self.current_targets = None

    def _anchor_inputs(self, targets: Sequence[Any], device: torch.device) -> dict[str, torch.Tensor]:
        """Per completion row: its prompt's target SID ids (right-padded), their mask, and the row's prompt number
        (rows of one prompt are consecutive here, `num_generations` of them; TRL shuffles rows later)."""
        ids = [list(self.target_ids(t) or []) if t is not None else [] for t in targets]
        width = max(1, max(len(row) for row in ids))
        pad_id = self.processing_class.pad_token_id or 0
        anchor_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
        anchor_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for r, row in enumerate(ids):
            if row:
                anchor_ids[r, :len(row)] = torch.as_tensor(row, dtype=torch.long)
                anchor_mask[r, :len(row)] = 1
        group = torch.arange(len(ids)) // self.num_generations
        return {"anchor_ids": anchor_ids.to(device), "anchor_mask": anchor_mask.to(device),
                "anchor_group": group.to(device)}

    def anchor_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """Token-averaged cross-entropy of the targets, each prompt of the batch once."""
        group = inputs["anchor_group"]
        rows = torch.arange(group.numel(), device=group.device)
        _, inverse = torch.unique(group, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), group.numel(), device=group.device, dtype=torch.long)
        first = first.scatter_reduce(0, inverse, rows, reduce="amin")
        anchor_ids, anchor_mask = inputs["anchor_ids"][first], inputs["anchor_mask"][first]
        input_ids = torch.cat([inputs["prompt_ids"][first], anchor_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"][first], anchor_mask], dim=1)
        logps, _, _ = self._get_per_token_logps_and_entropies(model, input_ids, attention_mask,
                                                              anchor_ids.size(1))
        mask = anchor_mask.to(logps.dtype)
        return -(logps * mask).sum() / mask.sum().clamp(min=1.0)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.anchor_coef and "anchor_ids" in inputs:
            mode = "train" if self.model.training else "eval"
            ce = self.anchor_loss(model, inputs)
            self._metrics[mode]["anchor/ce"].append(self.accelerator.gather(ce.detach()).nanmean().item())
            # Scaled for gradient accumulation as TRL scales its per-micro-batch means (the entropy bonus).
            scale = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            loss = loss + self.anchor_coef * ce / scale
        return loss
