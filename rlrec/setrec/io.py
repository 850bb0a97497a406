"""Save and load a SETRec model as one self-describing folder.

    folder/
      llm/            the backbone (LoRA merged), `save_pretrained` format, with the tokenizer
      setrec.pt       the SETRec parts: projections, autoencoder, queries, frozen CF/text tables, prompt ids
      setrec.json     item ids, model config, table shapes
      manifest.json   written last: a folder without it is an unfinished run

The folder is written to a temporary sibling and renamed into place (`atomic_output_dir`); the trainer's
`checkpoint-N` folders already there move into it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rlrec
from rlrec.ranking.spec import RankingSpec
from rlrec.setrec.config import SETRecModelConfig
from rlrec.setrec.model import SETRecModel
from rlrec.setrec.train import merge_lora
from rlrec.utils.errors import DataError
from rlrec.utils.io import atomic_output_dir, read_json, write_json
from rlrec.utils.output_dirs import MANIFEST, checkpoints

LLM_DIR = "llm"
WEIGHTS_FILE = "setrec.pt"
META_FILE = "setrec.json"


def save_setrec(model: SETRecModel, folder: str | os.PathLike, tokenizer: Any | None = None,
                manifest: dict[str, Any] | None = None) -> Path:
    """Write `model` (LoRA merged first) to `folder` atomically; `manifest` extra fields go to manifest.json."""
    merge_lora(model)
    with atomic_output_dir(folder) as tmp:
        model.backbone.save_pretrained(tmp / LLM_DIR)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp / LLM_DIR)
        heads = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("backbone.")}
        torch.save(heads, tmp / WEIGHTS_FILE)
        write_json(tmp / META_FILE, {
            "item_ids": model.item_ids,
            "config": dataclasses.asdict(model.config),
            "cf_dim": int(model.cf.embeddings.shape[1]),
            "text_dim": int(model.semantic.texts.shape[1]),
            "num_prompt_tokens": len(model.prompt_ids),
        })
        RankingSpec(decoding="setrec_grounding", max_history=model.config.max_history).save(tmp)
        for checkpoint in checkpoints(folder):  # the trainer's, kept as `rlrec sft` keeps them
            os.replace(checkpoint, tmp / checkpoint.name)
        write_json(tmp / MANIFEST, {"stage": "setrec", "rlrec_version": rlrec.__version__, **(manifest or {})})
    return Path(folder)


def load_setrec(folder: str | os.PathLike, device: str | torch.device = "cpu",
                dtype: str | torch.dtype = "auto") -> SETRecModel:
    """Read a folder written by `save_setrec`, in eval mode on `device` (`auto`: CUDA when available)."""
    from transformers import AutoModel

    from rlrec.utils.devices import resolve_device

    device = resolve_device(device)

    folder = Path(folder)
    for name in (MANIFEST, META_FILE, WEIGHTS_FILE, LLM_DIR):
        if not (folder / name).exists():
            raise DataError(f"{folder}: not a saved SETRec model (missing {name})")
    meta = read_json(folder / META_FILE)
    try:
        config = SETRecModelConfig(**meta["config"])
        item_ids = list(meta["item_ids"])
        n = len(item_ids)
        cf = np.zeros((n, int(meta["cf_dim"])), np.float32)
        text = np.zeros((n, int(meta["text_dim"])), np.float32)
        prompt = [0] * int(meta["num_prompt_tokens"])
    except (KeyError, TypeError) as err:
        raise DataError(f"{folder / META_FILE}: missing or malformed field ({err})") from err
    backbone = AutoModel.from_pretrained(folder / LLM_DIR, dtype=dtype)
    model = SETRecModel(backbone, item_ids, cf, np.ones(n, bool), text, config, prompt)
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("backbone.")]
    if missing or unexpected:
        raise DataError(f"{folder / WEIGHTS_FILE}: weights do not match {META_FILE} "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval()
