"""`atomic_file`: one rename puts a complete file in place; a failed write leaves the old file and no temp."""

import pytest

from rlrec.utils.io import atomic_file


def test_a_finished_write_replaces_the_file(tmp_path):
    target = tmp_path / "sub" / "index.json"
    with atomic_file(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["index.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_suffix_survives_for_writers_that_append_one(tmp_path):
    import numpy as np

    target = tmp_path / "item_embeddings.npy"
    with atomic_file(target, suffix=".npy") as tmp:
        assert tmp.suffix == ".npy"
        np.save(tmp, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2]
