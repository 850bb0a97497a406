"""Quantizers: item embeddings `(n, d)` → integer codes `(n, levels)`, one code per SID token.

Every quantizer has the same shape: `fit_encode(embeddings) -> codes`, deterministic for a seed.
After a fit it also answers `last_level_distances(rows)`, the squared distances of those items'
last-level residuals to every last-level code, which is what collision resolution by
reassignment needs to move an item to the nearest free code.

- `rkmeans`: residual k-means (RQ-Kmeans): level 1 clusters the embeddings, level 2 clusters what
  each item's level-1 centroid leaves unexplained, and so on; one codebook per level.
- `rkmeans_balanced`: the same with capacity-constrained assignments, so each code holds about
  n / K items (MiniOneRec's balanced RQ-Kmeans): fewer items end up sharing a full code tuple.
- `rqvae`: an RQ-VAE trained on the embeddings (see `rlrec.sid.rqvae`).
- `CascadeQuantizer` (not in the registry, it takes two inputs): Semantic Convergence's cascaded
  codebooks, level 1 from a behavioural (CF) embedding and the next levels from the text.

`get_quantizer(name, config)` builds one from a `SIDConfig` (or any object with its fields).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import torch

from rlrec.sid.config import SIDConfig
from rlrec.sid.kmeans import fit_kmeans, squared_distances
from rlrec.utils.devices import resolve_device
from rlrec.utils.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def check_embeddings(embeddings: np.ndarray, what: str = "embeddings") -> np.ndarray:
    """A finite, non-empty `(n, d)` float32 array (copied only when the dtype must change)."""
    array = np.asarray(embeddings)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise DataError(f"{what}: expected a non-empty (items, dims) array, got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{what}: contains NaN or infinite values")
    return array


def codebook_sizes_for(config: SIDConfig, num_items: int, num_levels: int | None = None) -> list[int]:
    """`codebook_size` at every level, clamped to the catalog size when `clamp_codebooks` allows it.

    A level cannot use more codes than there are items to put in them; k-means would otherwise
    have to invent empty clusters.
    """
    levels = config.num_levels if num_levels is None else num_levels
    size = config.codebook_size
    if size > num_items:
        if not config.clamp_codebooks:
            raise ConfigError(
                f"sid: codebook_size={size} is larger than the catalog ({num_items} items); expected at most "
                f"{num_items} codes per level. Lower codebook_size or set clamp_codebooks: true"
            )
        logger.warning(
            "codebook_size %d clamped to %d per level: the catalog has only %d items",
            size,
            num_items,
            num_items,
        )
        size = num_items
    return [size] * levels


class Quantizer:
    """Base class: subclasses implement `fit_encode` and fill the last-level state it leaves behind."""

    name = "base"

    def __init__(self, config: SIDConfig) -> None:
        self.config = config
        self.device = resolve_device(getattr(config, "device", "auto"), "sid")
        self.codebook_sizes: list[int] = []
        self._last_residuals: torch.Tensor | None = None  # (n, e) input of the last level
        self._last_codebook: torch.Tensor | None = None  # (K_last, e)

    def fit_encode(self, embeddings: np.ndarray) -> np.ndarray:
        """Fit on `embeddings` (n, d) float32 and return their codes (n, levels) int64."""
        raise NotImplementedError

    def last_level_distances(self, rows: np.ndarray) -> np.ndarray:
        """Squared distances `(len(rows), K_last)` of these items' last-level residuals to each last code."""
        if self._last_residuals is None or self._last_codebook is None:
            raise RuntimeError(f"{self.name}: call fit_encode before last_level_distances")
        index = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self._last_residuals.device)
        d = squared_distances(self._last_residuals[index], self._last_codebook)
        return d.cpu().numpy()


class RKMeansQuantizer(Quantizer):
    """Residual k-means: one k-means codebook per level, each fitted on the previous level's residuals."""

    name = "rkmeans"
    balanced = False

    def fit_encode(self, embeddings: np.ndarray) -> np.ndarray:
        array = check_embeddings(embeddings)
        cfg = self.config
        self.codebook_sizes = codebook_sizes_for(cfg, array.shape[0])
        residual = torch.from_numpy(array).to(self.device)
        codes = []
        self.codebooks: list[np.ndarray] = []
        for level, k in enumerate(self.codebook_sizes):
            fit = fit_kmeans(
                residual,
                k,
                iters=cfg.kmeans_iters,
                tol=cfg.kmeans_tol,
                seed=cfg.seed + level,
                sample_size=cfg.kmeans_sample_size,
                balanced=self.balanced,
                balance_slack=cfg.balanced_slack,
            )
            logger.info(
                "%s level %d: %d codes, %d iterations, inertia %.4g",
                self.name,
                level + 1,
                k,
                fit.iterations,
                fit.inertia,
            )
            codes.append(fit.labels)
            self.codebooks.append(fit.centroids.cpu().numpy())
            self._last_residuals, self._last_codebook = residual, fit.centroids
            residual = residual - fit.centroids[fit.labels]
        return torch.stack(codes, 1).cpu().numpy().astype(np.int64)


class BalancedRKMeansQuantizer(RKMeansQuantizer):
    """Residual k-means whose every assignment caps cluster sizes (see `balanced_slack`)."""

    name = "rkmeans_balanced"
    balanced = True


class RQVAEQuantizer(Quantizer):
    """RQ-VAE trained on the embeddings; codes are the residual quantiser's picks on the latent."""

    name = "rqvae"

    def fit_encode(self, embeddings: np.ndarray) -> np.ndarray:
        from rlrec.sid.rqvae import RQVAETraining, train_rqvae

        array = check_embeddings(embeddings)
        cfg = self.config
        self.codebook_sizes = codebook_sizes_for(cfg, array.shape[0])
        settings = RQVAETraining(
            epochs=cfg.rqvae_epochs,
            batch_size=cfg.rqvae_batch_size,
            lr=cfg.rqvae_lr,
            weight_decay=cfg.rqvae_weight_decay,
            hidden_dims=tuple(cfg.rqvae_hidden_dims),
            latent_dim=cfg.rqvae_latent_dim,
            beta=cfg.rqvae_beta,
            dead_code_reset=cfg.rqvae_dead_code_reset,
            kmeans_iters=cfg.kmeans_iters,
            init_sample_size=cfg.kmeans_sample_size or array.shape[0],
            seed=cfg.seed,
        )
        x = torch.from_numpy(array).to(self.device)
        self.model, self.loss_history = train_rqvae(x, self.codebook_sizes, settings)
        codes, last_residuals = self.model.encode(x)
        self._last_residuals = last_residuals
        self._last_codebook = self.model.quantizer.codebooks[-1].detach()
        return codes.cpu().numpy().astype(np.int64)


QUANTIZERS: dict[str, Callable[[SIDConfig], Quantizer]] = {
    RKMeansQuantizer.name: RKMeansQuantizer,
    BalancedRKMeansQuantizer.name: BalancedRKMeansQuantizer,
    RQVAEQuantizer.name: RQVAEQuantizer,
}


def get_quantizer(name: str, config: SIDConfig) -> Quantizer:
    """The quantizer registered under `name`, configured by `config`."""
    if name not in QUANTIZERS:
        raise ConfigError(f"sid: unknown quantizer {name!r}; expected one of {', '.join(QUANTIZERS)}")
    return QUANTIZERS[name](config)


class CascadeQuantizer:
    """Cascaded codebooks (Semantic Convergence): level 1 from behaviour, the next levels from text.

    Level 1 is k-means (balanced when `config.quantizer` is `rkmeans_balanced`) on the CF embedding,
    so items users consume together share a first token. The text embedding then loses its
    level-1 cluster's mean text embedding, and the remaining `num_levels - 1` levels quantise that
    residual with `config.quantizer`: they tell apart the items of one behavioural cluster by content.
    """

    name = "cascade"

    def __init__(self, config: SIDConfig) -> None:
        self.config = config
        self.device = resolve_device(getattr(config, "device", "auto"), "sid")
        self.codebook_sizes: list[int] = []
        self.text_quantizer: Quantizer | None = None
        self._cf: torch.Tensor | None = None
        self._cf_centroids: torch.Tensor | None = None

    def fit_encode(self, text: np.ndarray, cf: np.ndarray) -> np.ndarray:
        """Codes `(n, num_levels)`: column 0 from `cf` (n, d_cf), the others from `text` (n, d_text)."""
        text = check_embeddings(text, "text embeddings")
        cf = check_embeddings(cf, "CF embeddings")
        if text.shape[0] != cf.shape[0]:
            raise DataError(f"cascade: {text.shape[0]} text embeddings but {cf.shape[0]} CF embeddings")
        cfg = self.config
        n = text.shape[0]
        first_size = codebook_sizes_for(cfg, n, 1)[0]
        cf_t = torch.from_numpy(cf).to(self.device)
        fit = fit_kmeans(
            cf_t,
            first_size,
            iters=cfg.kmeans_iters,
            tol=cfg.kmeans_tol,
            seed=cfg.seed,
            sample_size=cfg.kmeans_sample_size,
            balanced=cfg.quantizer == "rkmeans_balanced",
            balance_slack=cfg.balanced_slack,
        )
        first = fit.labels.cpu().numpy().astype(np.int64)
        self._cf, self._cf_centroids = cf_t, fit.centroids
        self.codebook_sizes = [first_size]
        if cfg.num_levels == 1:
            return first[:, None]
        # Remove each CF cluster's mean text, so the text levels describe differences inside a cluster.
        sums = np.zeros((first_size, text.shape[1]), dtype=np.float64)
        np.add.at(sums, first, text)
        means = sums / np.maximum(np.bincount(first, minlength=first_size), 1)[:, None]
        residual = (text - means[first]).astype(np.float32)
        inner_config = dataclasses.replace(cfg, num_levels=cfg.num_levels - 1, seed=cfg.seed + 1)
        self.text_quantizer = get_quantizer(cfg.quantizer, inner_config)
        rest = self.text_quantizer.fit_encode(residual)
        self.codebook_sizes += self.text_quantizer.codebook_sizes
        return np.concatenate([first[:, None], rest], axis=1)

    def last_level_distances(self, rows: np.ndarray) -> np.ndarray:
        """Squared distances of these items to each last-level code (text level, or CF with one level)."""
        if self.text_quantizer is not None:
            return self.text_quantizer.last_level_distances(rows)
        if self._cf is None or self._cf_centroids is None:
            raise RuntimeError("cascade: call fit_encode before last_level_distances")
        index = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self._cf.device)
        return squared_distances(self._cf[index], self._cf_centroids).cpu().numpy()
