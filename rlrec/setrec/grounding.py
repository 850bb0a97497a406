"""Grounding: turn the N+1 generated vectors into a score for every item of the catalog.

Each dimension k (0: CF, 1..N: semantic) has a token corpus, the k-th token of every item. The score of
item i in dimension k is the cosine similarity of the generated vector with item i's k-th token, times a
learned scale (a softmax temperature), and

    score(i) = (1-β)·s_CF(i) + β·Σ_k s_k(i)        for items with a CF token (seen in train),
    score(i) = β·Σ_k s_k(i)                          for cold items, scored from their semantic tokens alone.

So a new item can be recommended as soon as its text is known: its semantic tokens come from the
autoencoder over its text embedding, with no interaction needed. One matrix product per dimension
scores the whole catalog, which is why SETRec needs no beam search.

Why cosine and not SETRec's plain inner product: the generated vectors leave the LLM's final norm with
RMS ≈ 1 while item tokens live at the input-embedding scale (RMS ≈ 0.02), so inner products start near
zero, every softmax starts uniform, and training crawls (a tiny model's loss barely moved in 30 steps).
Cosine with a learned scale fixes the logit range from the first step, and it makes "the item whose
tokens equal the generated ones" the top score by construction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dimension_scores(generated: torch.Tensor, corpus: torch.Tensor,
                     scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Scores `(batch, dims, items)`: `scale · cos(generated (batch, dims, hidden), corpus (dims, items, hidden))`."""
    if generated.dim() != 3 or corpus.dim() != 3 or generated.shape[1:] != (corpus.shape[0], corpus.shape[2]):
        raise ValueError(f"generated {tuple(generated.shape)} does not match corpus {tuple(corpus.shape)}")
    unit_generated = F.normalize(generated.float(), dim=-1)
    unit_corpus = F.normalize(corpus.float(), dim=-1)
    return torch.einsum("bdh,dih->bdi", unit_generated, unit_corpus) * scale


def ground(generated: torch.Tensor, corpus: torch.Tensor, warm: torch.Tensor, beta: float,
           scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Item scores `(batch, items)`: `(1-β)·s_CF + β·Σ_k s_k`, semantic only for items where `warm` is False."""
    scores = dimension_scores(generated, corpus, scale)
    semantic = beta * scores[:, 1:].sum(dim=1)
    return torch.where(warm.to(scores.device), (1.0 - beta) * scores[:, 0] + semantic, semantic)
