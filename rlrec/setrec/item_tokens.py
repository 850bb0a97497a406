"""The two item tokenizers of SETRec: one CF token and N semantic tokens per item, in the LLM's hidden size.

- `CFTokenizer`: a frozen behavioural item embedding (SASRec trained on the train split) through a learned
  linear layer. Items absent from train have no trained embedding: their row is zero and they are flagged
  cold, so grounding scores them by their semantic tokens alone.
- `SemanticTokenizer`: an autoencoder over frozen item-text embeddings. Its code (the encoder's output) is
  cut into N equal slices, each projected to the hidden size by its own linear layer: N tokens that say
  different things about the item's text without any order among them (unlike the levels of an RQ code,
  where each level refines the previous one). The decoder only exists for the reconstruction loss, which
  keeps the code faithful to the text while the recommendation loss shapes it.

Both tables are recomputed from their (small) parameters whenever needed, so a training step sees the
current tokens of every item: the same vectors are the LLM's input for history items and the corpus
the generated tokens are scored against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _standardize(x: torch.Tensor) -> torch.Tensor:
    """Centre and scale a feature table to unit RMS, so a projection's initial output has a known scale."""
    x = x - x.mean(dim=0, keepdim=True)
    return x / x.pow(2).mean().sqrt().clamp(min=1e-8)


def _projection(in_dim: int, out_dim: int, out_rms: float) -> nn.Linear:
    """A linear layer whose outputs start with RMS ≈ `out_rms` on unit-RMS inputs (the LLM embedding scale)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.normal_(layer.weight, std=out_rms / in_dim**0.5)
    nn.init.zeros_(layer.bias)
    return layer


class CFTokenizer(nn.Module):
    """One CF token per item: `Linear(cf_embedding)`; cold items (no trained embedding) get a zero input."""

    def __init__(self, cf_embeddings: torch.Tensor, warm: torch.Tensor, hidden_size: int,
                 out_rms: float = 0.02) -> None:
        super().__init__()
        if cf_embeddings.dim() != 2 or warm.shape != (cf_embeddings.shape[0],):
            raise ValueError("cf_embeddings must be (num_items, dim) and warm (num_items,)")
        table = cf_embeddings.float().clone()
        if warm.any():
            table[warm] = _standardize(table[warm])
        table[~warm] = 0.0
        self.register_buffer("embeddings", table)
        self.register_buffer("warm", warm.bool().clone())
        self.proj = _projection(table.shape[1], hidden_size, out_rms)

    def forward(self) -> torch.Tensor:
        """CF tokens of every item, `(num_items, hidden)`."""
        return self.proj(self.embeddings)


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SemanticTokenizer(nn.Module):
    """N semantic tokens per item from an autoencoder over text embeddings (`hidden` widths, ReLU between)."""

    def __init__(self, text_embeddings: torch.Tensor, ae_hidden: list[int], num_tokens: int, hidden_size: int,
                 out_rms: float = 0.02) -> None:
        super().__init__()
        code = ae_hidden[-1]
        if code % num_tokens:
            raise ValueError(f"the code width {code} is not divisible by {num_tokens} semantic tokens")
        self.register_buffer("texts", _standardize(text_embeddings.float()))
        dim = self.texts.shape[1]
        self.num_tokens = num_tokens
        self.encoder = _mlp([dim, *ae_hidden])
        self.decoder = _mlp([*reversed(ae_hidden), dim])
        self.proj = nn.ModuleList(_projection(code // num_tokens, hidden_size, out_rms) for _ in range(num_tokens))

    def codes(self) -> torch.Tensor:
        return self.encoder(self.texts)

    def reconstruction_loss(self, codes: torch.Tensor | None = None) -> torch.Tensor:
        codes = self.codes() if codes is None else codes
        return F.mse_loss(self.decoder(codes), self.texts)

    def tokens(self, codes: torch.Tensor | None = None) -> torch.Tensor:
        """Semantic tokens of every item, `(num_tokens, num_items, hidden)`."""
        codes = self.codes() if codes is None else codes
        slices = codes.chunk(self.num_tokens, dim=-1)
        return torch.stack([proj(s) for proj, s in zip(self.proj, slices, strict=True)])

    def pretrain(self, steps: int, lr: float = 1e-3) -> list[float]:
        """Full-batch reconstruction steps on the encoder/decoder alone; returns the losses."""
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        optimizer = torch.optim.Adam(params, lr=lr)
        losses = []
        for _ in range(steps):
            loss = self.reconstruction_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses
