"""RQ-VAE (TIGER / MiniOneRec style): an autoencoder whose latent is residually quantised.

An MLP encoder maps an item embedding to a small latent `z`; `L` codebooks quantise it residually
(level 1 picks the nearest code to `z`, level 2 the nearest code to what is left, ...); an MLP
decoder reconstructs the embedding from the sum of the picked codes. Unlike residual k-means, the
latent space is learned so that few codes reconstruct the input well.

Loss = MSE(reconstruction, input) + Σ_levels [ |sg(r) - q|² + β |r - sg(q)|² ]: the codebook
term moves codes towards the residuals `r`, the commitment term (weight β) keeps the encoder near
its codes, and the straight-through estimator passes the decoder's gradient through the
non-differentiable code choice. Codebooks start from k-means on the untrained encoder's outputs
(random init leaves most codes unused), and codes no item picked during an epoch are optionally
moved onto random current residuals ("dead-code reset").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from rlrec.sid.config import DEFAULT_KMEANS_ITERS
from rlrec.sid.kmeans import fit_kmeans, squared_distances

logger = logging.getLogger(__name__)


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers through `dims` with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class QuantizedLatent:
    """What the residual quantiser returns for a batch."""

    quantized: torch.Tensor  # (B, e): sum of the picked codes, with straight-through gradient to z
    loss: torch.Tensor  # codebook + β·commitment, summed over levels
    codes: torch.Tensor  # (B, L) int64
    last_residual: torch.Tensor  # (B, e): the residual the last level quantised


class ResidualQuantizer(nn.Module):
    """`L` codebooks applied one after the other to what the previous levels left unexplained."""

    def __init__(self, codebook_sizes: list[int], dim: int, beta: float) -> None:
        super().__init__()
        self.beta = beta
        self.codebooks = nn.ParameterList([nn.Parameter(torch.zeros(k, dim)) for k in codebook_sizes])

    @torch.no_grad()
    def init_from_kmeans(self, z: torch.Tensor, iters: int, seed: int) -> None:
        """Set every codebook to k-means centroids of its level's residuals of `z`."""
        residual = z.clone()
        for level, codebook in enumerate(self.codebooks):
            k = min(codebook.shape[0], residual.shape[0])
            fit = fit_kmeans(residual, k, iters=iters, seed=seed + level)
            codebook.data[:k] = fit.centroids
            if k < codebook.shape[0]:  # more codes than points: the rest start on random points
                extra = torch.randint(
                    residual.shape[0],
                    (codebook.shape[0] - k,),
                    generator=torch.Generator().manual_seed(seed + level),
                )
                codebook.data[k:] = residual[extra.to(residual.device)]
            residual -= fit.centroids[fit.labels]

    def forward(self, z: torch.Tensor) -> QuantizedLatent:
        residual = z
        total = torch.zeros_like(z)
        loss = z.new_zeros(())
        codes = []
        for codebook in self.codebooks:
            last_residual = residual
            idx = squared_distances(residual.detach(), codebook.detach()).argmin(1)
            q = codebook[idx]
            loss = loss + F.mse_loss(q, residual.detach()) + self.beta * F.mse_loss(residual, q.detach())
            total = total + q
            residual = residual - q.detach()
            codes.append(idx)
        quantized = z + (total - z).detach()  # straight-through: forward uses codes, backward skips them
        return QuantizedLatent(quantized, loss, torch.stack(codes, 1), last_residual)


class RQVAE(nn.Module):
    """MLP encoder → residual quantiser → MLP decoder (mirror of the encoder)."""

    def __init__(
        self,
        in_dim: int,
        hidden_dims: list[int],
        latent_dim: int,
        codebook_sizes: list[int],
        beta: float = 0.25,
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden_dims, latent_dim]
        self.encoder = mlp(dims)
        self.quantizer = ResidualQuantizer(codebook_sizes, latent_dim, beta)
        self.decoder = mlp(dims[::-1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, QuantizedLatent]:
        """Return (total loss, reconstruction loss, quantiser output) for a batch."""
        out = self.quantizer(self.encoder(x))
        recon = F.mse_loss(self.decoder(out.quantized), x)
        return recon + out.loss, recon, out

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes `(n, L)` and last-level residuals `(n, e)` of every row, without gradients."""
        codes, residuals = [], []
        for start in range(0, x.shape[0], batch_size):
            out = self.quantizer(self.encoder(x[start : start + batch_size]))
            codes.append(out.codes)
            residuals.append(out.last_residual)
        return torch.cat(codes), torch.cat(residuals)


@dataclass
class RQVAETraining:
    """Training settings (the `rqvae_*` fields of `SIDConfig`)."""

    epochs: int = 300
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    hidden_dims: tuple[int, ...] = (512, 256, 128)
    latent_dim: int = 32
    beta: float = 0.25
    dead_code_reset: bool = True
    kmeans_iters: int = DEFAULT_KMEANS_ITERS
    init_sample_size: int = 65536  # items whose initial encodings seed the codebooks
    seed: int = 0
    progress: bool = True


def train_rqvae(
    x: torch.Tensor, codebook_sizes: list[int], settings: RQVAETraining
) -> tuple[RQVAE, list[float]]:
    """Train an RQ-VAE on the rows of `x` (already on the training device); return it and per-epoch losses."""
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # seeded without touching the caller's RNG state
        torch.manual_seed(settings.seed)
        model = RQVAE(
            x.shape[1], list(settings.hidden_dims), settings.latent_dim, codebook_sizes, settings.beta
        ).to(x.device)
        generator = torch.Generator().manual_seed(settings.seed)
        n = x.shape[0]
        init_rows = torch.randperm(n, generator=generator)[: settings.init_sample_size].to(x.device)
        with torch.no_grad():
            model.quantizer.init_from_kmeans(
                model.encoder(x[init_rows]), settings.kmeans_iters, settings.seed
            )
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        history: list[float] = []
        bar = tqdm(range(settings.epochs), desc="rqvae", disable=not settings.progress, mininterval=1.0)
        for _ in bar:
            model.train()
            usage = [torch.zeros(k, dtype=torch.long, device=x.device) for k in codebook_sizes]
            total, batches = 0.0, 0
            order = torch.randperm(n, generator=generator).to(x.device)
            for start in range(0, n, settings.batch_size):
                batch = x[order[start : start + settings.batch_size]]
                loss, _, out = model(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                batches += 1
                for level, counts in enumerate(usage):
                    counts += torch.bincount(out.codes[:, level], minlength=codebook_sizes[level])
            history.append(total / batches)
            bar.set_postfix(loss=f"{history[-1]:.5f}", refresh=False)
            if settings.dead_code_reset:
                _reset_dead_codes(model, batch, usage, generator)
        model.eval()
    return model, history


@torch.no_grad()
def _reset_dead_codes(
    model: RQVAE, batch: torch.Tensor, usage: list[torch.Tensor], generator: torch.Generator
) -> None:
    """Move every code unused this epoch onto a random residual of `batch` at its level."""
    residual = model.encoder(batch)
    for level, codebook in enumerate(model.quantizer.codebooks):
        dead = torch.nonzero(usage[level] == 0).flatten()
        if dead.numel():
            picks = torch.randint(residual.shape[0], (dead.numel(),), generator=generator).to(batch.device)
            codebook.data[dead] = residual[picks]
        idx = squared_distances(residual, codebook).argmin(1)
        residual = residual - codebook[idx]
