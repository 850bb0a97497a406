"""The per-user top-K cache without a model: latest histories, resumable build, refresh, lookup; the catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from rlrec.data.schema import Example, Item, PreparedDataset
from rlrec.inference.catalog import Catalog
from rlrec.inference.topk_cache import (
    CACHE_FILE,
    PART_FILE,
    TopKCache,
    build_cache,
    latest_histories,
    read_histories_file,
    refresh_cache,
)
from rlrec.utils.errors import ConfigError, DataError


@dataclass
class _Rec:
    item_id: str
    title: str
    score: float


@dataclass
class _Result:
    items: list[_Rec]
    unknown: list[str] = field(default_factory=list)


class FakeRecommender:
    """Recommends items derived from the history (so a changed history changes the list); records its calls."""

    def __init__(self, fail_after: int | None = None, salt: str = "") -> None:
        self.calls: list[list[tuple[str, ...]]] = []
        self.fail_after = fail_after
        self.salt = salt

    def __call__(self, histories, k):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("killed")
        self.calls.append([tuple(h) for h in histories])
        return [_Result([_Rec(f"{self.salt}{h[-1] if h else 'none'}-{r}", f"t{r}", -float(r)) for r in range(k)])
                for h in histories]


def _histories(n: int = 23) -> dict[str, list[str]]:
    return {f"u{i}": [f"i{j}" for j in range(i % 5 + 1)] + [f"x{i}"] for i in range(n)}


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_latest_history_is_the_most_recent_example_plus_its_target():
    items = {f"i{k}": Item(f"i{k}", f"t{k}", f"t{k}") for k in range(6)}
    train = [Example("a", ["i0"], "i1", 1), Example("a", ["i0", "i1"], "i2", 2), Example("b", ["i3"], "i4", 1)]
    valid = [Example("a", ["i0", "i1", "i2"], "i3", 3)]
    test = [Example("a", ["i0", "i1", "i2", "i3"], "i4", 4)]
    histories = latest_histories(PreparedDataset(items, train, valid, test))
    assert histories == {"a": ["i0", "i1", "i2", "i3", "i4"], "b": ["i3", "i4"]}


def test_build_writes_every_user_once_and_the_lookup_returns_their_list(tmp_path):
    rec = FakeRecommender()
    manifest = build_cache(rec, _histories(), tmp_path, k=3, batch_size=5, settings={"model_path": "m"})
    assert manifest["status"] == "complete" and manifest["batches_done"] == 5 and manifest["users_done"] == 23
    assert not (tmp_path / PART_FILE).exists()
    rows = _lines(tmp_path / CACHE_FILE)
    assert sorted(r["user_id"] for r in rows) == sorted(_histories())
    cache = TopKCache.load(tmp_path)
    assert len(cache) == 23 and "u7" in cache and cache.get("nobody") is None
    top = cache.get("u7")
    assert [c.item_id for c in top] == ["x7-0", "x7-1", "x7-2"] and top[0].title == "t0" and top[0].score == 0.0
    with pytest.raises(ConfigError, match="already complete"):
        build_cache(rec, _histories(), tmp_path, k=3, batch_size=5, settings={"model_path": "m"})


def test_a_killed_build_resumes_without_recomputing_finished_batches(tmp_path):
    histories = _histories()
    with pytest.raises(RuntimeError, match="killed"):
        build_cache(FakeRecommender(fail_after=2), histories, tmp_path, k=2, batch_size=5)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "building" and manifest["batches_done"] == 2 and manifest["users_done"] == 10
    done_before = {r["user_id"] for r in _lines(tmp_path / PART_FILE)}
    assert len(done_before) == 10
    assert not (tmp_path / CACHE_FILE).exists()
    with pytest.raises(DataError, match="unfinished"):
        TopKCache.load(tmp_path)
    # A crash in the middle of a write leaves a torn line: it is cut off, and that user is recomputed.
    with open(tmp_path / PART_FILE, "a") as f:
        f.write('{"user_id": "u3", "items": [')

    rec = FakeRecommender()
    build_cache(rec, histories, tmp_path, k=2, batch_size=5)
    asked = [h for call in rec.calls for h in call]
    assert len(asked) == 13 and len(rec.calls) == 3  # only the 13 users not done before
    assert not {tuple(histories[u]) for u in done_before} & set(asked)
    rows = _lines(tmp_path / CACHE_FILE)
    assert sorted(r["user_id"] for r in rows) == sorted(histories)  # every user exactly once


def test_resuming_with_other_settings_is_refused(tmp_path):
    with pytest.raises(RuntimeError):
        build_cache(FakeRecommender(fail_after=1), _histories(), tmp_path, k=2, batch_size=5)
    with pytest.raises(ConfigError, match="other settings"):
        build_cache(FakeRecommender(), _histories(), tmp_path, k=4, batch_size=5)
    build_cache(FakeRecommender(), _histories(), tmp_path, k=4, batch_size=5, overwrite=True)
    assert all(len(items) == 4 for items in (TopKCache.load(tmp_path).get(u) for u in _histories()))


def test_refresh_recomputes_only_the_named_users(tmp_path):
    build_cache(FakeRecommender(), _histories(), tmp_path, k=2, batch_size=5)
    before = {r["user_id"]: r for r in _lines(tmp_path / CACHE_FILE)}
    newer = {u: [*h, f"new-{u}"] for u, h in _histories().items()}  # everyone has a newer history...
    rec = FakeRecommender()
    manifest = refresh_cache(rec, newer, tmp_path, ["u4", "u9"])  # ...but only two are refreshed
    assert [h for call in rec.calls for h in call] == [tuple(newer["u4"]), tuple(newer["u9"])]
    after = {r["user_id"]: r for r in _lines(tmp_path / CACHE_FILE)}
    assert set(after) == set(before)
    for user in before:
        if user in ("u4", "u9"):
            assert after[user]["items"][0]["item_id"] == f"new-{user}-0"
        else:
            assert after[user] == before[user]
    assert manifest["refreshes"][-1]["users"] == 2
    assert TopKCache.load(tmp_path).get("u4")[0].item_id == "new-u4-0"
    with pytest.raises(DataError, match="no history for users"):
        refresh_cache(rec, newer, tmp_path, ["ghost"])


def test_refresh_needs_a_complete_cache(tmp_path):
    with pytest.raises(ConfigError, match="build it first"):
        refresh_cache(FakeRecommender(), _histories(), tmp_path, ["u1"])


def test_histories_file_is_checked(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"user_id": "a", "history": ["i1", "i2"]}\n{"user_id": "b", "history": "i1"}\n')
    with pytest.raises(DataError, match="line 2"):
        read_histories_file(path)


def test_catalog_resolves_ids_then_titles_and_flags_ambiguity():
    catalog = Catalog({"1": "Toy Story (1995)", "2": "Heat", "3": "heat", "4": "7"})
    assert catalog.resolve("1") == ("1", None)
    assert catalog.resolve("  toy   STORY (1995) ") == ("1", None)
    item, note = catalog.resolve("Heat")
    assert item == "2" and "2 items" in note
    assert catalog.resolve("Jaws") == (None, None)
    assert catalog.resolve("4") == ("4", None)  # an id wins over a title
    assert catalog.title("missing") == "missing"


def test_catalog_reads_titles_loosely_and_says_so():
    catalog = Catalog({"1": "Fargo", "2": "Deer Hunter, The (1978)", "3": "Fargo (1996)", "4": "Shining, The"})
    assert catalog.resolve("Fargo") == ("1", None)              # an exact title wins over a loose one
    assert catalog.resolve("fargo (1996)") == ("3", None)
    item, note = catalog.resolve("The Deer Hunter")
    assert item == "2" and "read as 'Deer Hunter, The (1978)'" in note
    item, note = catalog.resolve("The Shining (1980)")
    assert item == "4" and "read as" in note
    assert catalog.resolve("The Fargo") == (None, None)
