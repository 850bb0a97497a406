"""`PromptCache`: prefill each prompt once, then step many continuations of it over one KV cache.

`generate(num_beams=B)` copies every prompt B times *before* the prefill, so it pays B prefills
per user; for a 100-token prompt and a 3-token SID that is almost all of the work. Here the
prefill runs once on the left-padded batch of prompts, and each later step feeds the K live
continuations (beams or samples) of every prompt. Two ways to let them share the prompt:

- "shared" (tree attention): the cache keeps one row per prompt. A step appends the K new tokens
  of a prompt side by side, as one K-token block, with a 4-D attention mask in which each new token
  sees the prompt's real tokens, its own ancestors in the earlier blocks and itself. Beam
  reordering only rewrites that mask, so the prompt's keys/values are never copied per beam
  (K times less cache memory and memory traffic). Needs an attention that accepts a custom mask
  (sdpa, eager) and no sliding-window layers.
- "copied": the cache rows are gathered to one row per continuation (`reorder_cache`) before each
  one-token step, as `generate` does after its prefill. Works with any attention implementation.

Left padding is handled the way `generate` does it: position ids count only real tokens
(`cumsum(mask) - 1`) and padded positions are masked out of every attention. All continuations of
a prompt are at the same depth, so they share a position id.

Prompts built from one template start with the same tokens (the chat template's system turn, the
instruction before the history): often a third of a prompt. The prefill runs that common prefix once
(batch 1) and every row's own tokens after it over the prefix's keys and values, so the cache holds
`[prefix][padding][row tokens]` with unchanged position ids — the same attention, computed once
(`share_prefix`, on by default for the attentions that take any 2-D mask: sdpa and eager).
"""

from __future__ import annotations

import inspect
from dataclasses import fields, is_dataclass
from typing import Any, Literal

import torch
from transformers import DynamicCache

CacheStrategy = Literal["auto", "shared", "copied"]
_MASKABLE_ATTENTION = ("sdpa", "eager")
MIN_SHARED_PREFIX = 8  # shorter common prefixes are not worth the extra (batch-1) pass


def common_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """Tokens every left-padded row starts with, leaving each row at least one token of its own."""
    lengths = attention_mask.sum(dim=1)
    shortest = int(lengths.min())
    if shortest < 2:
        return 0
    width = input_ids.shape[1]
    # Row b's real tokens start at column width - lengths[b]; align the rows on their first real token.
    columns = (width - lengths).unsqueeze(1) + torch.arange(shortest - 1, device=input_ids.device)
    aligned = input_ids.gather(1, columns)
    same = (aligned == aligned[:1]).all(dim=0)
    return int(same.long().cumprod(dim=0).sum())


def cache_keyword(model: torch.nn.Module) -> str:
    """The keyword a model's forward takes its KV cache by, read once from its signature.

    transformers renamed `past_key_values` to `cache` (5.2x; the old name warns and goes in 5.40), and
    `transformers>=5.17,<6` admits both sides of the rename, so the name is asked of the model, not assumed.
    A PEFT wrapper is asked of the model it wraps (its own forward takes `**kwargs`); any other forward that
    takes only `**kwargs` gets `past_key_values`, which every version in the range accepts.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        params = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(output: Any) -> Any:
    """The KV cache a model output carries, under the name its transformers version gives it."""
    if is_dataclass(output) and "cache" in {f.name for f in fields(output)}:
        return output.cache
    return output.past_key_values


KeyValues = tuple[tuple[torch.Tensor, torch.Tensor], ...]  # (key, value) per layer


def layer_key_values(cache: DynamicCache) -> KeyValues:
    """The `(key, value)` tensors of every layer of a cache."""
    return tuple((layer.keys, layer.values) for layer in cache.layers)


def broadcast_cache(key_values: KeyValues, batch: int, config) -> DynamicCache:
    """A cache whose `batch` rows all start with one batch-1 prefix's keys and values.

    The rows are expanded views, not copies: a `DynamicCache` layer grows by concatenation (a new tensor),
    so the shared tensors are never written.
    """
    return DynamicCache([(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in key_values],
                        config=config)


def supports_shared_prompt(model: torch.nn.Module) -> bool:
    """True when the model's attention takes a custom 4-D (or any 2-D) mask over one full-attention cache."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) not in _MASKABLE_ATTENTION:
        return False
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    return all(kind == "full_attention" for kind in layer_types)


class PromptCache:
    """The decoding state of a batch of prompts and the continuations grown from them."""

    def __init__(self, model: torch.nn.Module, strategy: CacheStrategy = "auto", share_prefix: bool = True) -> None:
        if strategy not in ("auto", "shared", "copied"):
            raise ValueError(f"cache strategy must be 'auto', 'shared' or 'copied', got {strategy!r}")
        if strategy == "auto":
            strategy = "shared" if supports_shared_prompt(model) else "copied"
        self.model = model
        self.cache_keyword = cache_keyword(model)
        self.strategy = strategy
        self.share_prefix = share_prefix and supports_shared_prompt(model)
        self.shared_prefix_length = 0  # of the last prefill
        self.cache = None
        self.width = 1  # continuations per prompt fed last (1 after the prefill)

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run the left-padded prompts once; returns the float32 next-token logits `(batch, vocab)`."""
        if input_ids.ndim != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids must be (batch, length) with length > 0, got {tuple(input_ids.shape)}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = attention_mask.to(device=input_ids.device, dtype=torch.long)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}"
            )
        if not bool(attention_mask[:, -1].all()):
            raise ValueError(
                "prompts must be left-padded (the last column of attention_mask must be all ones); "
                "set tokenizer.padding_side = 'left'"
            )
        prefix = common_prefix_length(input_ids, attention_mask) if self.share_prefix else 0
        if input_ids.shape[0] < 2 or prefix < MIN_SHARED_PREFIX:
            prefix = 0
        self.shared_prefix_length = prefix
        if prefix:
            out, attention_mask, position_ids = self._prefill_after_prefix(input_ids, attention_mask, prefix)
        else:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=True,
                logits_to_keep=1,
            )
        if returned_cache(out) is None:
            raise RuntimeError(
                "the model returned no KV cache (gradient checkpointing turns it off in training mode): "
                "decode with model.eval(), or disable gradient checkpointing while generating"
            )
        self.cache = returned_cache(out)
        self.batch = input_ids.shape[0]
        self.prompt_mask = attention_mask.bool()
        self.next_position = position_ids[:, -1] + 1  # (batch,): the position of the next token
        self.width = 1
        # "shared": key columns of each live continuation's ancestors, (batch, width, depth).
        self.ancestors = torch.zeros(self.batch, 1, 0, dtype=torch.long, device=input_ids.device)
        self.length = input_ids.shape[1]  # key columns in the cache
        # "copied": the 2-D attention mask of each cache row.
        self.row_mask = attention_mask
        return out.logits[:, -1].float()

    def _prefill_after_prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix: int):
        """Run the rows' common `prefix` tokens once, then each row's remaining tokens over their cache.

        Dropping `prefix` real tokens from the front of every left-padded row leaves the rows' own tokens in
        the last columns of `input_ids[:, prefix:]`, and their mask is `attention_mask[:, :-prefix]` (row b
        keeps `lengths[b] - prefix` real tokens at the right). Returns the model output, the 2-D mask of the
        whole cache (`[prefix | rows]`) and the rows' position ids (those of the unshared prefill).
        """
        batch = input_ids.shape[0]
        first = int(attention_mask[0].argmax())  # row 0's first real column
        head = self.model(input_ids=input_ids[:1, first:first + prefix], use_cache=True, logits_to_keep=1)
        cache = broadcast_cache(layer_key_values(returned_cache(head)), batch, self.model.config)
        rows_mask = attention_mask[:, :-prefix]
        full_mask = torch.cat([rows_mask.new_ones(batch, prefix), rows_mask], dim=1)
        position_ids = prefix + (rows_mask.cumsum(-1) - 1).clamp_min(0)
        out = self.model(
            input_ids=input_ids[:, prefix:],
            attention_mask=full_mask,
            position_ids=position_ids,
            use_cache=True,
            **{self.cache_keyword: cache},
            logits_to_keep=1,
        )
        return out, full_mask, position_ids

    def step(self, token_ids: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        """Feed one token to each of K continuations per prompt; returns float32 logits `(batch, K, vocab)`.

        Args:
            token_ids: `(batch, K)` the tokens to append.
            parents: `(batch, K)` which continuation of the previous step (in `0..width-1`, so all
                zeros after the prefill) each new token extends.
        """
        if token_ids.shape != parents.shape or token_ids.shape[0] != self.batch:
            raise ValueError(
                f"token_ids {tuple(token_ids.shape)} and parents {tuple(parents.shape)} must be (batch, K)"
            )
        k = token_ids.shape[1]
        if self.strategy == "shared":
            logits = self._step_shared(token_ids, parents)
        else:
            logits = self._step_copied(token_ids, parents)
        self.width = k
        self.next_position = self.next_position + 1
        return logits.float().view(self.batch, k, -1)

    def _step_shared(self, token_ids: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        batch, k = token_ids.shape
        device = token_ids.device
        arange = torch.arange(batch, device=device).unsqueeze(1)
        own = (self.length + torch.arange(k, device=device)).expand(batch, k).unsqueeze(-1)
        self.ancestors = torch.cat([self.ancestors[arange, parents], own], dim=-1)
        self.length += k
        mask = torch.zeros(batch, k, self.length, dtype=torch.bool, device=device)
        mask[:, :, : self.prompt_mask.shape[1]] = self.prompt_mask.unsqueeze(1)
        mask.scatter_(2, self.ancestors, True)
        mask = mask.unsqueeze(1)  # (batch, 1, K, keys)
        if self.model.config._attn_implementation == "eager":  # eager adds the mask to the scores
            dtype = self.model.get_input_embeddings().weight.dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)
        out = self.model(
            input_ids=token_ids,
            attention_mask=mask,
            position_ids=self.next_position.unsqueeze(1).expand(batch, k),
            use_cache=True,
            **{self.cache_keyword: self.cache},
        )
        self.cache = returned_cache(out)
        return out.logits

    def _step_copied(self, token_ids: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        batch, k = token_ids.shape
        rows = (torch.arange(batch, device=parents.device).unsqueeze(1) * self.width + parents).view(-1)
        self.cache.reorder_cache(rows)
        self.row_mask = self.row_mask[rows]
        self.row_mask = torch.cat([self.row_mask, self.row_mask.new_ones(batch * k, 1)], dim=1)
        out = self.model(
            input_ids=token_ids.reshape(-1, 1),
            attention_mask=self.row_mask,
            position_ids=self.next_position.repeat_interleave(k).unsqueeze(1),
            use_cache=True,
            **{self.cache_keyword: self.cache},
        )
        self.cache = returned_cache(out)
        return out.logits[:, -1]
