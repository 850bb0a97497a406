"""Assemble a SETRec model from a causal LM, its tokenizer and the item feature tables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from rlrec.setrec.config import SETRecModelConfig
from rlrec.setrec.model import SETRecModel


def backbone_of(lm: nn.Module) -> nn.Module:
    """The transformer under a causal LM's head (`Qwen2ForCausalLM.model`), or `lm` itself when headless."""
    inner = getattr(lm, getattr(lm, "base_model_prefix", "model"), None)
    return inner if isinstance(inner, nn.Module) else lm


def prompt_token_ids(tokenizer, prompt: str) -> list[int]:
    """Token ids of the text prefix (no special tokens added: the prefix is plain text)."""
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else []


def build_setrec(lm: nn.Module, tokenizer, item_ids: Sequence[str], cf_embeddings: np.ndarray | torch.Tensor,
                 warm: np.ndarray | Sequence[bool], text_embeddings: np.ndarray | torch.Tensor,
                 config: SETRecModelConfig) -> SETRecModel:
    """A SETRec model over `lm`'s backbone (its language-model head is dropped), on `lm`'s device."""
    backbone = backbone_of(lm)
    model = SETRecModel(backbone, item_ids, cf_embeddings, warm, text_embeddings, config,
                        prompt_token_ids(tokenizer, config.prompt))
    device = backbone.get_input_embeddings().weight.device
    return model.to(device)
