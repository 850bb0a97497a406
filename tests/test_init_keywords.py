"""Keywords per SID token and prefix: c-TF-IDF picks what distinguishes a cluster; teacher answers are cached."""

import json

import numpy as np
import pytest

import rlrec.init.keywords as kw
import rlrec.models.loading as loading
from rlrec.init import ctfidf_keywords, parse_keywords, prefix_keywords, teacher_keywords, token_keywords
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.utils.errors import DataError

# Level 0 splits by fruit; level 1 (shared across parents, residual-style) by packaging.
TEXTS = [
    "Fresh red apple, organic fruit (2019)",
    "Dried red apple fruit snack",
    "Red apple fruit, dried slices",
    "Fresh green pear, organic fruit",
    "Dried green pear fruit",
    "Fresh yellow banana fruit",
    "Yellow banana fruit, dried chips (12 pack)",
]
CODES = np.array([[0, 0], [0, 1], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]])


def test_tokenize_drops_stopwords_numbers_and_short_words():
    assert kw.tokenize("The 12 Monkeys of Sci-Fi, 1995 & an MP3 player") == ["monkeys", "sci", "mp3", "player"]


def test_token_keywords_pick_distinguishing_words():
    keywords = token_keywords(CODES, TEXTS, top_k=2)
    assert set(keywords[(0, 0)]) == {"apple", "red"}
    assert set(keywords[(0, 1)]) == {"green", "pear"}
    assert set(keywords[(0, 2)]) == {"banana", "yellow"}
    for level0 in [(0, 0), (0, 1), (0, 2)]:
        assert "fruit" not in keywords[level0]  # in every cluster: describes none of them
    # <b_0> is one token shared by the three parents: its cluster is items 0, 3 and 5, all "fresh".
    assert keywords[(1, 0)][0] == "fresh" and keywords[(1, 1)][0] == "dried"
    assert sorted(keywords) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]


def test_ctfidf_counts_items_not_repetitions():
    groups = {"a": ["apple apple apple apple", "pear", "pear"], "b": ["plum"]}
    assert ctfidf_keywords(groups, top_k=1)["a"] == ["pear"]


def test_prefix_keywords_by_prefix_with_text_mapping():
    item_ids = [f"i{i}" for i in range(len(TEXTS))]
    texts = dict(zip(item_ids, TEXTS, strict=True))
    depth1 = prefix_keywords(item_ids, CODES, texts, depth=1, top_k=2)
    assert set(depth1[(0,)]) == {"apple", "red"}
    depth2 = prefix_keywords(item_ids, CODES, texts, depth=2, top_k=3)
    assert set(depth2) == {tuple(row) for row in CODES.tolist()}
    assert set(depth2[(0, 1)]) == {"apple", "dried", "red"}  # a prefix keeps its parent's words
    with pytest.raises(DataError, match="no text"):
        prefix_keywords(item_ids, CODES, {"i0": "x"}, depth=1)
    with pytest.raises(DataError, match="aligned"):
        prefix_keywords(item_ids[:3], CODES, TEXTS, depth=1)


def test_parse_keywords():
    answer = 'Keywords: 1. Apple, "Red";  fruit\n- Fresh produce.\nThis is a long sentence about the items, apple'
    assert parse_keywords(answer, top_k=5) == ["apple", "red", "fruit", "fresh produce"]
    assert parse_keywords("", top_k=3) == []


def test_teacher_keywords_are_cached(tmp_path, monkeypatch):
    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    calls = {"generate": 0, "load": 0}
    real_generate, real_load = kw._generate, loading.load_base_model

    def counting_generate(*args, **kwargs):
        calls["generate"] += 1
        return real_generate(*args, **kwargs)

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return real_load(*args, **kwargs)

    monkeypatch.setattr(kw, "_generate", counting_generate)
    monkeypatch.setattr(loading, "load_base_model", counting_load)
    groups = {(0, 0): TEXTS[:3], (0, 1): TEXTS[3:5], (0, 2): TEXTS[5:]}
    cache = tmp_path / "cache" / "teacher.json"
    first = teacher_keywords(groups, tmp_path / "teacher", cache, max_new_tokens=6, batch_size=2)
    assert calls == {"generate": 2, "load": 1}
    assert set(first) == set(groups) and all(isinstance(w, str) for ws in first.values() for w in ws)
    assert len(json.loads(cache.read_text())) == 3

    second = teacher_keywords(groups, tmp_path / "teacher", cache, max_new_tokens=6, batch_size=2)
    assert second == first and calls == {"generate": 2, "load": 1}  # no model loaded, nothing generated

    # One new cluster: only it is generated.
    teacher_keywords({**groups, (1, 0): TEXTS[::2]}, tmp_path / "teacher", cache, max_new_tokens=6)
    assert calls == {"generate": 3, "load": 2}
    assert len(json.loads(cache.read_text())) == 4
