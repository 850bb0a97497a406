"""`rlrec sid` with `sid_file`: precomputed SIDs (MiniOneRec's index.json) imported instead of quantised."""

import json
from pathlib import Path

import pytest

from rlrec.cli import run_stage
from rlrec.data.synthetic import synthetic_dataset
from rlrec.sid.config import SIDConfig
from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("import") / "data"
    folder.mkdir()
    synthetic_dataset(num_users=40, num_items=30, seed=0, user_k_core=2, item_k_core=2).save(folder)
    return folder


def catalog(data_dir: Path) -> list[str]:
    lines = (data_dir / "items.jsonl").read_text().splitlines()
    return [json.loads(line)["item_id"] for line in lines if line.strip()]


def unique_sids(items: list[str]) -> dict[str, list[str]]:
    return {item: [f"<a_{i % 4}>", f"<b_{i // 4 % 5}>", f"<c_{i // 20}>"] for i, item in enumerate(items)}


def run(tmp_path: Path, data_dir: Path, sids: object, *flags: str) -> SIDIndex:
    path = tmp_path / "index.json"
    path.write_text(sids if isinstance(sids, str) else json.dumps(sids))
    argv = ["--dataset_dir", str(data_dir), "--output_dir", str(tmp_path / "sid"), "--sid_file", str(path), *flags]
    return run_stage("sid", argv)


def test_round_trip_gives_exactly_the_file_sids(tmp_path, data_dir, capsys):
    items = catalog(data_dir)
    sids = unique_sids(items)
    index = run(tmp_path, data_dir, sids)
    loaded = SIDIndex.load(tmp_path / "sid")
    assert loaded.item_ids == items and index.item_ids == items
    for item in items:
        assert loaded.sid(item) == "".join(sids[item]) and loaded.parse(loaded.sid(item)) == item
    assert loaded.token_prefixes == ["a", "b", "c"]
    assert loaded.codebook_sizes == [256, 256, 256]  # the default codebook_size is larger than the codes
    manifest = json.loads((tmp_path / "sid" / "manifest.json").read_text())
    assert manifest["source"] == "sid_file" and manifest["embedding_dim"] is None
    assert manifest["num_items"] == len(items) and manifest["quality"]["collision_rate"] == 0
    assert manifest["quality"]["resolution"]["num_levels"] == 3
    assert "SID quality" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "sid"]


def test_codebook_sizes_follow_the_codes_and_other_prefixes_are_kept(tmp_path, data_dir):
    items = catalog(data_dir)
    sids = {item: f"<x_{i}><y_{i % 3}>" for i, item in enumerate(items)}  # one string per item is accepted
    index = run(tmp_path, data_dir, sids, "--codebook_size", "4")
    assert index.codebook_sizes == [len(items), 4] and index.token_prefixes == ["x", "y"]
    assert index.sid(items[5]) == "<x_5><y_2>"


def test_file_items_outside_the_dataset_are_left_out(tmp_path, data_dir):
    items = catalog(data_dir)
    sids = {"extra-1": ["<a_9>", "<b_9>", "<c_9>"], **unique_sids(items), "extra-2": ["<a_300>", "<b_0>", "<c_0>"]}
    index = run(tmp_path, data_dir, sids)
    assert index.item_ids == items and "extra-1" not in index
    assert index.codebook_sizes[0] == 301  # sized on the whole file, as the file's vocabulary
    manifest = json.loads((tmp_path / "sid" / "manifest.json").read_text())
    assert manifest["sid_file_items"] == len(items) + 2 and manifest["sid_file_unused_items"] == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s, items: '{"0": ["<a_1>", ', r"index\.json: line 1: invalid JSON"),
        (lambda s, items: json.dumps([1, 2]), r"index\.json: expected a non-empty JSON object"),
        (lambda s, items: {**s, items[3]: ["<a_1>", "b_2", "<c_3>"]}, r"item '{}': token 1 is 'b_2'"),
        (lambda s, items: {**s, items[3]: ["<a_1>", "<b_-2>", "<c_3>"]}, r"token 1 is '<b_-2>'"),
        (lambda s, items: {**s, items[3]: "<a_1><b_2>x"}, r"is not a sequence of `<letters_number>`"),
        (lambda s, items: {**s, items[3]: []}, r"expected a non-empty list"),
        (lambda s, items: {**s, items[3]: ["<a_1>", "<b_2>"]}, r"SID length differ from item"),
        (lambda s, items: {**s, items[3]: ["<a_1>", "<d_2>", "<c_3>"]}, r"SID prefixes differ from item"),
        (
            lambda s, items: {k: v for k, v in s.items() if k not in items[2:9]},
            r"7 of the dataset's \d+ items have no SID \(e\.g\. '",
        ),
    ],
)
def test_bad_files_fail_naming_the_file(tmp_path, data_dir, edit, message):
    items = catalog(data_dir)
    content = edit(unique_sids(items), items)
    message = message.replace("{}", items[3])
    with pytest.raises(DataError, match=message) as err:
        run(tmp_path, data_dir, content)
    assert str(tmp_path / "index.json") in str(err.value)
    assert not (tmp_path / "sid").exists()


def test_duplicate_item_keys_fail(tmp_path, data_dir):
    items = catalog(data_dir)
    body = ", ".join(f'"{item}": ["<a_{i}>"]' for i, item in enumerate(items))
    with pytest.raises(DataError, match=rf"index\.json: item '{items[0]}' is listed twice"):
        run(tmp_path, data_dir, "{" + body + f', "{items[0]}": ["<a_0>"]' + "}")


def colliding(items: list[str]) -> dict[str, list[str]]:
    sids = unique_sids(items)
    sids[items[1]] = list(sids[items[0]])
    sids[items[2]] = list(sids[items[0]])
    return sids


def test_collisions_append_a_level(tmp_path, data_dir):
    items = catalog(data_dir)
    index = run(tmp_path, data_dir, colliding(items), "--collision", "append_level")
    assert index.num_levels == 4 and index.token_prefixes == ["a", "b", "c", "d"]
    assert [index.sid(i) for i in items[:3]] == [f"<a_0><b_0><c_0><d_{n}>" for n in range(3)]
    assert index.sid(items[3]) == "<a_3><b_0><c_0><d_0>"
    quality = json.loads((tmp_path / "sid" / "manifest.json").read_text())["quality"]
    assert quality["colliding_groups"] == 1 and quality["resolution"]["extra_level_size"] == 3


def test_collisions_reassigned_without_distances(tmp_path, data_dir):
    items = catalog(data_dir)
    index = run(tmp_path, data_dir, colliding(items), "--collision", "reassign", "--codebook_size", "4")
    assert index.num_levels == 3 and len({index.sid(i) for i in items}) == len(items)
    assert index.sid(items[0]) == "<a_0><b_0><c_0>"  # the first item keeps its SID
    moved = {index.codes_of(items[1]), index.codes_of(items[2])}  # the others take the lowest free codes
    assert moved == {(0, 0, 2), (0, 0, 3)}
    quality = json.loads((tmp_path / "sid" / "manifest.json").read_text())["quality"]
    assert quality["resolution"]["moved"] == 2


def test_collisions_with_none_fail_naming_the_items(tmp_path, data_dir):
    items = catalog(data_dir)
    with pytest.raises(DataError, match=rf"index\.json: 3 of the dataset's items share .*'{items[0]}' and "):
        run(tmp_path, data_dir, colliding(items), "--collision", "none")
    assert not (tmp_path / "sid").exists()


def test_empty_sid_file_is_a_config_error():
    with pytest.raises(ConfigError, match="sid_file is empty"):
        SIDConfig(sid_file=" ")


def test_imported_sids_keep_their_embeddings_when_given(tmp_path, data_dir):
    """`sid_embeddings_file` rows follow the SID file's order; the index keeps them in its own order."""
    import numpy as np

    from rlrec.rewards.semantic import index_embeddings

    items = catalog(data_dir)
    extra = {"not-in-dataset": ["<a_0>", "<b_0>", "<c_9>"]}
    sids = {**extra, **dict(reversed(list(unique_sids(items).items())))}  # file order != catalog order
    file_order = list(sids)
    emb = np.random.default_rng(0).normal(size=(len(file_order), 6)).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    run(tmp_path, data_dir, sids, "--sid_embeddings_file", str(tmp_path / "emb.npy"))
    index = SIDIndex.load(tmp_path / "sid")
    expected = emb[[file_order.index(item) for item in index.item_ids]]
    np.testing.assert_allclose(index_embeddings(index), expected, atol=2e-3)  # stored as float16

    plain = tmp_path / "plain"
    plain.mkdir()
    run(plain, data_dir, sids)
    with pytest.raises(ConfigError, match="has no item embeddings beside it"):
        index_embeddings(SIDIndex.load(plain / "sid"))
    np.save(tmp_path / "short.npy", emb[:3])
    with pytest.raises(DataError, match=r"short.npy: embeddings of shape \(3, 6\); expected \(31 items"):
        run(tmp_path, data_dir, sids, "--sid_embeddings_file", str(tmp_path / "short.npy"),
            "--overwrite_output_dir", "true")
