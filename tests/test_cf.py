"""Behavioural item embeddings (co-occurrence PPMI-SVD, SASRec) and their mix with text embeddings."""

import math

import numpy as np
import pytest

from rlrec.baselines import SASRecConfig
from rlrec.data.schema import Example, Item, PreparedDataset
from rlrec.sid.cf import behavioural_embeddings, cooccurrence_embeddings, mix_embeddings
from rlrec.utils.errors import ConfigError, DataError

CLUSTERS = [[f"c{c}_{i}" for i in range(5)] for c in range(4)]


def clustered_dataset(num_users: int = 80, length: int = 8, seed: int = 0) -> PreparedDataset:
    """Each user consumes items of one cluster only; `cold` is in the catalog but never in train."""
    rng = np.random.default_rng(seed)
    ids = [item for cluster in CLUSTERS for item in cluster] + ["cold"]
    items = {i: Item(i, i, i) for i in ids}
    train = []
    for u in range(num_users):
        cluster = CLUSTERS[u % len(CLUSTERS)]
        seq = [cluster[j] for j in rng.integers(0, len(cluster), size=length)]
        train += [Example(f"u{u}", seq[:i], seq[i]) for i in range(1, length)]
    return PreparedDataset(items=items, train=train, valid=[], test=[])


def cosines(x: np.ndarray) -> np.ndarray:
    return x @ x.T


def test_cooccurring_items_are_closer_than_items_that_never_meet():
    data = clustered_dataset()
    ids = [item for cluster in CLUSTERS for item in cluster]
    x = behavioural_embeddings(data, ids, dim=8)
    assert x.shape == (20, 8) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    sim = cosines(x)
    same = np.equal.outer(np.arange(20) // 5, np.arange(20) // 5) & ~np.eye(20, dtype=bool)
    other = ~np.equal.outer(np.arange(20) // 5, np.arange(20) // 5)
    assert sim[same].min() > sim[other].max() + 0.2


def test_cold_and_unknown_items_get_zero_rows():
    data = clustered_dataset()
    x = behavioural_embeddings(data, ["c0_0", "cold", "not-in-catalog", "c1_0"], dim=8)
    assert np.all(x[1:3] == 0) and np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x[[0, 3]], axis=1), 1.0, atol=1e-5)


def test_result_is_deterministic_and_follows_item_order():
    data = clustered_dataset()
    ids = ["c2_1", "c0_3", "c3_4", "cold"]
    a = behavioural_embeddings(data, ids, dim=6, seed=3)
    np.testing.assert_array_equal(a, behavioural_embeddings(data, ids, dim=6, seed=3))
    np.testing.assert_array_equal(behavioural_embeddings(data, ids[::-1], dim=6, seed=3), a[::-1])


def test_dim_larger_than_the_catalog_pads_with_zeros():
    items, table = cooccurrence_embeddings([["a", "b", "c"], ["b", "c"]], dim=10, window=2)
    assert items == ["a", "b", "c"] and table.shape == (3, 10)
    assert np.all(table[:, 2:] == 0) and np.isfinite(table).all()
    assert cooccurrence_embeddings([["a"]], dim=4)[1].tolist() == [[0.0] * 4]  # nothing co-occurs


def test_sparse_svd_path_matches_the_clusters(monkeypatch):
    import rlrec.sid.cf as cf

    monkeypatch.setattr(cf, "DENSE_SVD_MAX_ITEMS", 5)
    data = clustered_dataset()
    ids = [item for cluster in CLUSTERS for item in cluster]
    sim = cosines(behavioural_embeddings(data, ids, dim=4))
    assert sim[0, 1] > sim[0, 5] + 0.2


def test_sasrec_embeddings():
    data = clustered_dataset(num_users=16)
    config = SASRecConfig(hidden_size=16, num_layers=1, num_heads=1, max_len=8, epochs=2, device="cpu")
    x = behavioural_embeddings(data, ["c0_0", "cold", "c3_3"], method="sasrec", dim=16, sasrec_config=config)
    assert x.shape == (3, 16) and np.all(x[1] == 0)
    np.testing.assert_allclose(np.linalg.norm(x[[0, 2]], axis=1), 1.0, atol=1e-5)
    with pytest.raises(ConfigError, match="hidden_size=16 but dim=8"):
        behavioural_embeddings(data, ["c0_0"], method="sasrec", dim=8, sasrec_config=config)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="'svd'.*cooccurrence, sasrec"):
        behavioural_embeddings(clustered_dataset(num_users=4), ["c0_0"], method="svd")


def test_mix_weights_the_cosine_similarities():
    rng = np.random.default_rng(0)
    text, cf = rng.normal(size=(6, 5)), rng.normal(size=(6, 3))
    w = 0.3
    mixed = mix_embeddings(text, cf, w)
    assert mixed.shape == (6, 8) and mixed.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(mixed, axis=1), 1.0, atol=1e-5)
    t = text / np.linalg.norm(text, axis=1, keepdims=True)
    c = cf / np.linalg.norm(cf, axis=1, keepdims=True)
    np.testing.assert_allclose(mixed @ mixed.T, (1 - w) * t @ t.T + w * c @ c.T, atol=1e-5)
    np.testing.assert_allclose(mix_embeddings(text, cf, 0.0)[:, :5], t, atol=1e-6)
    assert np.all(mix_embeddings(text, cf, 1.0)[:, :5] == 0)
    cf[2] = 0  # a cold item: its row keeps the text part only
    np.testing.assert_allclose(np.linalg.norm(mix_embeddings(text, cf, w)[2]), math.sqrt(1 - w), atol=1e-6)


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan"), "0.5"])
def test_mix_rejects_bad_weights(weight):
    with pytest.raises(ConfigError, match="cf_weight"):
        mix_embeddings(np.ones((2, 3)), np.ones((2, 2)), weight)


def test_mix_rejects_mismatched_rows():
    with pytest.raises(DataError, match="3 text embeddings but 2 cf embeddings"):
        mix_embeddings(np.ones((3, 4)), np.ones((2, 4)), 0.5)
    with pytest.raises(DataError, match=r"shape \(4,\)"):
        mix_embeddings(np.ones((4, 4)), np.ones(4), 0.5)
