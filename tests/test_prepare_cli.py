"""`rlrec prepare` end to end: YAML plus flag overrides, the written folder, failures that leave nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlrec.cli import main as cli_main
from rlrec.data.schema import PreparedDataset
from rlrec.data.synthetic import synthetic_interactions, synthetic_items

ROOT = Path(__file__).resolve().parents[1]


def _amazon_folder(tmp_path: Path, num_users: int = 150, num_items: int = 200) -> Path:
    """A small Amazon-2018-style dump: strict-JSON reviews, Python-literal metadata."""
    folder = tmp_path / "raw"
    folder.mkdir()
    items = synthetic_items(num_items, seed=7)
    with open(folder / "meta_Office.json", "w") as f:
        for item in items.values():
            f.write(repr({"asin": item.item_id, "title": item.title, "brand": item.attributes["brand"],
                          "categories": [item.attributes["categories"]]}) + "\n")
    with open(folder / "reviews_Office_5.json", "w") as f:
        for x in synthetic_interactions(num_users, list(items), seed=7):
            f.write(json.dumps({"reviewerID": x.user_id, "asin": x.item_id, "unixReviewTime": x.timestamp,
                                "overall": x.rating}) + "\n")
    return folder


def _recipe(tmp_path: Path, data: Path, **extra) -> Path:
    lines = ["source: amazon2018", f"data_path: {data}", "category: Office", "user_k_core: 3",
             "item_k_core: 3", "history_cut: 20"] + [f"{k}: {v}" for k, v in extra.items()]
    path = tmp_path / "prepare.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name == name or p.name.startswith(f".{name}."))


def test_prepare_end_to_end_with_flag_override(tmp_path, capsys):
    recipe = _recipe(tmp_path, _amazon_folder(tmp_path))
    out = tmp_path / "data"
    cli_main(["prepare", "--config", str(recipe), "--output_dir", str(out), "--history_cut", "3"])
    data = PreparedDataset.load(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "prepare"
    assert manifest["config"]["history_cut"] == 3          # the flag beat the YAML's 20
    assert manifest["config"]["user_k_core"] == 3          # the YAML beat the default 5
    assert max(len(ex.history) for ex in data.train + data.valid + data.test) == 3
    counts = manifest["counts"]
    assert counts["raw_users"] == 150 and counts["raw_items"] <= 200
    assert counts["test_examples"] == counts["valid_examples"] == counts["users"] == len(data.test)
    assert counts["train_examples"] == len(data.train) > 0
    assert all(ex.cold is not None for ex in data.valid + data.test)
    assert data.items[data.test[0].target].text.startswith(data.items[data.test[0].target].title)
    printed = capsys.readouterr().out
    assert "rlrec prepare: amazon2018" in printed and f"train {counts['train_examples']}" in printed
    assert _leftovers(tmp_path, "data") == ["data"]


def test_prepare_ml100k_recipe(tmp_path, capsys):
    out = tmp_path / "ml"
    cli_main(["prepare", "--config", str(ROOT / "recipes/ml-100k/prepare.yaml"), "--output_dir", str(out)])
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["counts"]
    assert (c["raw_users"], c["raw_items"], c["raw_interactions"]) == (943, 1682, 100_000)
    assert c["users"] == 943 and c["test_examples"] == 943
    assert c["train_examples"] == c["interactions"] - 3 * 943
    assert manifest["dropped"]["items_without_text"] == 1
    printed = capsys.readouterr().out
    assert "943" in printed
    # ML-100k's stars survive: the counts of test targets by rating
    assert manifest["ratings"]["targets"]["test"] == {"liked": 487, "neutral": 239, "disliked": 217, "unrated": 0}
    assert manifest["ratings"]["scale"] == [1.0, 5.0]
    assert sum(manifest["ratings"]["counts"].values()) == c["interactions"]
    assert "test targets: 487 liked (>= 4), 239 neutral, 217 disliked (<= 2), 0 unrated" in printed


def test_python_dash_m_rlrec_prepare(tmp_path):
    recipe = _recipe(tmp_path, _amazon_folder(tmp_path, num_users=40, num_items=50), user_k_core=1,
                     item_k_core=1)
    out = tmp_path / "m"
    proc = subprocess.run([sys.executable, "-m", "rlrec", "prepare", "--config", str(recipe), "--output_dir",
                           str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "after filtering" in proc.stdout
    assert len(PreparedDataset.load(out).test) == 40


def _fails(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_unknown_yaml_field_is_an_error(tmp_path, capsys):
    recipe = _recipe(tmp_path, _amazon_folder(tmp_path), user_kcore=4)
    err = _fails(["prepare", "--config", str(recipe), "--output_dir", str(tmp_path / "out")], capsys)
    assert "user_kcore" in err and str(recipe) in err
    assert _leftovers(tmp_path, "out") == []


def test_bad_config_value_is_an_error(tmp_path, capsys):
    recipe = _recipe(tmp_path, _amazon_folder(tmp_path), source="amazon2099")
    err = _fails(["prepare", "--config", str(recipe), "--output_dir", str(tmp_path / "out")], capsys)
    assert "`source` is 'amazon2099'" in err


def test_malformed_input_leaves_no_folder_and_keeps_an_old_one(tmp_path, capsys):
    raw = _amazon_folder(tmp_path)
    recipe = _recipe(tmp_path, raw)
    out = tmp_path / "out"
    cli_main(["prepare", "--config", str(recipe), "--output_dir", str(out)])
    before = (out / "train.jsonl").read_bytes()
    capsys.readouterr()
    with open(raw / "reviews_Office_5.json", "a") as f:
        f.write('{"reviewerID": "u1", "asin": \n')
    n_lines = len((raw / "reviews_Office_5.json").read_text().splitlines())
    # A finished folder is refused outright; asked to replace it, a failing run still keeps it.
    err = _fails(["prepare", "--config", str(recipe), "--output_dir", str(out)], capsys)
    assert f"output_dir {out} holds a finished run (manifest.json); pass --overwrite_output_dir true" in err
    err = _fails(["prepare", "--config", str(recipe), "--output_dir", str(out), "--overwrite_output_dir", "true"],
                 capsys)
    assert f"reviews_Office_5.json: line {n_lines}: neither JSON nor a Python dict literal" in err
    assert (out / "train.jsonl").read_bytes() == before      # the previous dataset is untouched
    assert _leftovers(tmp_path, "out") == ["out"]


def test_failure_while_writing_leaves_no_folder(tmp_path, monkeypatch):
    recipe = _recipe(tmp_path, _amazon_folder(tmp_path))
    out = tmp_path / "out"
    original = PreparedDataset.save

    def broken_save(self, folder):
        original(self, folder)  # write everything, then fail as a full disk would
        raise OSError("disk full")

    monkeypatch.setattr(PreparedDataset, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cli_main(["prepare", "--config", str(recipe), "--output_dir", str(out)])
    assert _leftovers(tmp_path, "out") == []


def test_missing_data_and_empty_result_errors(tmp_path, capsys):
    recipe = _recipe(tmp_path, tmp_path / "nowhere")
    err = _fails(["prepare", "--config", str(recipe), "--output_dir", str(tmp_path / "out")], capsys)
    assert "nowhere: Amazon data path not found" in err
    recipe = _recipe(tmp_path, _amazon_folder(tmp_path))
    err = _fails(["prepare", "--config", str(recipe), "--output_dir", str(tmp_path / "out"),
                  "--user_k_core", "100"], capsys)
    assert "empty histories after filtering" in err
    assert _leftovers(tmp_path, "out") == []


def test_item_policies_from_the_command_line(tmp_path, capsys):
    raw = _amazon_folder(tmp_path)
    with open(raw / "meta_Office.json", "a") as f:
        f.write("{'asin': 'notitle', 'brand': 'X'}\n")
    with open(raw / "reviews_Office_5.json", "a") as f:
        f.write(json.dumps({"reviewerID": "u1", "asin": "notitle", "unixReviewTime": 1}) + "\n")
        f.write(json.dumps({"reviewerID": "u2", "asin": "ghost", "unixReviewTime": 1}) + "\n")
    recipe = _recipe(tmp_path, raw)
    out = tmp_path / "out"
    cli_main(["prepare", "--config", str(recipe), "--output_dir", str(out)])
    dropped = json.loads((out / "manifest.json").read_text())["dropped"]
    assert dropped["items_without_text"] == 1 and dropped["interactions_of_items_without_text"] == 1
    assert dropped["unknown_items"] == 1 and dropped["interactions_of_unknown_items"] == 1
    assert "items_without_text" in capsys.readouterr().out
    err = _fails(["prepare", "--config", str(recipe), "--output_dir", str(out), "--overwrite_output_dir", "true",
                  "--drop_unknown_items", "false"], capsys)
    assert "item 'ghost' is not in" in err and "reviews_Office_5.json: line" in err
    err = _fails(["prepare", "--config", str(recipe), "--output_dir", str(out), "--overwrite_output_dir", "true",
                  "--no_drop_items_without_text"], capsys)
    assert "item 'notitle'" in err
