"""Ratings in prepared data: the liked / neutral / disliked rule, splits that carry ratings, the manifest."""

from __future__ import annotations

import json

import pytest

from rlrec.data.config import PrepareConfig
from rlrec.data.feedback import FeedbackRule, rating_summary, user_item_ratings
from rlrec.data.filtering import group_by_user
from rlrec.data.pipeline import process_raw
from rlrec.data.raw import Interaction
from rlrec.data.schema import PreparedDataset
from rlrec.data.split import hold_out_items, leave_one_out
from rlrec.data.synthetic import synthetic_dataset, synthetic_raw
from rlrec.utils.errors import ConfigError, DataError


def test_rule_labels_by_threshold():
    rule = FeedbackRule()
    assert [rule.label(r) for r in (5, 4, 3.5, 3, 2.5, 2, 1, None)] == \
        ["liked", "liked", "neutral", "neutral", "neutral", "disliked", "disliked", None]
    ten = FeedbackRule(liked_threshold=8, disliked_threshold=4)
    assert [ten.label(r) for r in (8, 7, 4)] == ["liked", "neutral", "disliked"]
    with pytest.raises(ConfigError, match="must be below liked_threshold"):
        FeedbackRule(liked_threshold=3, disliked_threshold=3)
    with pytest.raises(ConfigError, match="prepare: disliked_threshold"):
        PrepareConfig(liked_threshold=2, disliked_threshold=2)


def test_leave_one_out_carries_ratings_beside_items():
    log = [Interaction("u", f"i{t}", t, float(t % 5 + 1)) for t in range(6)]  # ratings 1..5, 1
    splits = leave_one_out(group_by_user(log), history_cut=2)
    assert [(ex.history, ex.history_ratings, ex.target, ex.rating) for ex in splits.train] == [
        (["i0"], [1.0], "i1", 2.0), (["i0", "i1"], [1.0, 2.0], "i2", 3.0), (["i1", "i2"], [2.0, 3.0], "i3", 4.0)]
    assert (splits.valid[0].history_ratings, splits.valid[0].rating) == ([3.0, 4.0], 5.0)
    assert (splits.test[0].history_ratings, splits.test[0].rating) == ([4.0, 5.0], 1.0)
    # A user with some events unrated keeps None in their places; a user with none has no ratings at all.
    mixed = [Interaction("m", "a", 1, 5.0), Interaction("m", "b", 2), Interaction("m", "c", 3, 1.0),
             Interaction("n", "a", 1), Interaction("n", "b", 2), Interaction("n", "c", 3)]
    splits = leave_one_out(group_by_user(mixed), history_cut=5)
    assert (splits.test[0].history_ratings, splits.test[0].rating) == ([5.0, None], 1.0)
    assert (splits.test[1].history_ratings, splits.test[1].rating) == (None, None)


def test_manifest_counts_each_rated_event_once_and_labels_targets():
    data = process_raw(synthetic_raw(60, 80, seed=3), PrepareConfig(output_dir="<memory>"))
    ratings = data.manifest["ratings"]
    assert ratings["liked_threshold"] == 4.0 and ratings["disliked_threshold"] == 2.0
    assert sum(ratings["counts"].values()) == data.manifest["counts"]["interactions"]
    assert set(ratings["counts"]) <= {"1", "2", "3", "4", "5"}
    for split in ("train", "valid", "test"):
        labels = [FeedbackRule().label(ex.rating) for ex in data.split(split)]
        assert ratings["targets"][split] == {name: labels.count(name) for name in ("liked", "neutral", "disliked")} \
            | {"unrated": 0}
    assert data.feedback() == FeedbackRule()
    custom = process_raw(synthetic_raw(60, 80, seed=3),
                         PrepareConfig(output_dir="<memory>", liked_threshold=5, disliked_threshold=1))
    assert custom.feedback() == FeedbackRule(5.0, 1.0)
    assert custom.manifest["ratings"]["targets"]["test"]["liked"] == sum(ex.rating == 5 for ex in custom.test)


def test_rating_summary_of_unrated_examples_is_none():
    data = synthetic_dataset(30, 40, seed=1)
    for ex in data.test:
        ex.rating, ex.history_ratings = None, None
    assert rating_summary(FeedbackRule(), {"test": data.test}) is None


def test_ratings_round_trip_and_old_folders_still_load(tmp_path):
    data = synthetic_dataset(30, 40, seed=1)
    (tmp_path / "new").mkdir()
    data.save(tmp_path / "new")
    loaded = PreparedDataset.load(tmp_path / "new")
    assert [(ex.rating, ex.history_ratings) for ex in loaded.test] == \
        [(ex.rating, ex.history_ratings) for ex in data.test]
    assert loaded.feedback() == FeedbackRule()

    old = tmp_path / "old"  # a folder prepared before ratings were kept
    old.mkdir()
    data.save(old)
    for name in ("train", "valid", "test"):
        rows = [json.loads(line) for line in (old / f"{name}.jsonl").read_text().splitlines()]
        (old / f"{name}.jsonl").write_text("".join(
            json.dumps({k: v for k, v in row.items() if k not in ("rating", "history_ratings")}) + "\n"
            for row in rows))
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["ratings"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    loaded = PreparedDataset.load(old)
    assert loaded.feedback() is None and all(ex.rating is None for ex in loaded.test)


@pytest.mark.parametrize(("change", "match"), [
    ({"history_ratings": [5]}, r"test\.jsonl: line 2: history_ratings has 1 entries but history has"),
    ({"rating": "good"}, r"test\.jsonl: line 2: .*rating \(number\)"),
])
def test_bad_ratings_name_file_and_line(tmp_path, change, match):
    data = synthetic_dataset(30, 40, seed=1)
    data.save(tmp_path)
    lines = (tmp_path / "test.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    assert len(row["history"]) > 1
    lines[1] = json.dumps({**row, **change})
    (tmp_path / "test.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=match):
        PreparedDataset.load(tmp_path)


def test_hold_out_cuts_ratings_with_their_items():
    data = synthetic_dataset(40, 60, seed=2)
    kept, held_out, _ = hold_out_items(data.train, data.items, 0.2, seed=0)
    for ex in kept:
        assert len(ex.history_ratings) == len(ex.history)
        assert not set(ex.history) & held_out


def test_user_item_ratings_reads_targets_and_histories():
    data = synthetic_dataset(30, 40, seed=1)
    ratings = user_item_ratings(data.train)
    ex = data.train[0]
    assert ratings[ex.user_id][ex.history[0]] == ex.history_ratings[0]
    assert ratings[ex.user_id][ex.target] == ex.rating
    assert data.valid[0].target not in ratings[data.valid[0].user_id]  # valid and test stay out of it
