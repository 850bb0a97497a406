"""Filtering (time window, duplicates, iterative k-core), leave-one-out splits and cold flags."""

from __future__ import annotations

from collections import Counter

import pytest

from rlrec.data.config import PrepareConfig
from rlrec.data.filtering import dedupe_consecutive, group_by_user, in_time_window, k_core
from rlrec.data.pipeline import process_raw
from rlrec.data.raw import Interaction, RawData
from rlrec.data.schema import Example, Item
from rlrec.data.split import leave_one_out, mark_cold, train_items
from rlrec.data.synthetic import synthetic_dataset, synthetic_raw
from rlrec.utils.errors import ConfigError, DataError


def _log(*events: tuple[str, str, int]) -> list[Interaction]:
    return [Interaction(u, i, t) for u, i, t in events]


def _raw(interactions: list[Interaction]) -> RawData:
    items = {x.item_id: Item(x.item_id, f"title {x.item_id}", f"title {x.item_id}") for x in interactions}
    counts = {"users": len({x.user_id for x in interactions}), "items": len(items),
              "interactions": len(interactions), "catalog_items": len(items)}
    return RawData(items=items, interactions=interactions, raw_counts=counts, files=["<test>"])


def test_time_window_is_inclusive():
    log = _log(("u", "a", 5), ("u", "b", 10), ("u", "c", 15), ("u", "d", 20))
    kept, dropped = in_time_window(log, 10, 15)
    assert [x.item_id for x in kept] == ["b", "c"] and dropped == 2
    assert in_time_window(log, None, None) == (log, 0)
    assert [x.item_id for x in in_time_window(log, 11, None)[0]] == ["c", "d"]


def test_group_by_user_sorts_by_time_and_keeps_file_order_on_ties():
    log = _log(("u", "c", 3), ("v", "x", 1), ("u", "a", 1), ("u", "b2", 2), ("u", "b1", 2))
    seqs = group_by_user(log)
    assert list(seqs) == ["u", "v"]
    assert [x.item_id for x in seqs["u"]] == ["a", "b2", "b1", "c"]


def test_dedupe_consecutive_only_collapses_runs():
    seqs = group_by_user(_log(("u", "a", 1), ("u", "a", 2), ("u", "b", 3), ("u", "a", 4), ("u", "a", 5)))
    out, dropped = dedupe_consecutive(seqs)
    assert [x.item_id for x in out["u"]] == ["a", "b", "a"] and dropped == 2
    assert [x.timestamp for x in out["u"]] == [1, 3, 4]  # the first event of a run is kept


def test_k_core_is_iterative():
    # k=2. Pass 1 drops item "rare" (seen once), which leaves u3 with one interaction: u3 goes.
    # Only then does item "c" fall to one interaction (u2's), so pass 2 drops it, and u2 with it.
    # One pass would have stopped with u2 and item "c" still in, under k.
    log = _log(
        ("u1", "a", 1), ("u1", "b", 2), ("u1", "a2", 3),
        ("u4", "a", 1), ("u4", "b", 2), ("u4", "a2", 3),
        ("u3", "rare", 1), ("u3", "c", 2),
        ("u2", "c", 1), ("u2", "b", 2),
    )
    result = k_core(group_by_user(log), user_k=2, item_k=2)
    assert set(result.sequences) == {"u1", "u4"}
    assert result.passes == 3  # two passes that remove something, one that confirms the fixed point
    assert (result.dropped_users, result.dropped_items, result.dropped_interactions) == (2, 2, 4)
    counts = Counter(x.item_id for s in result.sequences.values() for x in s)
    assert min(counts.values()) >= 2 and min(len(s) for s in result.sequences.values()) >= 2


def test_k_core_one_keeps_everything():
    seqs = group_by_user(_log(("u", "a", 1), ("v", "b", 1)))
    result = k_core(seqs, 1, 1)
    assert result.sequences == seqs and result.dropped_interactions == 0 and result.passes == 1


def test_leave_one_out_is_chronological_and_truncates():
    log = [Interaction("u", f"i{t}", t) for t in reversed(range(8))]  # given in reverse time order
    splits = leave_one_out(group_by_user(log), history_cut=3)
    assert [(ex.history, ex.target) for ex in splits.train] == [
        (["i0"], "i1"), (["i0", "i1"], "i2"), (["i0", "i1", "i2"], "i3"),
        (["i1", "i2", "i3"], "i4"), (["i2", "i3", "i4"], "i5"),
    ]
    assert (splits.valid[0].history, splits.valid[0].target) == (["i3", "i4", "i5"], "i6")
    assert (splits.test[0].history, splits.test[0].target) == (["i4", "i5", "i6"], "i7")
    assert splits.test[0].timestamp == 7 and splits.train[0].timestamp == 1


def test_leave_one_out_short_users():
    seqs = group_by_user(_log(("a", "x", 1), ("a", "y", 2), ("b", "x", 1), ("b", "y", 2), ("b", "z", 3)))
    splits = leave_one_out(seqs, history_cut=20)
    assert (splits.short_users, splits.short_user_interactions) == (1, 2)
    assert splits.train == []  # b has one training item: a history for valid, no train example
    assert (splits.valid[0].history, splits.valid[0].target) == (["x"], "y")
    assert (splits.test[0].history, splits.test[0].target) == (["x", "y"], "z")


def test_synthetic_split_has_no_leak_and_right_sizes():
    data = synthetic_dataset(150, 200, seed=3, history_cut=4)
    c = data.manifest["counts"]
    assert c["valid_examples"] == c["test_examples"] == c["users"] == len({ex.user_id for ex in data.test})
    assert c["train_examples"] == c["interactions"] - 3 * c["users"]  # n-3 train examples per user
    by_user: dict[str, list] = {}
    for ex in data.train:
        by_user.setdefault(ex.user_id, []).append(ex)
    for valid, test in zip(data.valid, data.test, strict=True):
        assert valid.user_id == test.user_id
        train = by_user.get(valid.user_id, [])
        seen = {i for ex in train for i in (*ex.history, ex.target)}
        assert valid.target not in seen and test.target not in seen  # no target leaks into train
        assert test.history[-1] == valid.target
        assert valid.timestamp <= test.timestamp
        assert all(ex.timestamp <= valid.timestamp for ex in train)
        assert len(valid.history) <= 4 and len(test.history) <= 4
    assert max(len(ex.history) for ex in data.train) == 4
    assert set(data.items) == {i for s in (data.train, data.valid, data.test) for ex in s
                               for i in (*ex.history, ex.target)}


def test_cold_flags():
    train_like = synthetic_dataset(60, 300, seed=4, user_k_core=1, item_k_core=1)
    warm = train_items(train_like.train)
    assert train_like.manifest["counts"]["cold_test_targets"] == sum(ex.cold for ex in train_like.test) > 0
    for ex in (*train_like.valid, *train_like.test):
        assert ex.cold == (ex.target not in warm)
    # By hand: only "a" and "b" occur in train examples.
    examples = [Example("u", ["a"], "b"), Example("u", ["a"], "z")]
    assert mark_cold(examples, {"a", "b"}) == 1 and [ex.cold for ex in examples] == [False, True]


def test_process_raw_counts_every_drop():
    config = PrepareConfig(output_dir="<mem>", user_k_core=3, item_k_core=2, min_timestamp=1_500_000_000)
    raw = synthetic_raw(120, 150, seed=5)
    raw.interactions.append(Interaction("u0", "i1", 10))  # before the window
    raw.raw_counts["interactions"] += 1
    data = process_raw(raw, config)
    c, d = data.manifest["counts"], data.manifest["dropped"]
    assert d["outside_time_window"] == 1
    assert c["raw_interactions"] - sum(v for k, v in d.items() if k in (
        "outside_time_window", "consecutive_duplicates", "k_core_interactions",
        "interactions_of_users_too_short")) == c["interactions"]
    assert c["users"] == len(data.test) and c["items"] == len(data.items)


def test_cold_item_hold_out_keeps_the_items_out_of_train():
    config = PrepareConfig(output_dir="<mem>", user_k_core=3, item_k_core=2, cold_item_fraction=0.1, seed=3)
    data = process_raw(synthetic_raw(120, 150, seed=5), config)
    baseline = process_raw(synthetic_raw(120, 150, seed=5), PrepareConfig(output_dir="<mem>", user_k_core=3,
                                                                           item_k_core=2))
    c = data.manifest["counts"]
    held_out = c["held_out_items"]
    assert held_out == round(0.1 * len(data.items)) and held_out > 0
    seen = train_items(data.train)
    cold_items = set(data.items) - seen
    assert len(cold_items) >= held_out  # the held-out items and nothing of train mentions them
    assert c["train_examples"] == len(baseline.train) - data.manifest["dropped"]["train_examples_of_held_out_items"]
    # Valid/test are untouched; every example targeting a held-out item is cold, and there are some.
    assert [ex.target for ex in data.test] == [ex.target for ex in baseline.test]
    assert all(ex.cold == (ex.target not in seen) for ex in data.test)
    assert c["cold_test_targets"] > baseline.manifest["counts"]["cold_test_targets"]
    # Deterministic for a seed, different for another.
    again = process_raw(synthetic_raw(120, 150, seed=5), config)
    assert [ex.to_json() for ex in again.train] == [ex.to_json() for ex in data.train]
    other = process_raw(synthetic_raw(120, 150, seed=5), PrepareConfig(output_dir="<mem>", user_k_core=3,
                                                                        item_k_core=2, cold_item_fraction=0.1, seed=4))
    assert set(other.items) - train_items(other.train) != cold_items


def test_everything_filtered_away_is_a_clear_error():
    raw = _raw(_log(("u", "a", 1), ("u", "b", 2), ("v", "c", 1)))
    with pytest.raises(DataError, match="empty histories after filtering"):
        process_raw(raw, PrepareConfig(output_dir="<mem>"))
    # k=1 keeps all, but no user has the 3 interactions a split needs.
    with pytest.raises(DataError, match="empty histories after filtering"):
        process_raw(raw, PrepareConfig(output_dir="<mem>", user_k_core=1, item_k_core=1))


@pytest.mark.parametrize("fields, match", [
    ({"source": "netflix"}, "`source` is 'netflix'; expected one of movielens"),
    ({"user_k_core": 0}, "`user_k_core` is 0; expected an integer >= 1"),
    ({"history_cut": -1}, "`history_cut`"),
    ({"source": "amazon2018"}, "`data_path` is required"),
    ({"min_timestamp": 5, "max_timestamp": 4}, "`min_timestamp` .* after `max_timestamp`"),
    ({"cold_item_fraction": 1.0}, "`cold_item_fraction` is 1.0; expected a number in"),
])
def test_config_validation(fields, match):
    with pytest.raises(ConfigError, match=match):
        PrepareConfig(**fields)
