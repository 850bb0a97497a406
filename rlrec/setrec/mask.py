"""The sparse attention layout of a SETRec sequence: text prefix, history items as token sets, queries.

A sequence is `[pad..., prefix tokens, item_1 tokens, ..., item_T tokens, queries]`, left-padded so the
queries always sit at the last `num_queries` positions. Every position gets a *block* id:

- prefix token p: block p (one block per token, so the text reads causally as usual);
- every token of history item t: block P + t (one block for the whole set);
- every query: block P + T;
- padding: -1.

`SETRecModel` runs the prefix once per batch and shares its keys and values through the KV cache, so the
layout it builds has `prefix_len=0` and `allowed(cached_prefix=P)` adds the P cached prompt keys in front
(every real position sees them); the result is the same as with the prompt in every row.

Position i may attend to position j when `block[j] < block[i]` (an earlier token, item or the prefix) or
`i == j`. So the tokens of one item see each other's past but not each other: the set has no order, and
nothing would change if its tokens were permuted. The queries see the whole history but not each other,
which is what lets one forward pass produce all N+1 tokens of the next item independently. The position
id of a token is its block id, so a set's tokens also share a rotary position (RoPE adds no order either).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

PAD_BLOCK = -1


@dataclass
class SetLayout:
    """Block ids `(batch, length)` (-1: padding) of a left-padded batch; queries fill the last columns."""

    blocks: torch.Tensor

    @property
    def position_ids(self) -> torch.Tensor:
        """Rotary positions: the block id (0 for padding, which nobody attends to)."""
        return self.blocks.clamp(min=0)

    @property
    def real(self) -> torch.Tensor:
        return self.blocks != PAD_BLOCK

    def allowed(self, cached_prefix: int = 0) -> torch.Tensor:
        """Boolean `(batch, length, cached_prefix + length)`: query i may attend to key j.

        `cached_prefix` puts that many keys in front, for a text prompt whose keys and values come from a KV
        cache (blocks before every item): every real position sees all of them, padding none.
        """
        blocks = self.blocks
        earlier = (blocks.unsqueeze(1) < blocks.unsqueeze(2)) & self.real.unsqueeze(1)
        eye = torch.eye(blocks.shape[1], dtype=torch.bool, device=blocks.device)
        # Each token sees itself, so no row is empty (padding rows see only themselves).
        allowed = earlier | eye
        if cached_prefix:
            sees_prompt = self.real.unsqueeze(-1).expand(*blocks.shape, cached_prefix)
            allowed = torch.cat([sees_prompt, allowed], dim=-1)
        return allowed

    def attention_mask(self, dtype: torch.dtype, cached_prefix: int = 0) -> torch.Tensor:
        """The 4-D additive float mask `(batch, 1, length, cached_prefix + length)` transformers accepts as is.

        Transformers (≥ 5) passes a 4-D mask through untouched to every attention implementation
        (eager adds it to the scores, SDPA gives it as `attn_mask`); a float mask with 0 for allowed and the
        dtype's minimum for blocked works in both, where a boolean one would not suit eager attention.
        """
        allowed = self.allowed(cached_prefix).unsqueeze(1)
        zero = torch.zeros((), dtype=dtype, device=allowed.device)
        blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=allowed.device)
        return torch.where(allowed, zero, blocked)


def set_layout(prefix_len: int, history_lengths: Sequence[int], tokens_per_item: int, num_queries: int,
               device: torch.device | str | None = None) -> SetLayout:
    """The block ids of a batch whose row b holds `history_lengths[b]` items of `tokens_per_item` tokens each."""
    if tokens_per_item < 1 or num_queries < 1 or prefix_len < 0:
        raise ValueError("tokens_per_item and num_queries must be >= 1, prefix_len >= 0")
    lengths = [prefix_len + t * tokens_per_item + num_queries for t in history_lengths]
    width = max(lengths, default=0)
    blocks = torch.full((len(lengths), width), PAD_BLOCK, dtype=torch.long)
    for row, (t, n) in enumerate(zip(history_lengths, lengths, strict=True)):
        items = torch.arange(prefix_len, prefix_len + t).repeat_interleave(tokens_per_item)
        queries = torch.full((num_queries,), prefix_len + t)
        blocks[row, width - n:] = torch.cat([torch.arange(prefix_len), items, queries])
    return SetLayout(blocks.to(device) if device is not None else blocks)
