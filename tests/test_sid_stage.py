"""`rlrec sid` end to end on a tiny prepared dataset, with the text embedder replaced by a stub."""

import json
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlrec.data.schema import Example, Item, PreparedDataset
from rlrec.scripts import sid as sid_stage
from rlrec.sid.config import SIDConfig
from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
GENRES = ["Comedy", "Drama", "Horror", "Sci-Fi", "Western", "Musical"]


def tiny_dataset(folder: Path, n_items: int = 60, duplicate_texts: bool = False) -> Path:
    items = {}
    for i in range(n_items):
        genre = GENRES[i % len(GENRES)]
        title = "Same Film" if duplicate_texts and i < 4 else f"Film {i}"
        items[str(i)] = Item(
            item_id=str(i), title=title, text=f"{title}. Genres: {genre}", attributes={"genres": [genre]}
        )
    ids = list(items)
    train = [
        Example(user_id=f"u{u}", history=ids[u : u + 3], target=ids[u + 3], timestamp=u) for u in range(20)
    ]
    valid = [Example(user_id="u0", history=ids[:4], target=ids[4], timestamp=99, cold=False)]
    dataset = PreparedDataset(
        items=items, train=train, valid=valid, test=list(valid), manifest={"stage": "prepare"}
    )
    folder.mkdir(parents=True)
    dataset.save(folder)
    return folder


def fake_embed(config, texts, device):
    """Deterministic stand-in for the sentence-transformer: items of one genre lie close together."""
    rng = np.random.default_rng(0)
    centres = {g: rng.normal(size=16) for g in GENRES}
    out = []
    for text in texts:
        genre = text.rsplit(": ", 1)[1]
        noise = np.random.default_rng(zlib.crc32(text.encode())).normal(size=16)
        out.append(centres[genre] + 0.3 * noise)
    x = np.asarray(out, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def stage(tmp_path, monkeypatch):
    monkeypatch.setattr(sid_stage, "embed_items", fake_embed)
    data = tiny_dataset(tmp_path / "data")

    def run(**overrides):
        fields = dict(
            dataset_dir=str(data),
            output_dir=str(tmp_path / "sid"),
            num_levels=2,
            codebook_size=8,
            device="cpu",
            seed=0,
        )
        fields.update(overrides)
        return sid_stage.main(SIDConfig(**fields))

    return run


def test_sid_stage_writes_index_and_manifest(stage, tmp_path, capsys):
    index = stage(collision="append_level")
    out = tmp_path / "sid"
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "item_embeddings.npy", "manifest.json"]
    loaded = SIDIndex.load(out)
    # The text embeddings the codes were quantised from stay with the index (for `semantic_cosine`).
    texts = PreparedDataset.load(tmp_path / "data").item_texts()[1]
    np.testing.assert_allclose(loaded.embeddings, fake_embed(None, texts, "cpu"), atol=2e-3)
    assert loaded.item_ids == [str(i) for i in range(60)] and loaded.sid("7") == index.sid("7")
    assert loaded.parse(loaded.sid("42")) == "42"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "sid" and manifest["num_items"] == 60
    assert manifest["config"]["codebook_size"] == 8 and manifest["dataset_dir"] == str(tmp_path / "data")
    quality = manifest["quality"]
    assert {"collision_rate", "colliding_groups", "levels", "items_per_leaf", "resolution"} <= set(quality)
    assert len(quality["levels"]) == 2 and quality["resolution"]["strategy"] == "append_level"
    assert loaded.num_levels == 2 + (quality["resolution"]["extra_level_size"] is not None)
    printed = capsys.readouterr().out
    assert "collision rate" in printed and "perplexity" in printed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_sid_stage_reassign_keeps_two_levels(stage):
    index = stage(collision="reassign", quantizer="rkmeans_balanced")
    assert index.num_levels == 2 and len(set(map(index.sid, index.item_ids))) == 60


def test_sid_stage_failure_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(sid_stage, "embed_items", fake_embed)
    data = tiny_dataset(tmp_path / "data", duplicate_texts=True)  # identical texts must collide
    config = SIDConfig(
        dataset_dir=str(data),
        output_dir=str(tmp_path / "sid"),
        num_levels=2,
        codebook_size=8,
        device="cpu",
        collision="none",
    )
    with pytest.raises(ConfigError, match="collision=none"):
        sid_stage.main(config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_sid_stage_unknown_quantizer_fails_before_reading_anything(tmp_path):
    config = SIDConfig(
        dataset_dir=str(tmp_path / "missing"), output_dir=str(tmp_path / "sid"), quantizer="pq"
    )
    with pytest.raises(ConfigError, match="unknown quantizer 'pq'"):
        sid_stage.main(config)


@pytest.mark.parametrize("mode", ["concat", "cascade"])
def test_sid_stage_with_behavioural_embeddings(stage, monkeypatch, mode):
    calls = {}

    def behavioural_embeddings(dataset, item_ids, method, dim, seed):
        calls["cf"] = (len(item_ids), method, dim)
        x = np.random.default_rng(seed).normal(size=(len(item_ids), dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def mix_embeddings(text, cf, cf_weight):
        calls["mix"] = cf_weight
        return np.concatenate([text, cf_weight * cf], axis=1)

    fake = types.ModuleType("rlrec.sid.cf")
    fake.behavioural_embeddings, fake.mix_embeddings = behavioural_embeddings, mix_embeddings
    monkeypatch.setitem(sys.modules, "rlrec.sid.cf", fake)
    index = stage(cf_embedding="cooccurrence", cf_mode=mode, cf_dim=8, collision="reassign")
    assert calls["cf"] == (60, "cooccurrence", 8)
    assert ("mix" in calls) == (mode == "concat")
    assert len(set(map(index.sid, index.item_ids))) == 60


def test_recipe_parses_into_a_config():
    (config,) = sid_stage.make_parser().parse_args_and_config(
        ["--config", str(ROOT / "recipes" / "ml-100k" / "sid.yaml"), "--seed", "7"]
    )
    assert isinstance(config, SIDConfig) and config.seed == 7  # the flag over the recipe
    recipe = yaml.safe_load((ROOT / "recipes" / "ml-100k" / "sid.yaml").read_text())
    assert recipe.get("seed") != 7
    for name, value in recipe.items():  # every other value as the recipe wrote it, whatever it is tuned to
        if name != "seed":
            assert getattr(config, name) == value, name


@pytest.mark.parametrize("use_cache", [True, False])
def test_embedding_cache_switch_reaches_the_embedder(monkeypatch, tmp_path, use_cache):
    """`embedding_cache: false` must stop the embedder from reading or writing its on-disk cache."""
    import rlrec.sid.embeddings as embeddings

    seen = {}

    def spy(texts, **kwargs):
        seen.update(kwargs)
        return np.zeros((len(texts), 4), dtype=np.float32)

    monkeypatch.setattr(embeddings, "embed_texts", spy)
    config = SIDConfig(embedding_cache=use_cache, embedding_cache_dir=str(tmp_path / "cache"), device="cpu")
    sid_stage.embed_items(config, ["a", "b"], "cpu")
    assert seen["use_cache"] is use_cache
    assert seen["cache_dir"] == str(tmp_path / "cache")
