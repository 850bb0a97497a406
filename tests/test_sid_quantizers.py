"""Quantizers and k-means: shapes, determinism, balance, RQ-VAE training, cascade, clamping, errors."""

import logging
import math

import numpy as np
import pytest
import torch

from rlrec.sid.config import SIDConfig
from rlrec.sid.kmeans import assign_balanced, balanced_capacity, fit_kmeans
from rlrec.sid.quantizers import QUANTIZERS, CascadeQuantizer, get_quantizer
from rlrec.utils.devices import resolve_device
from rlrec.utils.errors import ConfigError, DataError


def clustered(n: int = 300, d: int = 32, clusters: int = 12, seed: int = 0, skew: bool = False) -> np.ndarray:
    """Unit vectors around `clusters` centres (uneven cluster sizes with `skew`)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    p = np.arange(1, clusters + 1, dtype=float) ** (3 if skew else 0)
    labels = rng.choice(clusters, size=n, p=p / p.sum())
    x = centres[labels] + 0.3 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def config(**kw) -> SIDConfig:
    base = dict(
        num_levels=3,
        codebook_size=8,
        device="cpu",
        seed=0,
        rqvae_epochs=40,
        rqvae_hidden_dims=[64],
        rqvae_latent_dim=16,
        rqvae_batch_size=128,
    )
    base.update(kw)
    return SIDConfig(**base)


@pytest.mark.parametrize("name", ["rkmeans", "rkmeans_balanced"])
def test_kmeans_quantizers_shapes_and_determinism(name):
    x = clustered()
    codes = get_quantizer(name, config()).fit_encode(x)
    assert codes.shape == (300, 3) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 8
    again = get_quantizer(name, config()).fit_encode(x)
    np.testing.assert_array_equal(codes, again)
    other = get_quantizer(name, config(seed=1)).fit_encode(x)
    assert not np.array_equal(codes, other)


def test_balanced_is_more_balanced_than_plain():
    x = clustered(n=400, skew=True)
    plain = get_quantizer("rkmeans", config(num_levels=1)).fit_encode(x)[:, 0]
    balanced = get_quantizer("rkmeans_balanced", config(num_levels=1)).fit_encode(x)[:, 0]
    plain_sizes = np.bincount(plain, minlength=8)
    balanced_sizes = np.bincount(balanced, minlength=8)
    assert balanced_sizes.max() <= math.ceil(400 / 8)
    assert balanced_sizes.std() < plain_sizes.std()


def test_assign_balanced_respects_capacity_and_prefers_near_clusters():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 8, generator=g)
    centroids = torch.randn(10, 8, generator=g)
    labels, dist = assign_balanced(x, centroids, capacity=100)
    assert torch.bincount(labels, minlength=10).max() <= 100 and (labels >= 0).all()
    assert torch.allclose(dist, ((x - centroids[labels]) ** 2).sum(1), atol=1e-4)
    # Everyone gets its nearest cluster when capacity does not bind.
    free, _ = assign_balanced(x, centroids, capacity=1000)
    assert torch.equal(free, torch.cdist(x, centroids).argmin(1))
    assert balanced_capacity(1000, 10, 0.0) == 100 and balanced_capacity(1001, 10, 0.1) == 111


def test_kmeans_survives_duplicate_points_and_k_equal_n():
    x = torch.ones(20, 4)
    fit = fit_kmeans(x, 5, seed=0)
    assert torch.isfinite(fit.centroids).all() and fit.labels.shape == (20,)
    y = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    fit = fit_kmeans(y, 6, seed=0)
    assert sorted(fit.labels.tolist()) == list(range(6)) and fit.inertia < 1e-6


def test_fit_kmeans_on_sample_then_assigns_all_rows():
    x = torch.from_numpy(clustered(n=500))
    fit = fit_kmeans(x, 12, seed=0, sample_size=100)
    assert fit.labels.shape == (500,) and len(fit.labels.unique()) == 12


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread, and do not stall when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_rqvae_trains_and_encodes(one_thread):
    x = clustered(n=256)
    quantizer = get_quantizer("rqvae", config())
    codes = quantizer.fit_encode(x)
    history = quantizer.loss_history
    assert len(history) == 40 and history[-1] < 0.7 * history[0]
    assert codes.shape == (256, 3) and codes.dtype == np.int64 and codes.max() < 8
    assert len(np.unique(codes[:, 0])) > 1
    np.testing.assert_array_equal(codes, get_quantizer("rqvae", config()).fit_encode(x))
    assert quantizer.last_level_distances(np.arange(5)).shape == (5, 8)


def test_cascade_takes_the_first_level_from_the_cf_embedding():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 50)
    cf = np.eye(4, dtype=np.float32)[groups] + 0.01 * rng.normal(size=(200, 4)).astype(np.float32)
    text = clustered(n=200, seed=3)  # unrelated to the CF groups
    quantizer = CascadeQuantizer(config(codebook_size=4))
    codes = quantizer.fit_encode(text, cf)
    assert codes.shape == (200, 3) and quantizer.codebook_sizes == [4, 4, 4]
    first = codes[:, 0]
    for g in range(4):  # each CF group is exactly one first-level code
        assert len(np.unique(first[groups == g])) == 1
    assert len(np.unique(first)) == 4
    text_only = get_quantizer("rkmeans", config(codebook_size=4)).fit_encode(text)
    assert not np.array_equal(text_only[:, 0], first)
    assert quantizer.last_level_distances(np.arange(3)).shape == (3, 4)
    with pytest.raises(DataError, match="CF embeddings"):
        quantizer.fit_encode(text, cf[:10])


def test_codebooks_are_clamped_to_the_catalog_with_a_warning(caplog):
    x = clustered(n=20)
    quantizer = get_quantizer("rkmeans", config(codebook_size=64))
    with caplog.at_level(logging.WARNING):
        codes = quantizer.fit_encode(x)
    assert quantizer.codebook_sizes == [20, 20, 20] and codes.max() < 20
    assert "clamped to 20" in caplog.text


def test_codebook_larger_than_catalog_errors_without_clamping():
    with pytest.raises(ConfigError, match=r"codebook_size=64 .*catalog \(20 items\).*at most 20"):
        get_quantizer("rkmeans", config(codebook_size=64, clamp_codebooks=False)).fit_encode(clustered(n=20))


def test_unknown_quantizer_lists_the_valid_names():
    with pytest.raises(ConfigError, match="unknown quantizer 'faiss'") as err:
        get_quantizer("faiss", config())
    for name in QUANTIZERS:
        assert name in str(err.value)


def test_bad_embeddings_and_config_values_error_clearly():
    quantizer = get_quantizer("rkmeans", config())
    with pytest.raises(DataError, match="NaN"):
        quantizer.fit_encode(np.full((10, 4), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="shape"):
        quantizer.fit_encode(np.zeros(10, dtype=np.float32))
    with pytest.raises(ConfigError, match="collision='drop'"):
        SIDConfig(collision="drop")
    with pytest.raises(ConfigError, match="cf_mode='cascade' needs"):
        SIDConfig(cf_mode="cascade")
    with pytest.raises(ConfigError, match="num_levels=0"):
        SIDConfig(num_levels=0)
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="device"):
        resolve_device("nonsense")
