"""Text embeddings: shape and norms, the on-disk cache (hits, partial reuse, atomic shards), bad models."""

import numpy as np
import pytest

from rlrec.sid import embeddings
from rlrec.sid.embeddings import EmbeddingCache, embed_texts, model_key, text_key
from rlrec.utils.assets import minilm_model_dir
from rlrec.utils.errors import ConfigError, DataError


class FakeModel:
    """Stands in for a SentenceTransformer: a fixed vector per text, and a record of what it embedded."""

    dim = 8

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts, **kwargs):
        self.encoded += texts
        rows = [np.random.default_rng(sum(t.encode())).normal(size=self.dim) + 1.0 for t in texts]
        return np.array(rows, dtype=np.float32)


@pytest.fixture
def fake(monkeypatch):
    """Replace model loading by a FakeModel; `fake.loads` counts the loads."""
    model = FakeModel()
    model.loads = 0

    def load_model(model_dir, device):
        model.loads += 1
        return model

    monkeypatch.setattr(embeddings, "load_model", load_model)
    return model


def test_real_minilm_vectors_are_normalised_and_meaningful(tmp_path):
    texts = ["red ballpoint pen", "blue ballpoint pen", "oak office desk", "red ballpoint pen"]
    x = embed_texts(texts, cache_dir=tmp_path, show_progress=False, device="cpu")
    assert x.shape == (4, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x[0], x[3])
    assert x[0] @ x[1] > x[0] @ x[2]
    # The second call is served from the cache and gives the same vectors.
    np.testing.assert_allclose(embed_texts(texts, cache_dir=tmp_path, show_progress=False), x, atol=1e-6)


def test_cache_hit_loads_no_model(tmp_path, fake):
    texts = ["a", "b", "c"]
    first = embed_texts(texts, cache_dir=tmp_path, show_progress=False)
    assert fake.loads == 1 and sorted(fake.encoded) == texts
    again = embed_texts(list(reversed(texts)), cache_dir=tmp_path, show_progress=False)
    assert fake.loads == 1 and len(fake.encoded) == 3
    np.testing.assert_array_equal(again, first[::-1])


def test_partial_cache_reuse_embeds_only_new_texts(tmp_path, fake):
    embed_texts(["a", "b"], cache_dir=tmp_path, show_progress=False)
    fake.encoded.clear()
    mixed = embed_texts(["b", "c", "c", "a"], cache_dir=tmp_path, show_progress=False)
    assert fake.encoded == ["c"]  # "c" twice in the input, embedded once
    fresh = embed_texts(["b", "c", "c", "a"], use_cache=False, show_progress=False)
    np.testing.assert_allclose(mixed, fresh, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(mixed, axis=1), 1.0, atol=1e-6)


def test_cache_root_from_env_and_use_cache_false(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("RLREC_CACHE", str(tmp_path / "root"))
    embed_texts(["x"], use_cache=False, show_progress=False)
    assert not (tmp_path / "root").exists()
    embed_texts(["x"], show_progress=False)
    (folder,) = (tmp_path / "root" / "embeddings").iterdir()
    assert folder.name.startswith("model-") and len(list(folder.glob("shard-*.npz"))) == 1
    assert not list(folder.glob(".*"))  # no temporary file left behind


def test_a_crash_mid_run_keeps_the_batches_already_embedded(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(embeddings, "FLUSH_EVERY", 2)
    encode = fake.encode

    def crash_on_d(texts, **kwargs):
        if "d" in texts:
            raise RuntimeError("out of memory")
        return encode(texts, **kwargs)

    monkeypatch.setattr(fake, "encode", crash_on_d)
    with pytest.raises(RuntimeError):  # texts go longest first, one per batch: aaa, bb, c, d
        embed_texts(["aaa", "bb", "c", "d"], cache_dir=tmp_path, batch_size=1, show_progress=False)
    monkeypatch.setattr(fake, "encode", encode)
    fake.encoded.clear()
    embed_texts(["aaa", "bb", "c", "d"], cache_dir=tmp_path, batch_size=1, show_progress=False)
    assert fake.encoded == ["c", "d"]  # aaa and bb were flushed before the crash


def test_keys_ending_in_nul_bytes_round_trip(tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = [b"\x00" * 16, b"k" * 15 + b"\x00", b"\x01" * 16]
    vectors = np.eye(3, dtype=np.float32)
    cache.add(keys, vectors)
    found = cache.lookup(keys)
    assert set(found) == set(keys)
    np.testing.assert_array_equal(found[keys[1]], vectors[1])


def test_damaged_shards_and_temp_files_are_ignored(tmp_path, fake):
    first = embed_texts(["a", "b"], cache_dir=tmp_path, show_progress=False)
    (folder,) = tmp_path.iterdir()
    (folder / "shard-0-bad.npz").write_bytes(b"not a zip file")  # e.g. written by a foreign tool
    (folder / ".shard-1.npz.123.tmp").write_bytes(b"half")  # a crash mid-write leaves only a temp file
    fake.encoded.clear()
    np.testing.assert_array_equal(embed_texts(["a", "b"], cache_dir=tmp_path, show_progress=False), first)
    assert fake.encoded == []


def test_many_shards_are_merged(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "MAX_SHARDS", 2)
    cache = EmbeddingCache(tmp_path)
    for i in range(3):
        cache.add([text_key(str(i))], np.full((1, 4), i, dtype=np.float32))
    assert len(cache.shards()) == 1
    found = cache.lookup([text_key(str(i)) for i in range(3)])
    assert [float(found[text_key(str(i))][0]) for i in range(3)] == [0.0, 1.0, 2.0]


def test_model_key_follows_content_not_location(tmp_path):
    a, b = tmp_path / "a" / "enc", tmp_path / "b" / "enc"
    for folder in (a, b):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"hidden_size": 8}')
    assert model_key(a) == model_key(b)
    (b / "config.json").write_text('{"hidden_size": 16}')
    assert model_key(a) != model_key(b)
    assert model_key(minilm_model_dir()) == model_key(minilm_model_dir())


def test_bad_model_paths_raise_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no-such-model"):
        embed_texts(["x"], model_path=tmp_path / "no-such-model", use_cache=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="neither modules.json"):
        embed_texts(["x"], model_path=empty, use_cache=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="could not be loaded"):
        embed_texts(["x"], model_path=broken, use_cache=False, show_progress=False)


def test_non_string_text_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"texts\[1\]"):
        embed_texts(["ok", 3], cache_dir=tmp_path)
