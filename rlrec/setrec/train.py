"""The SETRec training loop: a plain PyTorch loop under `accelerate.Accelerator` (one process or DDP).

Each step takes a batch of train examples (history, target), recomputes every item's tokens (the corpus
is small: catalog × (N+1) × hidden), runs one forward pass and minimises the per-dimension softmax losses
plus α·reconstruction (`SETRecModel.forward`). The LLM is fully fine-tuned or gets LoRA adapters
(`apply_lora`); the SETRec parts (projections, autoencoder, queries) always train, at their own learning
rate, since they start from scratch while the LLM starts pretrained. The word-embedding table is frozen:
only the few prompt tokens use it, and leaving it out spares the optimizer state of the largest matrix.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch

from rlrec.data.schema import Example
from rlrec.setrec.config import SETRecTrainConfig
from rlrec.setrec.model import SETRecModel
from rlrec.utils.errors import DataError

logger = logging.getLogger(__name__)


def apply_lora(model: SETRecModel, config: SETRecTrainConfig) -> None:
    """Wrap the backbone with peft LoRA adapters (only they train within the LLM)."""
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = config.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets)
    model.backbone = get_peft_model(model.backbone, lora)


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


def _param_groups(model: SETRecModel, config: SETRecTrainConfig) -> list[dict[str, Any]]:
    model.backbone.get_input_embeddings().weight.requires_grad_(False)
    llm = [p for p in model.backbone.parameters() if p.requires_grad]
    llm_ids = {id(p) for p in model.backbone.parameters()}
    heads = [p for p in model.parameters() if p.requires_grad and id(p) not in llm_ids]
    return [{"params": llm, "lr": config.learning_rate}, {"params": heads, "lr": config.head_learning_rate}]


def _schedule(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the base rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_setrec(model: SETRecModel, examples: Sequence[Example], config: SETRecTrainConfig,
                 accelerator: Any | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Train `model` in place on `examples`; return `{"losses": [...], "ae_pretrain": [...], ...}`.

    With LoRA, call `apply_lora` first. `accelerator` defaults to a fresh `Accelerator(cpu=config.use_cpu)`;
    under several processes each gets its share of every batch and the gradients are averaged (DDP).
    The returned model is the unwrapped one (the caller's object), in eval mode.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    accelerator = accelerator or Accelerator(cpu=config.use_cpu)
    history, targets = example_tensors(model, examples)
    ae_losses = model.semantic.pretrain(config.ae_pretrain_steps) if config.ae_pretrain_steps else []
    optimizer = torch.optim.AdamW(_param_groups(model, config), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _schedule(step, config.warmup_steps, config.max_steps))
    dataset = torch.utils.data.TensorDataset(history, targets)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.per_device_train_batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(config.seed), drop_last=False)
    wrapped, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    wrapped.train()
    losses: list[dict[str, float]] = []
    step = 0
    window: list[dict[str, float]] = []
    with tqdm(total=config.max_steps, desc="setrec", unit="step", disable=not (show_progress and
              accelerator.is_local_main_process), mininterval=1.0) as bar:
        while step < config.max_steps:
            for batch_history, batch_targets in loader:
                out = wrapped(batch_history, batch_targets)
                accelerator.backward(out["loss"])
                if config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                record = {k: float(v.detach()) for k, v in out.items()}
                losses.append(record)
                window.append(record)
                bar.update(1)
                if step % config.logging_steps == 0 or step == config.max_steps:
                    means = {k: sum(r[k] for r in window) / len(window) for k in record}
                    bar.set_postfix(loss=f"{means['loss']:.3f}")
                    logger.info("setrec step %d/%d: loss %.4f (rec %.4f, recon %.4f)", step, config.max_steps,
                                means["loss"], means["rec"], means["recon"])
                    window = []
                if step >= config.max_steps:
                    break
    accelerator.wait_for_everyone()
    model.eval()
    return {"losses": losses, "ae_pretrain": ae_losses, "steps": step, "num_processes": accelerator.num_processes,
            "train_examples": len(examples)}
