"""Constrained sampling over the SID trie: `num_samples` independent SIDs per prompt, each a real item.

GRPO needs several rollouts per prompt drawn from the policy, not the top beams. The machinery is
the beam search's: one prefill per prompt, the cache repeated to the samples, then L - 1 batched
one-token steps; at each level the logits of the level's tokens are masked to the trie node's
children and a code is drawn. Samples of one prompt are independent, so an item may repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlrec.generation.beam_search import outside_inference_mode, start_search
from rlrec.generation.constraint import SIDConstraint
from rlrec.generation.kv_cache import CacheStrategy


@dataclass
class SampleOutput:
    """Samples per prompt, in drawing order.

    Attributes:
        item_indices: `(batch, num_samples)` long: the item row in the constraint's `codes` (never -1).
        sequences: `(batch, num_samples, L)` long: the SID token ids.
        token_logprobs: `(batch, num_samples, L)` float: log-probs of the drawn tokens under the
            full-vocabulary softmax of `logits / temperature` (what TRL recomputes for the policy),
            before the trie mask and top-k.
        scores: `(batch, num_samples)` float: `token_logprobs` summed.
    """

    item_indices: torch.LongTensor
    sequences: torch.LongTensor
    token_logprobs: torch.FloatTensor
    scores: torch.FloatTensor


def constrained_sample(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    constraint: SIDConstraint,
    num_samples: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    cache_strategy: CacheStrategy = "auto",
) -> SampleOutput:
    """Draw `num_samples` SIDs per left-padded prompt, restricted to the trie.

    Args:
        temperature: divides the logits; 0 picks the most likely allowed token (greedy; log-probs
            are then reported at temperature 1).
        top_k: draw only among the `top_k` most likely *allowed* tokens of each step (None: all).
        generator: a `torch.Generator` on the model's device, for reproducible draws.
        cache_strategy: how samples share the prompt's KV cache (as in `constrained_beam_search`).
    """
    with torch.inference_mode():
        output = _sample(
            model, input_ids, attention_mask, constraint, num_samples, temperature, top_k, generator, cache_strategy
        )
    return outside_inference_mode(output)


def _sample(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    constraint: SIDConstraint,
    num_samples: int,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
    cache_strategy: CacheStrategy,
) -> SampleOutput:
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    device = input_ids.device
    batch = input_ids.shape[0]
    constraint, state, logits = start_search(model, input_ids, attention_mask, constraint, cache_strategy)
    logits = logits.repeat_interleave(num_samples, dim=0)  # the level-0 draws all extend the prompt
    parents = torch.zeros(batch, num_samples, dtype=torch.long, device=device)

    nodes = torch.zeros(batch * num_samples, dtype=torch.long, device=device)
    tokens, logprobs = [], []
    for level in range(constraint.num_levels):
        level_logprobs = constraint.level_logprobs(logits / (temperature or 1.0), level)  # (rows, C)
        children = constraint.children(level, nodes)
        masked = level_logprobs.masked_fill(children < 0, float("-inf"))
        if top_k is not None and top_k < masked.shape[-1]:
            kth = masked.topk(top_k, dim=-1).values[:, -1:]
            masked = masked.masked_fill(masked < kth, float("-inf"))
        if temperature == 0:
            code = masked.argmax(dim=-1, keepdim=True)
        else:
            code = torch.multinomial(masked.softmax(dim=-1), 1, generator=generator)
        nodes = children.gather(1, code).squeeze(1).long()
        tokens.append(constraint.level_token_ids[level][code.squeeze(1)])
        logprobs.append(level_logprobs.gather(1, code).squeeze(1))
        if level + 1 < constraint.num_levels:
            logits = state.step(tokens[-1].view(batch, num_samples), parents).view(batch * num_samples, -1)
            parents = torch.arange(num_samples, device=device).expand(batch, num_samples)  # no reordering

    sequences = torch.stack(tokens, dim=-1).view(batch, num_samples, -1)
    token_logprobs = torch.stack(logprobs, dim=-1).view(batch, num_samples, -1)
    return SampleOutput(
        item_indices=nodes.view(batch, num_samples),
        sequences=sequences,
        token_logprobs=token_logprobs,
        scores=token_logprobs.sum(-1),
    )
