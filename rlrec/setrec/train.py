"""SETRec training on `transformers.Trainer`: the loss is the model's, everything else is the Trainer's.

Each step takes a batch of train examples (history, target), recomputes every item's tokens (the corpus
is small: catalog × (N+1) × hidden), runs one forward pass and minimises the per-dimension softmax losses
plus α·reconstruction (`SETRecModel.forward`). Running it under the Trainer gives the stage what the other
stages have: DDP and DeepSpeed launches, gradient accumulation, bf16 autocast, loggers, checkpoints and
`--resume_from_checkpoint` to the same weights. Two things are SETRec's own: the LLM (or its LoRA
adapters, `apply_lora`) and the SETRec parts (projections, autoencoder, queries) train at different
learning rates, since the parts start from scratch while the LLM starts pretrained; and the word-embedding
table is frozen: only the few prompt tokens use it, and leaving it out spares the optimizer state of the
largest matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import Trainer

from rlrec.data.schema import Example
from rlrec.setrec.config import SETRecTrainConfig
from rlrec.setrec.model import SETRecModel
from rlrec.training.model import release_training
from rlrec.utils.errors import DataError

logger = logging.getLogger(__name__)


def apply_lora(model: SETRecModel, lora_config: Any) -> None:
    """Wrap the backbone with peft LoRA adapters (only they train within the LLM).

    `lora_config` is a peft `LoraConfig`, e.g. TRL's `get_peft_config(ModelConfig(use_peft=True, ...))`.
    """
    import copy

    from peft import get_peft_model

    lora_config = copy.copy(lora_config)
    lora_config.task_type = None  # the backbone has no LM head: a plain PeftModel, not a causal-LM wrapper
    model.backbone = get_peft_model(model.backbone, lora_config)


def merge_lora(model: SETRecModel) -> None:
    """Fold LoRA adapters back into the backbone weights (a no-op without peft), e.g. before saving."""
    if hasattr(model.backbone, "merge_and_unload"):
        model.backbone = model.backbone.merge_and_unload()


def example_tensors(model: SETRecModel, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(history_index, targets)` tensors of a split, histories cut to the model's `max_history`."""
    if not examples:
        raise DataError("setrec: no train examples")
    history = model.history_index([ex.history for ex in examples])
    try:
        targets = torch.tensor([model.index[ex.target] for ex in examples], dtype=torch.long)
    except KeyError as err:
        raise DataError(f"setrec: train target {err.args[0]!r} is not in the model's catalog") from err
    return history, targets


class ExampleDataset(torch.utils.data.Dataset):
    """Rows `{"history_index", "targets"}`: the names of `SETRecModel.forward`'s arguments."""

    def __init__(self, history: torch.Tensor, targets: torch.Tensor) -> None:
        self.history, self.targets = history, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"history_index": self.history[i], "targets": self.targets[i]}


class SETRecTrainer(Trainer):
    """`Trainer` with SETRec's two learning rates and its loss parts (`rec`, `recon`) in the logs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parts: dict[str, list[float]] = {"rec": [], "recon": []}

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            setrec = self.model
            setrec.backbone.get_input_embeddings().weight.requires_grad_(False)
            llm_ids = {id(p) for p in setrec.backbone.parameters()}
            llm = [p for p in setrec.backbone.parameters() if p.requires_grad]
            parts = [p for p in setrec.parameters() if p.requires_grad and id(p) not in llm_ids]
            args = self.args
            self.optimizer = torch.optim.AdamW(
                [{"params": llm, "lr": args.learning_rate}, {"params": parts, "lr": args.head_learning_rate}],
                betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon, weight_decay=args.weight_decay)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(inputs["history_index"], inputs["targets"], warm_only=self.args.train_catalog == "warm")
        for name in self._parts:
            self._parts[name].append(float(out[name]))
        return (out["loss"], out) if return_outputs else out["loss"]

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and self._parts["rec"]:
            for name, values in self._parts.items():
                logs[name] = round(sum(values) / len(values), 4)
                values.clear()
        super().log(logs, *args, **kwargs)


def train_setrec(model: SETRecModel, examples: Sequence[Example], config: SETRecTrainConfig,
                 resume_from_checkpoint: str | None = None) -> dict[str, Any]:
    """Train `model` in place on `examples`; return the summary (`losses`, `ae_pretrain`, `steps`, ...).

    With LoRA, call `apply_lora` first. The autoencoder is pretrained on reconstruction first (also on
    resume: it is deterministic, and the checkpoint's weights then replace it). The returned model is the
    caller's object, in eval mode.
    """
    history, targets = example_tensors(model, examples)
    ae_losses = model.semantic.pretrain(config.ae_pretrain_steps) if config.ae_pretrain_steps else []
    trainer = SETRecTrainer(model=model, args=config, train_dataset=ExampleDataset(history, targets))
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    model.eval()
    losses = [{key: entry[key] for key in ("loss", "rec", "recon") if key in entry}
              for entry in trainer.state.log_history if "loss" in entry]
    summary = {"losses": losses, "ae_pretrain": ae_losses, "steps": trainer.state.global_step,
               "num_processes": trainer.accelerator.num_processes, "train_examples": len(examples)}
    # Saving and evaluating are the main process's alone: the other ranks leave here (see release_training).
    summary["is_main_process"] = release_training(trainer)
    return summary
