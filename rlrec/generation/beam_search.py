"""Constrained beam search over the SID trie: every returned candidate is a real, distinct item.

An SID has a fixed depth L, so the search is one prefill per prompt plus L - 1 steps that feed one
token per beam over a KV cache shared by the beams (`PromptCache`). Each level is a handful of
tensor ops for the whole batch, with no Python per beam:

    logprobs of the level's C tokens (full-vocab softmax)      (batch, k, C)
    + beam scores, -inf where the trie has no child            (batch, k, C)
    top-num_beams over the flattened (k * C) candidates        (batch, num_beams)
    gather the parents' tokens and trie nodes; the next step extends each beam's parent

At level 0 there is a single live beam per prompt (the root), so no item can appear twice: distinct
(parent, code) pairs are distinct prefixes. When a prompt has fewer valid continuations than
`num_beams` (a small catalog), the missing slots are padding: score `-inf`, item index `-1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TypeVar

import torch

from rlrec.generation.constraint import SIDConstraint
from rlrec.generation.kv_cache import CacheStrategy, PromptCache


@dataclass
class BeamSearchOutput:
    """Beams per prompt, best first.

    Attributes:
        item_indices: `(batch, num_beams)` long: the item row in the constraint's `codes`, or -1 for
            a padding slot (fewer than `num_beams` items reachable; its score is -inf).
        sequences: `(batch, num_beams, L)` long: the SID token ids generated (for padding slots,
            arbitrary SID tokens that spell no item: check `item_indices >= 0`).
        scores: `(batch, num_beams)` float: summed log-probs of the SID tokens, descending.
        token_logprobs: `(batch, num_beams, L)` float: the per-token log-probs that `scores` sums.
    """

    item_indices: torch.LongTensor
    sequences: torch.LongTensor
    scores: torch.FloatTensor
    token_logprobs: torch.FloatTensor

    @property
    def valid(self) -> torch.BoolTensor:
        """`(batch, num_beams)`: True where the slot holds a real item."""
        return self.item_indices >= 0


Output = TypeVar("Output")


def outside_inference_mode(output: Output) -> Output:
    """A copy of a dataclass of tensors made in inference mode, usable as input to autograd.

    Decoding runs under `torch.inference_mode()` (no autograd bookkeeping at all), but its
    tensors then cannot enter a graph (e.g. RL rollouts fed back to the training forward); the
    outputs are small, so they are cloned once outside that mode.
    """
    return type(output)(**{f.name: getattr(output, f.name).clone() for f in fields(output)})


def constrained_beam_search(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    constraint: SIDConstraint,
    num_beams: int,
    *,
    cache_strategy: CacheStrategy = "auto",
    exclude: Sequence[Sequence[int]] | None = None,
) -> BeamSearchOutput:
    """Beam search restricted to the SIDs of `constraint`, for a left-padded batch of prompts.

    Scores are the model's log-probabilities over the full vocabulary (not renormalised over the
    allowed tokens), so they equal what a plain forward pass on prompt + SID gives. The model is
    used as it is (call `model.eval()` first if it has dropout). A valid item whose model
    log-prob is -inf may lose its slot to padding.

    `cache_strategy` picks how beams share the prompt's KV cache (see `rlrec.generation.kv_cache`):
    "shared" (one cache row per prompt, tree attention mask), "copied" (one row per beam), or
    "auto" (shared when the model's attention allows it).

    `exclude[b]` lists item rows prompt `b` may not get (e.g. its history's items). They are masked inside the
    search, and so is every prefix all of whose items are excluded, so the beams are spent on allowed items
    only: a prompt gets min(num_beams, allowed items) real items, where filtering after the search could
    leave it with fewer than it asked for.
    """
    with torch.inference_mode():
        output = _beam_search(model, input_ids, attention_mask, constraint, num_beams, cache_strategy, exclude)
    return outside_inference_mode(output)


def start_search(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 constraint: SIDConstraint, cache_strategy: CacheStrategy,
                 ) -> tuple[SIDConstraint, PromptCache, torch.Tensor]:
    """The constraint on the prompts' device, the prompts' cache and their last logits, after checking that the
    model's vocabulary holds every SID token (the start of both the beam search and the sampler)."""
    constraint = constraint.to(input_ids.device)
    state = PromptCache(model, cache_strategy)
    logits = state.prefill(input_ids, attention_mask)
    if logits.shape[-1] <= constraint.max_token_id:
        raise ValueError(
            f"the model's vocabulary ({logits.shape[-1]}) lacks SID token id {constraint.max_token_id}: "
            "resize its embeddings after adding the SID tokens"
        )
    return constraint, state, logits


def _beam_search(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    constraint: SIDConstraint,
    num_beams: int,
    cache_strategy: CacheStrategy,
    exclude: Sequence[Sequence[int]] | None = None,
) -> BeamSearchOutput:
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    device = input_ids.device
    batch = input_ids.shape[0]
    constraint, state, logits = start_search(model, input_ids, attention_mask, constraint, cache_strategy)

    if exclude is not None and len(exclude) != batch:
        raise ValueError(f"exclude has {len(exclude)} rows for a batch of {batch} prompts")
    closed = constraint.exclusion(exclude) if exclude is not None and any(exclude) else None
    arange = torch.arange(batch, device=device).unsqueeze(1)
    scores = torch.zeros(batch, 1, device=device)  # one live beam (the root) per prompt at level 0
    nodes = torch.zeros(batch, 1, dtype=torch.long, device=device)
    sequences = torch.zeros(batch, 1, 0, dtype=torch.long, device=device)
    token_logprobs = torch.zeros(batch, 1, 0, device=device)
    for level in range(constraint.num_levels):
        width, size = nodes.shape[1], constraint.codebook_sizes[level]
        logprobs = constraint.level_logprobs(logits, level).view(batch, width, size)
        children = constraint.children(level, nodes)  # (batch, width, size), -1 = not in the trie
        candidates = (scores.unsqueeze(-1) + logprobs).masked_fill(children < 0, float("-inf"))
        if closed is not None:
            shut = closed[level].gather(1, children.clamp_min(0).view(batch, -1)).view_as(children)
            candidates = candidates.masked_fill(shut, float("-inf"))
        keep = min(num_beams, width * size)
        scores, flat = candidates.view(batch, -1).topk(keep, dim=1)
        if keep < num_beams:  # fewer candidates than beams at all: pad with dead slots
            pad = num_beams - keep
            scores = torch.cat([scores, scores.new_full((batch, pad), float("-inf"))], dim=1)
            dead = torch.full((batch, pad), size - 1, dtype=torch.long, device=device)
            flat = torch.cat([flat, dead], dim=1)  # points at (parent 0, last code), made invalid below
        parent, code = flat // size, flat % size
        nodes = children.view(batch, -1).gather(1, flat).long()
        if keep < num_beams:
            nodes[:, keep:] = -1
        sequences = torch.cat([sequences[arange, parent], constraint.level_token_ids[level][code].unsqueeze(-1)], -1)
        picked = logprobs.view(batch, -1).gather(1, flat).masked_fill(nodes < 0, float("-inf")).unsqueeze(-1)
        token_logprobs = torch.cat([token_logprobs[arange, parent], picked], dim=-1)
        if level + 1 < constraint.num_levels:
            logits = state.step(sequences[:, :, -1], parent).view(batch * num_beams, -1)

    return BeamSearchOutput(item_indices=nodes, sequences=sequences, scores=scores, token_logprobs=token_logprobs)
