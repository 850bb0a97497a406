"""`PlainLossSFTTrainer`: TRL's `SFTTrainer` with a plain cross-entropy over the labelled positions only.

TRL computes the SFT loss through a chunked, fused LM head that also yields per-token entropy and top-1
accuracy for its logs. That pays off for an LLM's 50k-150k-word vocabulary; for a from-scratch SID model
(a few hundred tokens, under a million parameters) it is overhead. What does cost there is the LM head
and its log-softmax over every position (about 40% of a step, measured with torch.profiler) while only
the target's few SID tokens carry a label: a next-item example is ~33 tokens with 3 labelled.

So each right-padded batch is turned left-padded (labels end every row), the model is asked for the
logits of the last positions only (transformers' `logits_to_keep`, through the wrapped model so DDP and
ZeRO see an ordinary forward), and the loss is the cross-entropy there, summed and divided by the
trainer's `num_items_in_batch` exactly as TRL's own loss is. RoPE attention depends on relative positions
and the position ids are recomputed from the mask, so the logits are the same as in the padded batch
(tested). Batches without an attention mask (padding-free) take the full-logits path.

Rows may carry `label_weights` (one weight per token: rating-weighted SFT, `sid_sequence_rows`); the collator
pads them beside the labels and each token's cross-entropy is multiplied by its weight before the sum, so a
target of weight 2 counts as two and the normalisation by the label count stays TRL's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from rlrec.tasks.sid_sequences import IGNORE_INDEX
from rlrec.training.sft_trainer import RecSFTTrainer


def left_align(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
    """Right-padded rows moved to the right end (left padding), with position ids counted from each row's start."""
    width = input_ids.shape[1]
    pads = width - attention_mask.sum(dim=1, keepdim=True)
    order = (torch.arange(width, device=input_ids.device).unsqueeze(0) - pads) % width
    aligned = [t.gather(1, order) for t in (input_ids, attention_mask, labels)]
    position_ids = (aligned[1].cumsum(dim=1) - 1).clamp_min(0)
    return (*aligned, position_ids)


LABEL_WEIGHTS = "label_weights"


class LabelWeightCollator:
    """TRL's collator, with each row's `label_weights` padded (right, with 0) to the batch's label width; a row
    without them (a chat row beside weighted SID rows) weighs each of its labels 1."""

    def __init__(self, base: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.base = base

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        weights = [example.get(LABEL_WEIGHTS) for example in examples]
        batch = self.base([{k: v for k, v in example.items() if k != LABEL_WEIGHTS} for example in examples])
        if all(w is None for w in weights):
            return batch
        labels = batch["labels"]
        padded = torch.zeros(labels.shape, dtype=torch.float32)
        for row, (example, w) in enumerate(zip(examples, weights, strict=True)):
            if w is None:
                w = [0.0 if label == IGNORE_INDEX else 1.0 for label in example.get("labels", example["input_ids"])]
            w = torch.as_tensor(w, dtype=torch.float32)[: labels.shape[1]]
            padded[row, : len(w)] = w
        batch[LABEL_WEIGHTS] = padded
        return batch


class PlainLossSFTTrainer(RecSFTTrainer):
    """An `SFTTrainer` for small-vocabulary models: logits and cross-entropy at the labelled positions only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_collator = LabelWeightCollator(self.data_collator)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and LABEL_WEIGHTS not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, LABEL_WEIGHTS]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        weights = inputs.get(LABEL_WEIGHTS)
        kwargs = {"use_cache": False}
        if "attention_mask" in inputs:
            if weights is not None:
                weights = left_align(weights, inputs["attention_mask"], labels)[0]
            input_ids, attention_mask, labels, position_ids = left_align(inputs["input_ids"],
                                                                         inputs["attention_mask"], labels)
            labelled = (labels != IGNORE_INDEX).any(dim=0).nonzero()
            first = int(labelled[0]) if len(labelled) else labels.shape[1] - 1
            keep = min(labels.shape[1], labels.shape[1] - first + 1)  # logits at position p predict token p + 1
            kwargs.update(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          logits_to_keep=keep)
        else:
            kwargs.update({k: v for k, v in inputs.items() if k not in ("labels", LABEL_WEIGHTS)})
            keep = labels.shape[1]
        outputs = model(**kwargs)
        logits = outputs.logits[:, :-1].float()
        targets = labels[:, labels.shape[1] - keep + 1:]
        token_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                     ignore_index=IGNORE_INDEX, reduction="none",
                                     label_smoothing=self.args.label_smoothing_factor)
        if weights is not None:
            token_loss = token_loss * weights[:, labels.shape[1] - keep + 1:].reshape(-1).to(token_loss.device)
        loss = token_loss.sum()
        count = (targets != IGNORE_INDEX).sum() if num_items_in_batch is None else num_items_in_batch
        loss = loss / torch.as_tensor(count, device=loss.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss
