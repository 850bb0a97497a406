"""Load a trained checkpoint (a full model folder or a LoRA adapter folder) for evaluation or inference.

The SFT and GRPO stages save merged full models: `config.json`, weights and the tokenizer that holds
the SID tokens. A LoRA adapter folder (`adapter_config.json` + `adapter_model.safetensors`) is accepted
too, because it is what a PEFT run leaves behind when it stops early: the base model named in
`base_model_name_or_path` is loaded, its embeddings grown to the rows the adapter was trained with,
the adapter applied and merged, so the caller gets a plain model either way.

The tokenizer always comes from the checkpoint folder, never from the base model: only the saved one
knows the SID tokens and their ids.

An adapter can only be rebuilt if it carries the embedding rows of the tokens added after the base
model was saved: peft saves the whole embedding matrix when it was resized (`save_embedding_layers`
"auto") or listed in `modules_to_save`, also under `trainable_token_indices` (the base rows the token
deltas apply to). An adapter saved without them was trained on rows that existed only in memory
(random or SA-Init), so loading it on a fresh resize would silently give another model: that is
refused with a clear error.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlrec.models.loading import (
    _as_dtype,
    check_model_dir,
    has_tokenizer_files,
    load_model_files,
    load_tokenizer,
    resolve_model_dir,
)
from rlrec.utils.devices import resolve_device
from rlrec.utils.errors import ConfigError
from rlrec.utils.io import read_json

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
# peft prefixes every saved key of a causal-LM adapter with this (the PeftModel -> base model path).
_PEFT_PREFIX = "base_model.model."


def is_adapter_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def embedding_rows(model: torch.nn.Module) -> int:
    """Rows of the input embedding, also when ZeRO-3 has partitioned the weight (its local shape is then 0)."""
    weight = model.get_input_embeddings().weight
    full_shape = getattr(weight, "ds_shape", None)  # DeepSpeed keeps the unpartitioned shape here
    return int(full_shape[0]) if full_shape is not None else int(weight.shape[0])


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype = "auto",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`(model, tokenizer)` of a saved checkpoint, on `device`, in eval mode.

    `path` is a full model folder (config, weights, tokenizer) or a LoRA adapter folder with its
    tokenizer (the adapter is merged into its base model). `dtype` is `"auto"` (as saved), a name such
    as `"bfloat16"`, or a `torch.dtype`. Raises ConfigError naming the folder and what it lacks.
    """
    folder = Path(path).expanduser()
    torch_dtype = _as_dtype(dtype)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: checkpoint folder not found")
    if is_adapter_dir(folder):
        model, tokenizer = _load_adapter(folder, torch_dtype)
    else:
        check_model_dir(folder)
        tokenizer = load_tokenizer(folder)
        model = load_model_files(folder, dtype=torch_dtype)
    rows = embedding_rows(model)
    if rows < len(tokenizer):
        raise ConfigError(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens but the model only {rows} embedding rows; "
            "save the model after growing its embeddings (add_sid_tokens) together with this tokenizer"
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(resolve_device(device))
    model.eval()
    return model, tokenizer


def _load_adapter(folder: Path, torch_dtype: str | torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from peft import PeftModel

    weights = next((folder / name for name in ADAPTER_WEIGHTS if (folder / name).is_file()), None)
    if weights is None:
        raise ConfigError(f"{folder}: LoRA adapter folder without weights ({' or '.join(ADAPTER_WEIGHTS)})")
    if not has_tokenizer_files(folder):
        raise ConfigError(
            f"{folder}: LoRA adapter folder without a tokenizer; save the tokenizer that holds the SID tokens "
            "next to the adapter (tokenizer.save_pretrained)"
        )
    adapter_config = read_json(folder / ADAPTER_CONFIG)
    base = adapter_config.get("base_model_name_or_path") if isinstance(adapter_config, dict) else None
    if not base:
        raise ConfigError(
            f"{folder / ADAPTER_CONFIG}: field 'base_model_name_or_path' is empty; expected the local base model "
            "folder the adapter was trained on"
        )
    try:
        base_dir = resolve_model_dir(base)
    except ConfigError as err:
        raise ConfigError(f"{folder / ADAPTER_CONFIG}: base_model_name_or_path: {err}") from err
    tokenizer = load_tokenizer(folder)
    model = load_model_files(base_dir, dtype=torch_dtype)

    shapes = _saved_shapes(weights)
    names = {module: name for name, module in model.named_modules()}
    in_name = names[model.get_input_embeddings()]
    out_module = model.get_output_embeddings()
    tied = out_module is None or out_module.weight is model.get_input_embeddings().weight
    saved_in = _saved_rows(shapes, in_name)
    saved_out = None if tied else _saved_rows(shapes, names[out_module])
    rows = model.get_input_embeddings().weight.shape[0]
    target = saved_in if saved_in is not None else max(rows, len(tokenizer))
    if target > rows and (saved_in is None or (not tied and saved_out is None)):
        lacking = "input embedding" if saved_in is None else "output embedding (lm_head)"
        raise ConfigError(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens but the base model {base_dir} only {rows} "
            f"embedding rows, and the adapter does not carry the trained {lacking} rows of the new tokens "
            "(saved with save_embedding_layers=False, or without modules_to_save): those rows existed only "
            "during training; evaluate the merged model the SFT stage saves instead"
        )
    if target != rows:
        model.resize_token_embeddings(target, mean_resizing=False)
    try:
        model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as err:
        raise ConfigError(f"{folder}: the adapter does not fit its base model {base_dir}: {err}") from err
    logger.info("loaded LoRA adapter %s on %s and merged it", folder, base_dir)
    return model, tokenizer


def _saved_rows(shapes: dict[str, tuple[int, ...]], module_name: str) -> int | None:
    """Rows of the full embedding matrix of `module_name` saved in the adapter, or None when it is absent.

    peft writes it as `<module>.weight` (`modules_to_save`, or a resized embedding) or, when the module
    is wrapped (`trainable_token_indices`), as `<module>.<wrapper>.base_layer.weight`; LoRA factors and
    token deltas are not full matrices.
    """
    prefix = f"{_PEFT_PREFIX}{module_name}."
    for key, shape in shapes.items():
        if key.startswith(prefix) and key.endswith("weight") and "lora_" not in key and len(shape) == 2:
            rest = key[len(prefix):]
            if rest == "weight" or rest.endswith("base_layer.weight") or "modules_to_save" in rest:
                return shape[0]
    return None


def _saved_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors in an adapter weights file, read without loading the tensors where possible."""
    if weights.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return {key: tuple(value.shape) for key, value in state.items()}
