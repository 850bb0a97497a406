"""Keep the first N decoder layers of a pretrained causal LM: the CPU stand-in for the LLM path.

A full-depth LLM trains too slowly on a CPU to show what SA-Init and TS-Align do to a ranking, but what
those methods rely on sits at the bottom of the model: the pretrained token embeddings (SA-Init seeds the
SID rows from them) and the lower layers that read them. Cutting the stack keeps both and divides the cost
of a step by about depth / N (SmolLM2-135M: 30 layers; its first 6 train ~4.5x faster per token).

The cut is made on the loaded model and written into its config (`num_hidden_layers`, and `layer_types`
where the architecture has one), so the folder a stage saves is an ordinary model of N layers that
`from_pretrained` loads as it is.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from rlrec.utils.errors import ConfigError


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of decoder blocks (Llama/Qwen/Mistral `model.layers`, GPT-2 style `transformer.h`)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    for owner in (decoder, getattr(model, "model", None), getattr(model, "transformer", None)):
        for name in ("layers", "h"):
            layers = getattr(owner, name, None)
            if isinstance(layers, nn.ModuleList):
                return layers
    raise ConfigError(f"truncate_layers: cannot find the decoder layers of {type(model).__name__}; expected a "
                      "`model.layers` or `transformer.h` ModuleList")


def truncate_layers(model: nn.Module, keep: int) -> dict[str, Any]:
    """Keep the first `keep` decoder layers of `model` (in place); return `{"kept_layers", "of_layers"}`.

    The config follows, so `save_pretrained` writes a model of `keep` layers; the cache and attention
    masks of transformers size themselves from the config.
    """
    layers = decoder_layers(model)
    total = len(layers)
    if not 1 <= keep <= total:
        raise ConfigError(f"truncate_layers={keep}; expected an integer in [1, {total}] ({type(model).__name__} "
                          f"has {total} decoder layers)")
    if keep < total:
        del layers[keep:]
        config = model.config
        config.num_hidden_layers = keep
        if isinstance(getattr(config, "layer_types", None), list):
            config.layer_types = config.layer_types[:keep]
        if getattr(config, "n_layer", None) is not None:  # GPT-2 style configs
            config.n_layer = keep
    return {"kept_layers": keep, "of_layers": total}
