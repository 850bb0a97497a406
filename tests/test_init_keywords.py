"""Keywords and descriptions per SID token and prefix: c-TF-IDF picks what distinguishes a cluster; teacher answers
are cached; TS-Rec's keyword file is checked against the index."""

import json

import numpy as np
import pytest
import torch

import rlrec.init.ctfidf as ctfidf
import rlrec.init.keywords as kw
import rlrec.init.teacher as teacher
import rlrec.models.loading as loading
from rlrec.init import (
    ctfidf_keywords,
    index_descriptions,
    index_keyword_file,
    index_keywords,
    init_sid_embeddings,
    parse_keywords,
    prefix_keywords,
    read_keyword_file,
    teacher_keywords,
    token_keywords,
)
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.sid.index import SIDIndex
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
    assert ctfidf.tokenize("The 12 Monkeys of Sci-Fi, 1995 & an MP3 player") == ["monkeys", "sci", "mp3", "player"]


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
    real_generate, real_load = teacher._generate, loading.load_base_model

    def counting_generate(*args, **kwargs):
        calls["generate"] += 1
        return real_generate(*args, **kwargs)

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return real_load(*args, **kwargs)

    monkeypatch.setattr(teacher, "_generate", counting_generate)
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


# -- descriptions -------------------------------------------------------------------------------------------------

# An index needs distinct SIDs: items 1 and 2 share theirs, so the index tests leave item 2 out.
UNIQUE_ROWS = [0, 1, 3, 4, 5, 6]
INDEX_TEXTS = [TEXTS[i] for i in UNIQUE_ROWS]


def _index() -> SIDIndex:
    """Two levels of 4 and 2 codes; <a_3> is in the vocabulary but no item has it."""
    return SIDIndex([f"i{i}" for i in UNIQUE_ROWS], CODES[UNIQUE_ROWS], [4, 2])


def test_describe_keywords_templates_one_sentence():
    sentence = "Items in this group are mostly about red, apple and fruit."
    assert kw.describe_keywords(["red", "apple", "fruit"]) == sentence
    assert kw.describe_keywords(["pear"]) == "Items in this group are mostly about pear."
    assert kw.describe_keywords([f"w{i}" for i in range(9)], max_keywords=2) == (
        "Items in this group are mostly about w0 and w1.")
    assert kw.describe_keywords(["", " "]) == ""


def test_parse_description_keeps_the_first_sentence():
    answer = 'Description: "Fresh and dried  fruit\nsnacks.  Also more text. 1.5 kg"'
    assert teacher.parse_description(answer) == "Fresh and dried fruit snacks."
    assert teacher.parse_description("3.5") == "" and teacher.parse_description("") == ""
    assert len(teacher.parse_description("word " * 200)) == teacher.MAX_DESCRIPTION_CHARS


def test_ctfidf_index_keywords_give_templated_descriptions():
    index = _index()
    keywords = index_keywords(index, INDEX_TEXTS, top_k=2)
    assert set(index.descriptions) == set(keywords)
    assert index.descriptions["<a_0>"] == kw.describe_keywords(keywords["<a_0>"])
    # An index whose keywords predate descriptions gets them added, its keywords untouched.
    index.descriptions = {"<a_1>": "Pears."}
    index_descriptions(index, INDEX_TEXTS)
    assert index.descriptions["<a_1>"] == "Pears." and index.descriptions["<b_0>"] == "Items in this group are " \
        f"mostly about {keywords['<b_0>'][0]} and {keywords['<b_0>'][1]}."


def test_teacher_gives_keywords_and_descriptions_with_one_model_load(tmp_path, monkeypatch):
    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    loads = []
    real_load = loading.load_base_model
    monkeypatch.setattr(loading, "load_base_model", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    index = _index()
    cache = tmp_path / "teacher.json"
    index_keywords(index, INDEX_TEXTS, source="teacher", teacher_model=tmp_path / "teacher", cache_path=cache)
    tokens = {"<a_0>", "<a_1>", "<a_2>", "<b_0>", "<b_1>"}
    assert len(loads) == 1 and set(index.keywords) == tokens
    assert len(json.loads(cache.read_text())) == 2 * len(tokens)  # a keyword and a description answer per token
    assert all(isinstance(d, str) and d for d in index.descriptions.values())  # the tiny model's sentences, if any
    again = _index()
    index_keywords(again, INDEX_TEXTS, source="teacher", teacher_model=tmp_path / "teacher", cache_path=cache)
    assert len(loads) == 1 and again.descriptions == index.descriptions  # all cached: no model loaded

    # What a sensible teacher answers: its sentence becomes the description; no sentence -> the template.
    def answers(model, tokenizer, prompts, max_new_tokens):
        return ["Fresh fruit, dried fruit" if "keywords" in p else
                ("" if "Yellow" in p else "Description: Fruit of one kind. More.") for p in prompts]

    monkeypatch.setattr(teacher, "_generate", answers)
    third = _index()
    index_keywords(third, INDEX_TEXTS, source="teacher", teacher_model=tmp_path / "teacher",
                   cache_path=tmp_path / "other.json")
    assert third.keywords["<a_1>"] == ["fresh fruit", "dried fruit"]
    assert third.descriptions["<a_1>"] == "Fruit of one kind."
    assert third.descriptions["<a_2>"] == kw.describe_keywords(["fresh fruit", "dried fruit"])  # bananas: yellow


# -- TS-Rec's keyword file ---------------------------------------------------------------------------------------

FILE_ENTRIES = [
    {"token": "<a_0>", "description": "Red apples, fresh and dried.", "keywords": ["apple", "red fruit", " "]},
    {"token": "<a_1>", "description": "Green pears.", "keywords": ["pear", "green"]},
    {"token": "<a_2>", "description": "Yellow  bananas,\n fresh or dried.", "keywords": ["banana", "yellow"]},
    {"token": "<b_0>", "description": "Fresh produce.", "keywords": ["fresh"]},
    {"token": "<b_1>", "keywords": ["dried", "snack"]},  # no description: the template fills in later
    {"token": "<a_3>", "description": "Nothing yet.", "keywords": ["unused"]},  # in the vocabulary, no item
    {"token": "<c_5>", "description": "Another index.", "keywords": ["x"]},  # no level c here
    {"token": "<a_9>", "description": "Beyond the codebook.", "keywords": ["y"]},
]


def _write(path, entries) -> str:
    path.write_text(json.dumps(entries, indent=2))
    return str(path)


def test_keyword_file_is_checked_against_the_index(tmp_path, caplog):
    path = _write(tmp_path / "kw.json", FILE_ENTRIES)
    index = _index()
    with caplog.at_level("WARNING"):
        report = index_keyword_file(index, path)
    assert report["coverage"] == {"a": {"in_use": 3, "covered": 3}, "b": {"in_use": 2, "covered": 2}}
    assert report["entries"] == 8 and report["unknown_skipped"] == 2 and report["unused"] == 1
    assert report["unknown_examples"] == ["<c_5>", "<a_9>"] and report["descriptions"] == 5
    assert "2 entries name tokens the SID index does not have" in caplog.text and "<c_5>" in caplog.text
    assert index.keywords["<a_0>"] == ["apple", "red fruit"]  # every keyword, blanks dropped
    assert index.keywords["<a_3>"] == ["unused"] and "<c_5>" not in index.keywords
    assert index.descriptions["<a_2>"] == "Yellow bananas, fresh or dried." and "<b_1>" not in index.descriptions
    with pytest.raises(DataError, match=r"kw\.json: does not match the SID index .*2 unknown token\(s\)"):
        read_keyword_file(path, _index(), strict=True)

    # A file that leaves a token in use undescribed: counted, and refused when strict.
    partial = _write(tmp_path / "partial.json", FILE_ENTRIES[:4])
    keywords, _, report = read_keyword_file(partial, _index())
    assert report["coverage"]["b"] == {"in_use": 2, "covered": 1} and "<b_1>" not in keywords
    with pytest.raises(DataError, match=r"1 token\(s\) in use without an entry; coverage a 3/3, b 1/2"):
        read_keyword_file(partial, _index(), strict=True)
    _, _, report = read_keyword_file(_write(tmp_path / "exact.json", FILE_ENTRIES[:5]), _index(), strict=True)
    assert report["unknown_skipped"] == 0 and report["unused"] == 0


@pytest.mark.parametrize(
    "bad, expected",
    [
        (["<a_0>"], r"entry 2: expected an object"),
        ({"description": "no token", "keywords": []}, r"entry 2: 'token' should be a SID token string"),
        ({"token": "<a_2>", "description": "x", "keywords": "banana, yellow"}, r"entry 2: 'keywords' of <a_2>"),
        ({"token": "<a_2>", "description": "x", "keywords": ["banana", 3]}, r"entry 2: 'keywords' of <a_2>"),
        ({"token": "<a_2>", "description": ["x"], "keywords": []}, r"entry 2: 'description' of <a_2>"),
        ({"token": "<a_0>", "description": "x", "keywords": []}, r"entry 2: token <a_0> is listed again \(first at "
                                                                 r"entry 0\)"),
    ],
)
def test_malformed_keyword_file_entries_are_refused_naming_file_and_entry(tmp_path, bad, expected):
    path = _write(tmp_path / "bad.json", [*FILE_ENTRIES[:2], bad, *FILE_ENTRIES[2:]])
    with pytest.raises(DataError, match=rf"bad\.json: {expected}"):
        read_keyword_file(path, _index())


def test_keyword_file_that_is_not_a_list_or_missing(tmp_path):
    with pytest.raises(DataError, match=r"obj\.json: expected a JSON list"):
        read_keyword_file(_write(tmp_path / "obj.json", {"<a_0>": ["apple"]}), _index())
    with pytest.raises(DataError, match=r"nope\.json: keyword file not found"):
        read_keyword_file(tmp_path / "nope.json", _index())
    (tmp_path / "broken.json").write_text('[{"token": "<a_0>",\n')
    with pytest.raises(DataError, match=r"broken\.json: line \d+: invalid JSON"):
        read_keyword_file(tmp_path / "broken.json", _index())


def test_sa_init_pools_the_file_keywords(tmp_path):
    """SA-Init reads the file's keywords through the index: each row points where its keywords' sub-tokens do."""
    index = _index()
    index_keyword_file(index, _write(tmp_path / "kw.json", FILE_ENTRIES))
    model, tokenizer = tiny_model_and_tokenizer()
    ids, report = init_sid_embeddings(model, tokenizer, index)
    assert report["keywords"] == 6 and report["mean_vocab"] == 0  # the five tokens in use and the unused <a_3>
    embed = model.get_input_embeddings().weight.detach()
    for token in ["<a_0>", "<b_1>"]:
        sub = [t for ids_ in tokenizer(index.keywords[token], add_special_tokens=False)["input_ids"] for t in ids_]
        expected = embed[sub].mean(0)
        row = embed[tokenizer.convert_tokens_to_ids(token)]
        assert torch.nn.functional.cosine_similarity(row, expected, dim=0) > 0.999
