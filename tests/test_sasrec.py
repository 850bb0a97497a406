"""SASRec baseline: training sequences, learning a predictable pattern, determinism, scoring, save/load."""

import numpy as np
import pytest
import torch

from rlrec.baselines import SASRecConfig, SASRecModel, train_sasrec, train_sequences
from rlrec.baselines.sasrec import training_windows, valid_ndcg
from rlrec.data.schema import Example, Item, PreparedDataset
from rlrec.ranking import ScoreRanker
from rlrec.utils.errors import ConfigError, DataError

NUM_ITEMS = 12


def successor_dataset(num_users: int = 48, length: int = 8, max_history: int = 5) -> PreparedDataset:
    """Item i is always followed by item i+1 (mod NUM_ITEMS); splits as leave-one-out builds them."""
    items = {f"i{i}": Item(f"i{i}", f"item {i}", f"item {i}") for i in range(NUM_ITEMS + 1)}  # i12: cold
    train, valid, test = [], [], []
    for u in range(num_users):
        seq = [f"i{(u + t) % NUM_ITEMS}" for t in range(length)]
        for i in range(1, length - 2):
            train.append(Example(f"u{u}", seq[:i][-max_history:], seq[i]))
        valid.append(Example(f"u{u}", seq[:-2][-max_history:], seq[-2], cold=False))
        test.append(Example(f"u{u}", seq[:-1][-max_history:], seq[-1], cold=False))
    return PreparedDataset(items=items, train=train, valid=valid, test=test)


def tiny_config(**overrides) -> SASRecConfig:
    fields = dict(hidden_size=32, num_layers=1, num_heads=2, max_len=6, dropout=0.0, epochs=25, batch_size=16,
                  lr=1e-2, seed=0, device="cpu")
    return SASRecConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def trained() -> tuple[PreparedDataset, SASRecModel]:
    data = successor_dataset()
    return data, train_sasrec(data, tiny_config(), show_progress=False)


def test_train_sequences_chain_truncated_histories():
    examples = [Example("u", ["a"], "b"), Example("u", ["a", "b"], "c"), Example("u", ["b", "c"], "d"),
                Example("v", ["x"], "y"), Example("u", ["c", "d"], "e"), Example("u", ["q"], "r")]
    assert train_sequences(examples) == [["a", "b", "c", "d", "e"], ["x", "y"], ["q", "r"]]


def test_training_windows_cover_every_transition_once():
    inputs, targets = training_windows([[1, 2, 3, 4, 5, 6, 7], [8, 9]], max_len=3)
    assert inputs.tolist() == [[4, 5, 6], [1, 2, 3], [0, 0, 8]]
    assert targets.tolist() == [[5, 6, 7], [2, 3, 4], [0, 0, 9]]


def test_learns_a_successor_pattern(trained):
    data, model = trained
    losses = model.train_losses
    assert len(losses) == 25 and losses[-1] < 0.25 * losses[0]
    histories = [ex.history for ex in data.test]
    top1 = model.score(histories).argmax(dim=1).tolist()
    accuracy = np.mean([model.item_ids[j] == ex.target for j, ex in zip(top1, data.test, strict=True)])
    assert accuracy >= 0.9
    # Through the evaluation adapter, as the SFT stage uses it.
    ranked = ScoreRanker(model.score, model.item_ids, model=model).rank([["i3", "i4"]], k=1)
    assert [[item for item, _ in row] for row in ranked] == [["i5"]]


def test_scores_are_batched_and_robust(trained):
    _, model = trained
    histories = [["i1", "i2"], ["i5"], [], ["unknown", "i7"], ["i7"]] * 3
    scores = model.score(histories)
    assert scores.shape == (15, NUM_ITEMS + 1) and scores.device.type == "cpu"
    assert torch.isfinite(scores).all()
    torch.testing.assert_close(model.score(histories, batch_size=2), scores)
    assert torch.all(scores[2] == 0)  # no known item: no preference
    torch.testing.assert_close(scores[3], scores[4])  # unknown ids are skipped
    long = [f"i{t % NUM_ITEMS}" for t in range(20)]  # longer than max_len: the last 6 are read
    torch.testing.assert_close(model.score([long]), model.score([long[-6:]]))


def test_item_embeddings_follow_the_requested_order(trained):
    _, model = trained
    table = model.item_embeddings()
    assert table.shape == (NUM_ITEMS + 1, 32) and table.dtype == np.float32
    np.testing.assert_array_equal(model.item_embeddings(["i3", "i1"]), table[[3, 1]])
    with pytest.raises(DataError, match="'nope'"):
        model.item_embeddings(["i1", "nope"])


def test_training_is_deterministic_for_a_seed():
    data = successor_dataset(num_users=12)
    config = tiny_config(epochs=2, dropout=0.2)
    histories = [ex.history for ex in data.test]
    a = train_sasrec(data, config, show_progress=False).score(histories)
    b = train_sasrec(data, config, show_progress=False).score(histories)
    c = train_sasrec(data, tiny_config(epochs=2, dropout=0.2, seed=1), show_progress=False).score(histories)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_save_load_round_trip(trained, tmp_path):
    data, model = trained
    model.save(tmp_path / "sasrec")
    loaded = SASRecModel.load(tmp_path / "sasrec", device="cpu")
    assert loaded.item_ids == model.item_ids and loaded.config == model.config
    assert loaded.train_losses == pytest.approx(model.train_losses)
    histories = [ex.history for ex in data.test]
    torch.testing.assert_close(loaded.score(histories), model.score(histories), rtol=0, atol=0)
    with pytest.raises(DataError, match="missing sasrec.json"):
        SASRecModel.load(tmp_path)


def test_config_validation():
    with pytest.raises(ConfigError, match="not divisible by num_heads"):
        SASRecConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ConfigError, match="dropout"):
        SASRecConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="epochs"):
        SASRecConfig(epochs=0)
    with pytest.raises(ConfigError, match="device='tpu9'"):
        train_sasrec(successor_dataset(num_users=2), tiny_config(device="tpu9"), show_progress=False)


def test_a_dataset_folder_keeps_its_trained_sasrec_for_the_next_stage(tmp_path, monkeypatch):
    """The second stage asking for the same SASRec loads it from the dataset folder: same weights, no training;
    other settings (or other data) get their own model."""
    import rlrec.baselines.sasrec as sasrec

    (tmp_path / "data").mkdir()
    successor_dataset().save(tmp_path / "data")
    data = PreparedDataset.load(tmp_path / "data")
    first = train_sasrec(data, tiny_config(epochs=2), show_progress=False)
    folder = sasrec.cache_folder(data, tiny_config(epochs=2), torch.device("cpu"))
    assert folder is not None and folder.parent == tmp_path / "data" / sasrec.CACHE_DIR and folder.is_dir()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(sasrec, "_train", no_training)
    again = train_sasrec(PreparedDataset.load(tmp_path / "data"), tiny_config(epochs=2), show_progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values(),
                                                 strict=True))
    assert again.train_losses == first.train_losses
    assert PreparedDataset.load(tmp_path / "data").train == data.train  # the dataset still reads as before
    with pytest.raises(AssertionError, match="trained again"):
        train_sasrec(data, tiny_config(epochs=3), show_progress=False)
    with pytest.raises(AssertionError, match="trained again"):
        train_sasrec(data, tiny_config(epochs=2), show_progress=False, cache=False)


def test_valid_ndcg_ranks_the_target_among_the_whole_catalog(trained):
    _, model = trained
    histories = [["i0", "i1"], ["i3"], ["i5"]]
    scores = model.score(histories)
    targets = ["i2", model.item_ids[int(scores[1].argsort(descending=True)[3])], "unknown"]
    # the first target is the successor (rank 0: gain 1), the second sits 4th (gain 1/log2(5)), the third is unknown
    expected = (1.0 + 1.0 / np.log2(5)) / 3
    assert valid_ndcg(model, histories, targets, k=10) == pytest.approx(expected, rel=1e-6)
    assert valid_ndcg(model, histories, targets, k=3) == pytest.approx(1.0 / 3, rel=1e-6)
    assert valid_ndcg(model, [], []) == 0.0


def test_valid_patience_chooses_the_epoch_on_valid_and_keeps_its_weights():
    data = successor_dataset()
    model = train_sasrec(data, tiny_config(epochs=40, lr=3e-2, valid_patience=2), show_progress=False, cache=False)
    curve = model.valid_ndcg
    best = int(np.argmax(curve)) + 1
    assert model.best_epoch == best
    assert len(model.train_losses) == len(curve)
    assert len(curve) == 40 or len(curve) == best + 2  # stopped two epochs after the best, or ran out
    assert all(score <= curve[best - 1] for score in curve[best:])
    # the model holds the chosen epoch's weights, not the last epoch's
    histories, targets = [ex.history for ex in data.valid], [ex.target for ex in data.valid]
    assert valid_ndcg(model, histories, targets) == pytest.approx(curve[best - 1], abs=1e-6)
    fixed = train_sasrec(data, tiny_config(epochs=3), show_progress=False, cache=False)
    assert fixed.valid_ndcg == [] and fixed.best_epoch is None and len(fixed.train_losses) == 3


def test_valid_patience_is_recorded_in_the_saved_model(tmp_path):
    data = successor_dataset(num_users=16)
    model = train_sasrec(data, tiny_config(epochs=4, valid_patience=1), show_progress=False, cache=False)
    model.save(tmp_path / "m")
    loaded = SASRecModel.load(tmp_path / "m", device="cpu")
    assert loaded.valid_ndcg == model.valid_ndcg and loaded.best_epoch == model.best_epoch
    assert loaded.config.valid_patience == 1
    with pytest.raises(ConfigError, match="valid_patience"):
        SASRecConfig(valid_patience=-1)


def _liked_and_disliked_successors(num_users: int = 64, length: int = 10) -> PreparedDataset:
    """After item i the user goes to i+1 and likes it (5 stars) or to i+5 and dislikes it (1 star), at random."""
    import random

    rng = random.Random(0)
    items = {f"i{i}": Item(f"i{i}", f"item {i}", f"item {i}") for i in range(NUM_ITEMS)}
    train, valid, test = [], [], []
    for u in range(num_users):
        seq, ratings = [u % NUM_ITEMS], [5.0]
        for _ in range(length - 1):
            liked = rng.random() < 0.5
            seq.append((seq[-1] + (1 if liked else 5)) % NUM_ITEMS)
            ratings.append(5.0 if liked else 1.0)
        names = [f"i{i}" for i in seq]
        for i in range(1, length - 2):
            train.append(Example(f"u{u}", names[:i], names[i], rating=ratings[i], history_ratings=ratings[:i]))
        valid.append(Example(f"u{u}", names[:-2], names[-2], rating=ratings[-2], history_ratings=ratings[:-2]))
        test.append(Example(f"u{u}", names[:-1], names[-1], rating=ratings[-1], history_ratings=ratings[:-1]))
    manifest = {"ratings": {"liked_threshold": 4.0, "disliked_threshold": 2.0}}
    return PreparedDataset(items=items, train=train, valid=valid, test=test, manifest=manifest)


def test_sasrec_on_liked_targets_only_learns_the_liked_successor():
    data = _liked_and_disliked_successors()
    histories = [ex.history for ex in data.test]

    def prefers_liked(model: SASRecModel) -> float:
        scores = model.score(histories)
        column = {item: j for j, item in enumerate(model.item_ids)}
        last = [int(h[-1][1:]) for h in histories]
        good = [scores[r, column[f"i{(i + 1) % NUM_ITEMS}"]] for r, i in enumerate(last)]
        bad = [scores[r, column[f"i{(i + 5) % NUM_ITEMS}"]] for r, i in enumerate(last)]
        return float(np.mean([g > b for g, b in zip(good, bad, strict=True)]))

    liked = train_sasrec(data, tiny_config(liked_targets_only=True), show_progress=False)
    plain = train_sasrec(data, tiny_config(), show_progress=False)
    assert prefers_liked(liked) >= 0.95 and prefers_liked(liked) > prefers_liked(plain)
    unrated = PreparedDataset(items=data.items, train=data.train, valid=data.valid, test=data.test)
    with pytest.raises(DataError, match="liked_targets_only needs rated data"):
        train_sasrec(unrated, tiny_config(liked_targets_only=True), show_progress=False)


def test_rated_training_windows_put_pad_where_no_target_is_learned():
    inputs, targets = training_windows([[1, 2, 3, 4]], max_len=3, target_sequences=[[1, 0, 3, 0]])
    assert inputs.tolist() == [[1, 2, 3]] and targets.tolist() == [[0, 3, 0]]
