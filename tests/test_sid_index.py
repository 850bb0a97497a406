"""SIDIndex (ids ↔ codes ↔ tokens, parse, files) and the PrefixTrie."""

import json

import numpy as np
import pytest

from rlrec.sid.index import SIDIndex
from rlrec.sid.trie import PrefixTrie
from rlrec.utils.errors import DataError

IDS = ["m1", "m2", "m3", "m4", "m5"]
CODES = np.array([[0, 1, 2], [0, 1, 0], [0, 2, 1], [2, 0, 0], [2, 0, 3]])
SIZES = [3, 3, 4]


@pytest.fixture
def index() -> SIDIndex:
    return SIDIndex(IDS, CODES, SIZES)


def test_tokens_sids_and_codes(index):
    assert index.num_levels == 3 and index.codebook_sizes == [3, 3, 4] and len(index) == 5
    assert index.sid("m1") == "<a_0><b_1><c_2>"
    assert index.tokens("m4") == ["<a_2>", "<b_0>", "<c_0>"]
    assert index.codes_of("m3") == (0, 2, 1)
    assert index.item_for_codes((2, 0, 3)) == "m5" and index.item_for_codes((1, 1, 1)) is None
    assert index.item_for_codes(("x",)) is None
    assert "m2" in index and "zz" not in index
    with pytest.raises(KeyError, match="'zz' is not in the SID index"):
        index.sid("zz")


def test_subset_keeps_codes_tokens_and_order(index):
    sub = index.subset(["m4", "m2"])
    assert sub.item_ids == ["m2", "m4"]  # the index's order
    assert sub.sid("m4") == index.sid("m4") and sub.vocabulary() == index.vocabulary()
    assert sub.item_for_codes((0, 1, 2)) is None and "m1" not in sub
    with pytest.raises(DataError, match="not in the index, e.g. 'zz'"):
        index.subset(["m1", "zz"])


def test_vocabulary_is_level_major(index):
    vocab = index.vocabulary()
    assert len(vocab) == 3 + 3 + 4
    assert vocab[:4] == ["<a_0>", "<a_1>", "<a_2>", "<b_0>"] and vocab[-1] == "<c_3>"
    assert index.level_tokens(2) == ["<c_0>", "<c_1>", "<c_2>", "<c_3>"]
    assert index.keywords == {}


def test_parse_finds_the_item(index):
    for item in IDS:
        assert index.parse(index.sid(item)) == item
    assert index.parse("Next: <a_2> <b_0>\n<c_3></s> and more") == "m5"
    # Only the first complete SID counts: listing many SIDs must not earn a match.
    assert index.parse("<a_9><b_9><c_9> then <a_0><b_1><c_0>") is None
    assert index.parse("<a_0><b_1> <a_0><b_1><c_0><a_2>") == "m2"


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "hello",
        None,
        42,
        b"<a_0><b_1><c_2>",
        ["<a_0>"],
        "<a_0><b_1>",  # partial
        "<a_1><b_1><c_1>",  # well formed, not an item
        "<a_0><b_1><c_99999999999999999999999>",  # absurd code
        "<a_00><b_1><c_2>",  # not a real token
        "<b_1><a_0><c_2>",  # wrong order
        "<a_-1><b_1><c_2>",
        "<a_0><b_1><c_2",
        "<<<>>>" * 1000,
        "\x00\xff<a_0>",
    ],
)
def test_parse_of_junk_returns_none(index, junk):
    assert index.parse(junk) is None


def test_constructor_rejects_bad_codes():
    with pytest.raises(DataError, match="share the codes"):
        SIDIndex(["a", "b"], np.array([[0, 1], [0, 1]]), [2, 2])
    with pytest.raises(DataError, match="outside the codebook sizes"):
        SIDIndex(["a"], np.array([[0, 2]]), [2, 2])
    with pytest.raises(DataError, match="duplicate item id 'a'"):
        SIDIndex(["a", "a"], np.array([[0, 1], [1, 0]]), [2, 2])
    with pytest.raises(DataError, match="shape"):
        SIDIndex(["a"], np.array([0, 1]), [2, 2])


def test_save_load_round_trip(index, tmp_path):
    index.keywords = {"<a_0>": ["comedy", "1990s"], "<b_1>": ["animation"]}
    index.descriptions = {"<a_0>": "Comedies of the 1990s."}
    path = index.save(tmp_path)
    assert path.name == "index.json" and not list(tmp_path.glob(".*tmp*"))
    data = json.loads(path.read_text())
    assert data["format_version"] == 1 and data["token_prefixes"] == ["a", "b", "c"]
    assert data["items"]["m1"] == [0, 1, 2] and list(data["items"]) == IDS
    loaded = SIDIndex.load(tmp_path)
    assert loaded.item_ids == IDS and loaded.codebook_sizes == SIZES
    np.testing.assert_array_equal(loaded.codes, CODES)
    assert loaded.keywords == index.keywords and loaded.sid("m3") == index.sid("m3")
    assert loaded.descriptions == index.descriptions
    assert loaded.subset(["m1"]).descriptions == index.descriptions
    assert SIDIndex.load(path).sid("m1") == "<a_0><b_1><c_2>"


def test_index_json_without_descriptions_still_loads(index, tmp_path):
    """index.json files written before `descriptions` existed load with none."""
    path = index.save(tmp_path)
    data = json.loads(path.read_text())
    del data["descriptions"]
    path.write_text(json.dumps(data))
    assert SIDIndex.load(tmp_path).descriptions == {}


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d.update(format_version=7), "'format_version'"),
        (lambda d: d.update(codebook_sizes=[3, 0, 4]), "'codebook_sizes'"),
        (lambda d: d.update(token_prefixes=["a", "a", "c"]), "'token_prefixes'"),
        (lambda d: d["items"].update(m1=[0, 1, 9]), "'items'\\['m1'\\]"),
        (lambda d: d["items"].update(m1=[0, 1]), "'items'\\['m1'\\]"),
        (lambda d: d["items"].update(m1=[0, 1, "2"]), "'items'\\['m1'\\]"),
        (lambda d: d["items"].update(m1=[0, 1, 0]), "'items'.*share the codes"),
        (lambda d: d.update(items=[]), "'items'"),
        (lambda d: d.update(keywords={"<z_0>": ["x"]}), "'keywords'\\['<z_0>'\\]"),
        (lambda d: d.update(keywords={"<a_0>": "comedy"}), "'keywords'\\['<a_0>'\\]"),
        (lambda d: d.update(descriptions={"<z_0>": "x"}), "'descriptions'\\['<z_0>'\\]"),
        (lambda d: d.update(descriptions={"<a_0>": ["x"]}), "'descriptions'\\['<a_0>'\\]"),
        (lambda d: d.update(descriptions=["x"]), "'descriptions'"),
    ],
)
def test_load_of_a_corrupted_index_names_file_and_field(index, tmp_path, edit, field):
    path = index.save(tmp_path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=f"index.json: field {field}"):
        SIDIndex.load(tmp_path)


def test_load_of_broken_json_or_missing_file(tmp_path):
    (tmp_path / "index.json").write_text('{"format_version": 1, "items": {')
    with pytest.raises(DataError, match="index.json: line 1: invalid JSON"):
        SIDIndex.load(tmp_path)
    with pytest.raises(DataError, match="file not found"):
        SIDIndex.load(tmp_path / "missing")


def test_trie_allowed_complete_count(index):
    trie = index.trie
    assert trie.allowed(()) == [0, 2]
    assert trie.allowed((0,)) == [1, 2] and trie.allowed((0, 1)) == [0, 2]
    assert trie.allowed((1,)) == [] and trie.allowed((0, 1, 2)) == [] and trie.allowed((7, 7)) == []
    assert trie.is_complete((0, 1, 2)) and not trie.is_complete((0, 1)) and not trie.is_complete((0, 1, 3))
    assert trie.count_under(()) == 5 and trie.count_under((0,)) == 3 and trie.count_under((2, 0)) == 2
    assert trie.count_under((0, 1, 0)) == 1 and trie.count_under((1,)) == 0 and trie.count_under((-1,)) == 0
    assert trie.num_nodes == [1, 2, 3]


def test_trie_arrays_drive_batched_decoding(index):
    """Walking every allowed path with the dense arrays reaches exactly the catalog's items."""
    trie = index.trie
    nodes = np.zeros(1, dtype=np.int64)
    paths = [()]
    for level in range(trie.num_levels):
        mask = trie.allowed_mask(level)[nodes]  # (beams, codebook size)
        beam, code = np.nonzero(mask)
        paths = [paths[b] + (int(c),) for b, c in zip(beam, code, strict=True)]
        nodes = trie.transitions[level][nodes[beam], code]
    found = {index.item_ids[row]: path for row, path in zip(nodes, paths, strict=True)}
    assert found == {item: index.codes_of(item) for item in IDS}
    tensors = trie.to_torch()
    assert [tuple(t.shape) for t in tensors] == [(1, 3), (2, 3), (3, 4)]


def test_trie_rejects_duplicates_and_bad_shapes():
    with pytest.raises(ValueError, match="duplicate"):
        PrefixTrie(np.array([[0, 1], [0, 1]]), [2, 2])
    with pytest.raises(ValueError, match="out of range"):
        PrefixTrie(np.array([[0, 2]]), [2, 2])


def test_embeddings_travel_with_the_index(tmp_path):
    """`item_embeddings.npy` beside index.json: saved (float16), read lazily, sliced by `subset`, and never left
    behind for an index that has none."""
    from rlrec.utils.errors import DataError

    emb = np.arange(15, dtype=np.float32).reshape(5, 3) / 7
    SIDIndex(IDS, CODES, SIZES, embeddings=emb).save(tmp_path / "a")
    loaded = SIDIndex.load(tmp_path / "a")
    np.testing.assert_allclose(loaded.embeddings, emb, atol=1e-3)
    loaded.save(tmp_path / "b")  # a trained model's sid/ folder: the copy keeps them
    np.testing.assert_allclose(SIDIndex.load(tmp_path / "b").embeddings, emb, atol=1e-3)
    np.testing.assert_allclose(loaded.subset(["m4", "m2"]).embeddings, emb[[1, 3]], atol=1e-3)
    SIDIndex(IDS, CODES, SIZES).save(tmp_path / "a")
    assert not (tmp_path / "a" / "item_embeddings.npy").exists() and SIDIndex.load(tmp_path / "a").embeddings is None
    with pytest.raises(DataError, match="one row per item"):
        SIDIndex(IDS, CODES, SIZES, embeddings=emb[:2])
