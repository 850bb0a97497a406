"""`RecGRPOTrainer`: TRL's `GRPOTrainer` that lets the rollout see the targets of the batch it decodes, and can
anchor the policy to them with a cross-entropy term.

TRL hands a `rollout_func` the prompts only. A rollout that puts the target into a group it missed
(`SIDRollout(add_target=True)`) needs each prompt's target item, which is a column of the same batch;
this subclass holds that column in the rollout's `BatchTargets` (`rlrec.tasks.reward_batch`, passed as
`batch_targets`) while the batch is generated and scored.

`anchor_coef` > 0 adds `anchor_coef x` the next-item cross-entropy of each prompt's target SID (teacher-forced,
token-averaged over the batch's prompts, each prompt once however many candidates it has) to GRPO's loss: the
SFT objective on the same prompts, which holds the policy near the targets while the policy gradient
reorders the candidates. It is logged as `anchor/ce`.

`level_credit` > 0 adds `level_credit x` a per-SID-level advantage to each token's sequence advantage (TRL takes
`(B, T)` advantages). Beam candidates share prefixes, so a sequence-level advantage spreads one number over tokens
that siblings share: a wrong item that shares the target's first two codes is pushed down on those two codes too.
`sibling_advantages` instead scores each level's token against its siblings (the candidates with the same parent
prefix): a level's token earns 1 when the candidate still matches the target there, 0 when not, minus the mean of
its siblings at that level. The tokens a candidate shares with the target get credit, a wrong candidate is
pushed down only at the level where it left the target, and a level where every sibling agrees carries none
(Sibling-GRPO, as in SINGER / SAPO / V-STAR).

What the rewards see of a batch (the rows, the rollout's columns, the keyword arguments) is stated in
`rlrec.tasks.reward_batch`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from trl import GRPOTrainer

from rlrec.tasks.reward_batch import BatchTargets
from rlrec.training.valid_selection import ValidRankingMixin
from rlrec.utils.errors import ConfigError


def _non_negative(name: str, coef: float) -> float:
    if isinstance(coef, bool) or not isinstance(coef, (int, float)) or not math.isfinite(coef) or coef < 0:
        raise ConfigError(f"`{name}` must be a finite number >= 0, got {coef!r}")
    return float(coef)


def check_anchor_coef(coef: float) -> float:
    return _non_negative("anchor_coef", coef)


def check_level_credit(coef: float) -> float:
    return _non_negative("level_credit", coef)


def sibling_advantages(completions: Sequence[Sequence[int]], targets: Sequence[Sequence[int] | None],
                       group: int, width: int | None = None) -> torch.Tensor:
    """`(B, width)` per-level advantages of beam groups of `group` consecutive completions (module docstring).

    `completions[i]` is candidate i's SID token ids (one per level), `targets[i]` its prompt's target SID ids
    (None: no target, no credit). Columns past a candidate's SID are 0.
    """
    if len(completions) % group:
        raise ValueError(f"{len(completions)} completions do not split into groups of {group}")
    width = width or max((len(c) for c in completions), default=0)
    out = torch.zeros((len(completions), width), dtype=torch.float32)
    for start in range(0, len(completions), group):
        rows = range(start, start + group)
        for level in range(width):
            parents: dict[tuple[int, ...], list[tuple[int, float]]] = {}
            for r in rows:
                seq, target = list(completions[r]), targets[r]
                if target is None or level >= len(seq):
                    continue
                right = float(list(seq[: level + 1]) == list(target[: level + 1]))
                parents.setdefault(tuple(seq[:level]), []).append((r, right))
            for siblings in parents.values():
                mean = sum(right for _, right in siblings) / len(siblings)
                for r, right in siblings:
                    out[r, level] = right - mean
    return out


class RecGRPOTrainer(ValidRankingMixin, GRPOTrainer):
    """A `GRPOTrainer` that holds the `target` column of the batch being rolled out in `batch_targets`.

    Args (beyond `GRPOTrainer`'s):
        batch_targets: where the rollout reads the batch's targets (`SIDRollout.targets`); None: a holder of its
            own, for a rollout that needs no targets.
        anchor_coef: weight of the target cross-entropy added to the loss (0: plain GRPO).
        level_credit: weight of the per-SID-level sibling advantage (0: sequence advantages only).
        target_ids: maps a target item to its SID token ids; needed when `anchor_coef` or `level_credit` > 0.
    """

    def __init__(self, *args: Any, batch_targets: BatchTargets | None = None, anchor_coef: float = 0.0,
                 level_credit: float = 0.0, target_ids: Callable[[Any], Sequence[int] | None] | None = None,
                 **kwargs: Any) -> None:
        self.batch_targets = batch_targets if batch_targets is not None else BatchTargets()
        self.anchor_coef = check_anchor_coef(anchor_coef)
        self.level_credit = check_level_credit(level_credit)
        if (self.anchor_coef or self.level_credit) and target_ids is None:
            raise ConfigError("anchor_coef or level_credit > 0 needs `target_ids` (item -> SID token ids)")
        self.target_ids = target_ids
        super().__init__(*args, **kwargs)

    def _generate_and_score_completions(self, inputs):
        with self.batch_targets.hold(inputs) as targets:
            output = super()._generate_and_score_completions(inputs)
            if self.anchor_coef:
                output.update(self._anchor_inputs(targets, output["prompt_ids"].device))
            if self.level_credit:
                output["advantages"] = self._level_advantages(output, targets)
            return output

    def _level_advantages(self, output: dict[str, Any], targets: Sequence[Any]) -> torch.Tensor:
        """The sequence advantage on every token plus `level_credit` x the sibling advantage of its SID level."""
        ids, mask = output["completion_ids"], output["completion_mask"]
        completions = [row[: int(m.sum())].tolist() for row, m in zip(ids, mask, strict=True)]
        target_ids = [list(self.target_ids(t) or []) or None if t is not None else None for t in targets]
        levels = sibling_advantages(completions, target_ids, self.num_generations, ids.size(1)).to(ids.device)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["level_credit/abs_mean"].append(levels[mask.bool()].abs().mean().item())
        sequence = output["advantages"]
        if sequence.dim() == 1:
            sequence = sequence.unsqueeze(1).expand_as(levels)
        return sequence + self.level_credit * levels

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
