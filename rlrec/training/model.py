"""The SFT model: base LLM + SID vocabulary + SA-Init, its LoRA config, and the model saved at the end."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

logger = logging.getLogger(__name__)


def lora_config(model_args: Any):
    """TRL's LoRA config from `model_args` (None without `use_peft`); see `train_sid_rows` for the SID rows."""
    from trl import get_peft_config

    return get_peft_config(model_args)


def train_sid_rows(model: torch.nn.Module, sid_token_ids: Sequence[int]) -> list[torch.nn.Parameter]:
    """Make the SID rows of the (frozen) embedding matrices trainable, and only those rows.

    LoRA alone would leave the new SID rows at their initial values: they are whole new rows, not a
    low-rank update. peft's `trainable_token_indices` would train just those rows, but TRL 1.16's SFT
    loss reads `lm_head.weight` directly (its fused, chunked LM head), past peft's token wrapper, so
    the trained rows would never reach the output side. Instead the embedding parameter itself is
    unfrozen and a gradient hook zeroes every row but the SID ones: with zero gradients (and no weight
    decay) Adam leaves the other rows exactly as they were, and every code path sees one plain weight.
    Returns the parameters it unfroze (one when input and output embeddings are tied).
    """
    ids = torch.as_tensor(sorted({int(i) for i in sid_token_ids}), dtype=torch.long)
    params: list[torch.nn.Parameter] = []
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        weight = getattr(module, "weight", None)
        if weight is None or any(weight is p for p in params):
            continue
        keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype)
        keep[ids] = 1
        weight.requires_grad_(True)
        weight.register_hook(lambda grad, keep=keep: grad * keep.to(grad.device, grad.dtype))
        params.append(weight)
    return params


def gather_zero3_weights_on_save(trainer: Any) -> bool:
    """Under DeepSpeed ZeRO-3, have the engine gather full 16-bit weights when the model is saved.

    Without `stage3_gather_16bit_weights_on_model_save` (accelerate's `zero3_save_16bit_model`, off unless a
    config sets it, as `accelerate launch --zero_stage 3` does) `Trainer.save_model` writes only a
    DeepSpeed checkpoint, and the output folder would hold no usable weights. Call before `train()`: the
    engine reads the setting when it is built. Returns True when it changed the setting.
    """
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if plugin is None or plugin.zero_stage != 3:
        return False
    zero = plugin.deepspeed_config.setdefault("zero_optimization", {})
    if zero.get("stage3_gather_16bit_weights_on_model_save") is True:
        return False
    zero["stage3_gather_16bit_weights_on_model_save"] = True
    logger.info("ZeRO-3: gathering full weights on save (stage3_gather_16bit_weights_on_model_save=true)")
    return True


def save_final_model(trainer: Any, output_dir: Path, merge_lora: bool, rebuild: Callable[[], PreTrainedModel]) -> str:
    """Save the trained model into `output_dir` as a plain model folder; return "full", "merged" or "adapter".

    A full fine-tune goes through `trainer.save_model`, which gathers ZeRO-3 shards. A LoRA model is
    merged on the main process from its gathered state dict (`accelerator.get_state_dict`, a
    collective that every rank joins): `rebuild()` makes a fresh base with the SID rows added, which is
    wrapped with the same LoRA config, loaded with the trained weights (the SID rows included, which an
    adapter file would miss) and merged, so the merge never touches the sharded training copy.
    """
    from peft import PeftModel, get_peft_model

    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    if not isinstance(unwrapped, PeftModel):
        trainer.save_model(str(output_dir))
        return "full"
    if not merge_lora:
        trainer.save_model(str(output_dir))
        return "adapter"
    state = trainer.accelerator.get_state_dict(trainer.model)
    if trainer.accelerator.is_main_process:
        peft_model = get_peft_model(rebuild(), unwrapped.peft_config["default"])
        missing, unexpected = peft_model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"merging LoRA: missing keys {missing[:3]}, unexpected keys {unexpected[:3]}")
        peft_model.merge_and_unload().save_pretrained(output_dir)
    trainer.accelerator.wait_for_everyone()
    return "merged"


def release_training(trainer: Any) -> bool:
    """End the distributed part of a run: a last barrier, the accelerator's references freed, and the process
    group torn down on every rank. Returns whether this is the main process.

    What a stage does afterwards (reloading the saved model for the end-of-training evaluation, training a
    SASRec baseline) runs on the main process alone and uses no collective, so the other ranks exit instead of
    waiting in a barrier that an hour of evaluation would time out (NCCL's watchdog), and the main process
    does not hold the training copy of the model beside the reloaded one: the caller drops its own references
    to the trainer after this call and then calls `collect_memory`.
    """
    import torch.distributed as dist

    is_main = trainer.accelerator.is_main_process
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.free_memory()
    trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return is_main


def collect_memory() -> None:
    """Return what the dropped training objects held (host and GPU) before the evaluation loads its model."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

