"""A compact SID model trained from scratch (TIGER-style): a small causal LM over the SID vocabulary only.

A pretrained LLM reads histories as chat prompts and needs GPU hours to learn a catalog. A causal LM
of well under a million parameters whose vocabulary is the SID tokens and four specials learns the
same next-item task on a laptop CPU in minutes (the TIGER row of the papers' tables, and the regime
in which SFT, GRPO and reward designs can be judged without a GPU).

Its prompt is the history's SID tokens after `<bos>`, with no chat template and no words:
`<bos><a_1><b_7><c_3><a_9>...`, and the model continues with the next item's SID. Everything that
asks a model for the next item renders the prompt through `rlrec.tasks.prompts.next_item_prompter`,
which recognises this tokenizer (`is_sid_tokenizer`), so a scratch model folder is an ordinary model
folder that `grpo`, `evaluate`, `export`, `recommend` and `cache` read unchanged.

`model_name_or_path: scratch` in an SFT recipe selects it and `ScratchModelArguments` sizes it; a saved
scratch model folder as `model_name_or_path` continues its training on the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rlrec.models.sid_vocab import BOS, EOS, PAD, SID_TOKEN_RE, SPECIAL_TOKENS, UNK, is_sid_tokenizer
from rlrec.utils.errors import ConfigError

SCRATCH = "scratch"  # the `model_name_or_path` that selects a from-scratch model
_PIECE_RE = r"<[^<>]+>"


def is_scratch(model_name_or_path: str | None) -> bool:
    """True for a new from-scratch model (`scratch`) or a saved one (a folder whose tokenizer is SID-only),
    whose training continues on the same SID-only examples."""
    if model_name_or_path == SCRATCH:
        return True
    if not model_name_or_path or not Path(model_name_or_path, "tokenizer.json").is_file():
        return False
    from rlrec.models.loading import load_tokenizer

    return is_sid_tokenizer(load_tokenizer(model_name_or_path))


@dataclass
class ScratchModelArguments:
    """Size of the from-scratch SID model (`model_name_or_path: scratch`); ignored for pretrained models.

    A Llama-architecture decoder (RoPE, RMSNorm, SwiGLU) with tied input/output embeddings. The defaults
    (hidden 128, 2 layers, 4 heads: 0.62M parameters with 768 SID tokens) train at tens of thousands of
    tokens per second on two CPU cores; wider or deeper models learn more per step but get through fewer
    epochs in CPU minutes.
    """

    scratch_hidden_size: int = field(default=128, metadata={"help": "Width of the from-scratch model."})
    scratch_num_layers: int = field(default=2, metadata={"help": "Decoder layers of the from-scratch model."})
    scratch_num_heads: int = field(default=4, metadata={"help": "Attention heads (must divide the width)."})
    scratch_intermediate_size: int | None = field(
        default=None, metadata={"help": "MLP width; None: 4 x scratch_hidden_size."}
    )
    scratch_attention_dropout: float = field(
        default=0.0, metadata={"help": "Dropout on the attention weights (regularises small datasets)."}
    )
    scratch_max_positions: int = field(
        default=512, metadata={"help": "Longest prompt + completion in tokens (history items x SID levels + 1)."}
    )

    def __post_init__(self) -> None:
        for name in ("scratch_hidden_size", "scratch_num_layers", "scratch_num_heads", "scratch_max_positions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be a positive integer, got {getattr(self, name)}")
        if self.scratch_hidden_size % self.scratch_num_heads:
            raise ConfigError(
                f"`scratch_num_heads`={self.scratch_num_heads} must divide `scratch_hidden_size`="
                f"{self.scratch_hidden_size}"
            )
        if self.scratch_intermediate_size is not None and self.scratch_intermediate_size < 1:
            raise ConfigError(f"`scratch_intermediate_size` must be positive, got {self.scratch_intermediate_size}")
        if not 0.0 <= self.scratch_attention_dropout < 1.0:
            raise ConfigError(f"`scratch_attention_dropout` must be in [0, 1), got {self.scratch_attention_dropout}")


def sid_tokenizer(sid_tokens: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is the four specials, then `sid_tokens` in order."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    bad = [token for token in sid_tokens if not SID_TOKEN_RE.match(token)]
    if bad:
        raise ConfigError(f"not SID tokens (expected the form <a_12>): {bad[:3]}")
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *sid_tokens])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECE_RE), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=UNK)


def sid_prompt(history_sids: list[str]) -> str:
    """The prompt of a scratch model: `<bos>` then the history's SIDs, oldest first."""
    return BOS + "".join(history_sids)


def build_scratch_model(tokenizer: PreTrainedTokenizerFast, args: ScratchModelArguments, seed: int = 0,
                        attn_implementation: str | None = None) -> LlamaForCausalLM:
    """A randomly initialised Llama causal LM over `tokenizer`'s vocabulary (seeded, tied embeddings).

    `attn_implementation` is the recipe's (ModelConfig's): a model built from a config does not go through
    `from_pretrained`, which is where transformers reads it, and would otherwise run SDPA whatever the recipe
    says (on these ~35-token rows SDPA's backward costs about twice eager's on a CPU)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.scratch_hidden_size,
        intermediate_size=args.scratch_intermediate_size or 4 * args.scratch_hidden_size,
        num_hidden_layers=args.scratch_num_layers,
        num_attention_heads=args.scratch_num_heads,
        num_key_value_heads=args.scratch_num_heads,
        max_position_embeddings=args.scratch_max_positions,
        attention_dropout=args.scratch_attention_dropout,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def scratch_report(model: torch.nn.Module) -> dict[str, Any]:
    """What the manifest records of the model's shape (in place of the SA-Init report)."""
    config = model.config
    return {"mode": "scratch", "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "hidden_size": config.hidden_size, "num_layers": config.num_hidden_layers,
            "num_heads": config.num_attention_heads, "attn_implementation": config._attn_implementation}
