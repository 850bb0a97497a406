"""Readers: each source format into the common raw form, with its errors and drop policies."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import pytest

from rlrec.data.raw import clean_title, item_text, unique_strings
from rlrec.data.readers import read_amazon2018, read_amazon2023, read_minionerec_csv, read_movielens
from rlrec.data.synthetic import synthetic_interactions, synthetic_items
from rlrec.utils.errors import ConfigError, DataError


def _write_lines(path: Path, lines: list[str]) -> Path:
    text = "".join(line + "\n" for line in lines)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- helpers -------------------------------------------------------------------------------------------


def test_item_text_and_cleaning():
    assert item_text("Toy Story", year="1995", categories=["Animation", "Comedy"], label="Genres") == \
        "Toy Story (1995). Genres: Animation, Comedy"
    assert item_text("Pen", categories=["A"], brand="Bic") == "Pen. Categories: A. Brand: Bic"
    assert clean_title("  Tom &amp; Jerry <b>Pens</b> ") == "Tom & Jerry Pens"
    assert clean_title("unknown") == "" and clean_title(None) == ""
    assert unique_strings([["Office", "Paper"], ["Office", "Pens &amp; Ink"]]) == ["Office", "Paper", "Pens & Ink"]


# --- MovieLens -----------------------------------------------------------------------------------------


def test_movielens_wheel_copy_has_943_users_1682_items():
    raw = read_movielens()
    assert raw.raw_counts["users"] == 943
    assert raw.raw_counts["items"] == 1682
    assert raw.raw_counts["interactions"] == 100_000
    toy = raw.items["1"]
    assert toy.text == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert toy.attributes == {"year": 1995, "genres": ["Animation", "Children's", "Comedy"]}
    # Item 267 is titled "unkonwn" in the file: it has no text, so it and its interactions are dropped.
    assert "267" not in raw.items
    assert raw.dropped["items_without_text"] == 1
    assert raw.dropped["interactions_of_items_without_text"] == 100_000 - len(raw.interactions) > 0
    assert all(isinstance(x.timestamp, int) for x in raw.interactions[:10])


def test_movielens_wheel_copy_textless_item_is_an_error_when_not_dropped():
    with pytest.raises(DataError, match=r"item '267'.*ml-100k.item: line 268"):
        read_movielens(drop_items_without_text=False)


def _movielens_folder(tmp_path: Path, inter_rows: list[str], item_rows: list[str]) -> Path:
    folder = tmp_path / "ml"
    folder.mkdir()
    _write_lines(folder / "ml.inter", ["user_id:token\titem_id:token\trating:float\ttimestamp:float", *inter_rows])
    _write_lines(folder / "ml.item", ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
                                      *item_rows])
    return folder


def test_movielens_local_folder_unknown_items(tmp_path):
    folder = _movielens_folder(tmp_path, ["1\t10\t4\t100", "1\t99\t3\t101", "2\t10\t5\t102.0"],
                               ["10\tHeat\t1995\tAction Crime"])
    raw = read_movielens(folder)
    assert [(x.user_id, x.item_id, x.timestamp, x.rating) for x in raw.interactions] == \
        [("1", "10", 100, 4.0), ("2", "10", 102, 5.0)]
    assert raw.dropped == {"interactions_of_unknown_items": 1, "unknown_items": 1}
    with pytest.raises(DataError, match=r"ml\.inter: line 3: item '99' is not in"):
        read_movielens(folder, drop_unknown_items=False)


def test_movielens_malformed_line_names_file_and_line(tmp_path):
    folder = _movielens_folder(tmp_path, ["1\t10\t4\t100", "1\t10\t4"], ["10\tHeat\t1995\tAction"])
    with pytest.raises(DataError, match=r"ml\.inter: line 3: expected 4 tab-separated fields"):
        read_movielens(folder)


def test_movielens_missing_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_movielens(tmp_path / "nope")


# --- Amazon 2018 (and 2014-style meta) -------------------------------------------------------------------


def _amazon2018(tmp_path: Path, gz: bool, num_users: int = 40, num_items: int = 60) -> Path:
    """Reviews as strict JSON, metadata as Python dict literals (as the 2014 dump ships them)."""
    folder = tmp_path / "amz18"
    folder.mkdir()
    items = synthetic_items(num_items, seed=1)
    ext = ".json.gz" if gz else ".json"
    meta = []
    for n, item in enumerate(items.values()):
        record = {"asin": item.item_id, "title": item.title, "brand": item.attributes["brand"]}
        if n % 2:
            record["categories"] = [item.attributes["categories"], ["Office Products", "Extra"]]
        else:
            record["category"] = item.attributes["categories"]
        meta.append(repr(record) if n % 3 else json.dumps(record))  # a mix of both line styles
    _write_lines(folder / f"meta_Office{ext}", meta)
    reviews = [json.dumps({"reviewerID": x.user_id, "asin": x.item_id, "unixReviewTime": x.timestamp,
                           "overall": x.rating, "reviewText": "fine"})
               for x in synthetic_interactions(num_users, list(items), seed=1)]
    _write_lines(folder / f"reviews_Office_5{ext}", reviews)
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_amazon2018_reads_json_and_python_literal_lines(tmp_path, gz):
    folder = _amazon2018(tmp_path, gz)
    raw = read_amazon2018(folder, category="Office")
    assert raw.raw_counts["users"] == 40
    assert len(raw.interactions) == raw.raw_counts["interactions"] > 200
    assert raw.dropped == {}
    item = raw.items["i1"]  # categories as a list of lists, flattened and deduplicated
    assert item.attributes["categories"][0] == "Office Products"
    assert "Extra" in item.attributes["categories"]
    assert item.text.startswith(item.title + ". Categories: Office Products")
    assert item.text.endswith(f"Brand: {item.attributes['brand']}")
    # Without a category the single reviews file is found, and its meta file by name.
    assert read_amazon2018(folder).raw_counts == raw.raw_counts
    assert read_amazon2018(folder / f"reviews_Office_5{'.json.gz' if gz else '.json'}").raw_counts == raw.raw_counts


def test_amazon2018_malformed_line_names_file_and_line(tmp_path):
    folder = _amazon2018(tmp_path, gz=True)
    lines = gzip.open(folder / "meta_Office.json.gz", "rt").read().splitlines()
    lines[6] = "{'asin': 'i6', 'title': "  # truncated record
    _write_lines(folder / "meta_Office.json.gz", lines)
    with pytest.raises(DataError, match=r"meta_Office\.json\.gz: line 7: neither JSON nor a Python dict"):
        read_amazon2018(folder)


def test_amazon2018_missing_field_and_missing_files(tmp_path):
    folder = _amazon2018(tmp_path, gz=False)
    _write_lines(folder / "reviews_Office_5.json", [json.dumps({"reviewerID": "u", "asin": "i1"})])
    with pytest.raises(DataError, match=r"reviews_Office_5\.json: line 1: missing field 'unixReviewTime'"):
        read_amazon2018(folder)
    with pytest.raises(DataError, match="no reviews file for category 'Toys'"):
        read_amazon2018(folder, category="Toys")
    (folder / "meta_Office.json").unlink()
    with pytest.raises(DataError, match="no metadata file for category 'Office'"):
        read_amazon2018(folder)
    with pytest.raises(DataError, match="not found"):
        read_amazon2018(tmp_path / "nowhere")


def test_amazon2018_several_reviews_files_need_a_category(tmp_path):
    folder = _amazon2018(tmp_path, gz=False)
    (folder / "reviews_Toys_5.json").write_text("")
    with pytest.raises(ConfigError, match="several reviews files"):
        read_amazon2018(folder)
    assert read_amazon2018(folder, category="Office").raw_counts["users"] == 40


def test_amazon2018_items_without_text_both_policies(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    _write_lines(folder / "meta_X.json", [
        "{'asin': 'A', 'title': 'Blue pen'}",
        "{'asin': 'B', 'categories': [['Office']]}",          # no title
        "{'asin': 'C', 'title': ''}",                          # empty title, never reviewed
    ])
    _write_lines(folder / "reviews_X.json", [
        json.dumps({"reviewerID": "u1", "asin": "A", "unixReviewTime": 1}),
        json.dumps({"reviewerID": "u1", "asin": "B", "unixReviewTime": 2}),
        json.dumps({"reviewerID": "u2", "asin": "B", "unixReviewTime": 3}),
        json.dumps({"reviewerID": "u2", "asin": "Z", "unixReviewTime": 4}),  # not in meta
    ])
    raw = read_amazon2018(folder)
    assert list(raw.items) == ["A"]
    assert [x.item_id for x in raw.interactions] == ["A"]
    assert raw.dropped == {"items_without_text": 1, "interactions_of_items_without_text": 2,
                           "unknown_items": 1, "interactions_of_unknown_items": 1}
    assert raw.raw_counts == {"users": 2, "items": 3, "interactions": 4, "catalog_items": 1}
    with pytest.raises(DataError, match=r"item 'B' \(.*meta_X\.json: line 2\).*reviews_X\.json: line 2"):
        read_amazon2018(folder, drop_items_without_text=False)
    with pytest.raises(DataError, match=r"reviews_X\.json: line 4: item 'Z' is not in .*meta_X\.json"):
        read_amazon2018(folder, drop_unknown_items=False)


# --- Amazon 2023 ---------------------------------------------------------------------------------------


def _amazon2023(tmp_path: Path) -> Path:
    folder = tmp_path / "amz23"
    folder.mkdir()
    items = synthetic_items(50, seed=2)
    meta = []
    for n, item in enumerate(items.values()):
        record = {"parent_asin": item.item_id, "title": item.title, "main_category": "Office Products",
                  "categories": item.attributes["categories"] if n % 2 else [],
                  "store": "StoreCo", "details": {"Brand": item.attributes["brand"]} if n % 3 else {}}
        meta.append(json.dumps(record))
    _write_lines(folder / "meta_Office_Products.jsonl.gz", meta)
    reviews = [json.dumps({"user_id": x.user_id, "parent_asin": x.item_id, "asin": "variant",
                           "timestamp": x.timestamp * 1000 + 123, "rating": x.rating})
               for x in synthetic_interactions(30, list(items), seed=2)]
    _write_lines(folder / "Office_Products.jsonl.gz", reviews)
    return folder


def test_amazon2023_reads_gz_and_converts_milliseconds(tmp_path):
    folder = _amazon2023(tmp_path)
    raw = read_amazon2023(folder, category="Office_Products")
    expected = synthetic_interactions(30, list(synthetic_items(50, seed=2)), seed=2)
    assert [(x.user_id, x.item_id, x.timestamp) for x in raw.interactions] == \
        [(x.user_id, x.item_id, x.timestamp) for x in expected]
    assert raw.items["i0"].attributes["categories"] == ["Office Products"]  # main_category fallback
    assert raw.items["i0"].attributes["brand"] == "StoreCo"                   # store fallback
    assert raw.items["i1"].attributes["brand"] == synthetic_items(50, seed=2)["i1"].attributes["brand"]
    assert read_amazon2023(folder).raw_counts == raw.raw_counts  # single reviews file found alone


def test_amazon2023_bad_json_line(tmp_path):
    folder = _amazon2023(tmp_path)
    lines = gzip.open(folder / "Office_Products.jsonl.gz", "rt").read().splitlines()
    lines[2] = lines[2][:-5]
    _write_lines(folder / "Office_Products.jsonl.gz", lines)
    with pytest.raises(DataError, match=r"Office_Products\.jsonl\.gz: line 3: invalid JSON"):
        read_amazon2023(folder)


# --- MiniOneRec CSV --------------------------------------------------------------------------------------

CSV_COLUMNS = ["user_id", "history_item_title", "item_title", "history_item_id", "item_id",
               "history_item_sid", "item_sid"]


def _minionerec(tmp_path: Path, *, with_info: bool = True) -> Path:
    """The layout of MiniOneRec's data/Amazon: {train,valid,test}/<stem>.csv and info/<stem>.txt."""
    folder = tmp_path / "Amazon"
    stem = "Office_5_2016-10-2018-11"
    titles = {i: f"Title {i}" for i in range(20)}

    def row(user, hist, target):
        return {"user_id": user, "history_item_title": str([titles[i] for i in hist]),
                "item_title": titles[target], "history_item_id": str(hist), "item_id": target,
                "history_item_sid": str([f"<a_{i}><b_0>" for i in hist]), "item_sid": f"<a_{target}><b_0>"}

    splits = {
        "train": [row("A1", [1], 2), row("A1", [1, 2], 3), row("A2", [4], 5), row("A2", [4, 5], 1)],
        "valid": [row("A1", [1, 2, 3], 6), row("A2", [4, 5, 1], 2)],
        "test": [row("A1", [1, 2, 3, 6], 7), row("A1", [2, 3, 6, 7], 3), row("A2", [4, 5, 1, 2], 2)],
    }
    for name, rows in splits.items():
        (folder / name).mkdir(parents=True)
        with open(folder / name / f"{stem}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    if with_info:
        (folder / "info").mkdir()
        _write_lines(folder / "info" / f"{stem}.txt",
                     [f"<a_{i}><b_0>\tInfo title {i}\t{i}" for i in range(12)])
    return folder


def test_minionerec_csv_keeps_splits(tmp_path):
    raw = read_minionerec_csv(_minionerec(tmp_path))
    assert raw.splits is not None and raw.interactions == []
    assert [len(raw.splits[s]) for s in ("train", "valid", "test")] == [4, 2, 3]  # several test rows per user
    ex = raw.splits["test"][1]
    assert (ex.user_id, ex.history, ex.target) == ("A1", ["2", "3", "6", "7"], "3")
    assert raw.items["1"].title == "Info title 1"           # the info file wins over CSV titles
    assert raw.items["1"].attributes["minionerec_sid"] == "<a_1><b_0>"
    assert len(raw.items) == 12                              # the info file's whole catalog
    assert raw.raw_counts["users"] == 2 and raw.raw_counts["interactions"] == 9


def test_minionerec_csv_titles_from_csv_without_info(tmp_path):
    raw = read_minionerec_csv(_minionerec(tmp_path, with_info=False))
    assert raw.items["7"].title == "Title 7" and raw.items["7"].text == "Title 7"
    assert set(raw.items) == {"1", "2", "3", "4", "5", "6", "7"}
    assert raw.items["7"].attributes["minionerec_sid"] == "<a_7><b_0>"  # kept verbatim, not taken for a tag


def test_minionerec_csv_without_train_rebuilds_windows_from_histories(tmp_path):
    """The fixture's train rows are exactly the prefixes of each user's first valid history: rebuilt, they match."""
    folder = _minionerec(tmp_path)
    original = read_minionerec_csv(folder)
    shutil.rmtree(folder / "train")
    raw = read_minionerec_csv(folder)
    pairs = [(ex.user_id, ex.history, ex.target) for ex in raw.splits["train"]]
    assert pairs == [(ex.user_id, ex.history, ex.target) for ex in original.splits["train"]]
    assert raw.raw_counts["train_windows_rebuilt"] == 4 and "train_windows_rebuilt" not in original.raw_counts
    assert [len(raw.splits[s]) for s in ("valid", "test")] == [2, 3]
    # A user seen only in test is rebuilt from their earliest test row; later rows never feed train.
    test_csv = folder / "test" / "Office_5_2016-10-2018-11.csv"
    with open(test_csv, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=CSV_COLUMNS).writerow(
            {"user_id": "A3", "history_item_id": "[8, 9, 10]", "item_id": 11, "history_item_title": "",
             "item_title": "Title 11", "history_item_sid": "", "item_sid": ""})
    raw = read_minionerec_csv(folder)
    a3 = [(ex.history, ex.target) for ex in raw.splits["train"] if ex.user_id == "A3"]
    assert a3 == [(["8"], "9"), (["8", "9"], "10")]
    assert all(ex.target not in {"6", "7"} for ex in raw.splits["train"] if ex.user_id == "A1")  # valid/test targets
    with pytest.raises(DataError, match="no valid split"):
        shutil.rmtree(folder / "valid")
        read_minionerec_csv(folder)


def test_minionerec_csv_bad_list_and_mismatch(tmp_path):
    folder = _minionerec(tmp_path)
    path = folder / "valid" / "Office_5_2016-10-2018-11.csv"
    text = path.read_text().splitlines()
    text[2] = text[2].replace('"[4, 5, 1]"', '"[4, 5"')
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"valid/Office_5_2016-10-2018-11\.csv: line 3: column 'history_item_id'"):
        read_minionerec_csv(folder)
    text[2] = text[2].replace('"[4, 5"', '"[4, 5, 1, 9]"')
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match="line 3: history_item_title has 3 entries but history_item_id has 4"):
        read_minionerec_csv(folder)


def test_minionerec_csv_textless_item_policies(tmp_path):
    folder = _minionerec(tmp_path, with_info=False)
    path = folder / "test" / "Office_5_2016-10-2018-11.csv"
    path.write_text(path.read_text().replace("Title 7", ""))  # item 7 loses its only title
    raw = read_minionerec_csv(folder)
    assert "7" not in raw.items
    assert raw.dropped == {"items_without_text": 1, "examples_with_items_without_text": 2}
    assert all("7" not in (*ex.history, ex.target) for split in raw.splits.values() for ex in split)
    with pytest.raises(DataError, match=r"item '7' \(used at .*test/Office_5_2016-10-2018-11\.csv: line 2\)"):
        read_minionerec_csv(folder, drop_items_without_text=False)


def test_minionerec_csv_missing_split(tmp_path):
    folder = _minionerec(tmp_path)
    (folder / "valid" / "Office_5_2016-10-2018-11.csv").unlink()
    with pytest.raises(DataError, match="no valid CSV found"):
        read_minionerec_csv(folder)


# --- Ratings through prepare --------------------------------------------------------------------------------


def _prepared(source: str, folder: Path, **fields):
    from rlrec.data.config import PrepareConfig
    from rlrec.data.pipeline import build_dataset

    return build_dataset(PrepareConfig(output_dir="<memory>", source=source, data_path=str(folder),
                                       user_k_core=1, item_k_core=1, **fields))


@pytest.mark.parametrize("release", ["amazon2018", "amazon2023"])
def test_amazon_ratings_survive_prepare(tmp_path, release):
    folder = _amazon2018(tmp_path, gz=False) if release == "amazon2018" else _amazon2023(tmp_path)
    num_users, num_items, seed = (40, 60, 1) if release == "amazon2018" else (30, 50, 2)
    events = synthetic_interactions(num_users, list(synthetic_items(num_items, seed=seed)), seed=seed)
    truth = {(x.user_id, x.item_id): x.rating for x in events}
    data = _prepared(release, folder)
    for ex in (*data.train, *data.valid, *data.test):
        assert ex.rating == truth[(ex.user_id, ex.target)]
        assert ex.history_ratings == [truth[(ex.user_id, item)] for item in ex.history]
    ratings = data.manifest["ratings"]
    assert sum(ratings["counts"].values()) == data.manifest["counts"]["interactions"]  # each event once
    assert ratings["scale"] == [1.0, 5.0]
    test_ratings = [ex.rating for ex in data.test]
    assert ratings["targets"]["test"] == {"liked": sum(r >= 4 for r in test_ratings),
                                          "neutral": sum(r == 3 for r in test_ratings),
                                          "disliked": sum(r <= 2 for r in test_ratings), "unrated": 0}


def test_amazon_reviews_without_ratings_stay_unrated(tmp_path):
    folder = _amazon2023(tmp_path)
    lines = [json.loads(line) for line in gzip.open(folder / "Office_Products.jsonl.gz", "rt")]
    _write_lines(folder / "Office_Products.jsonl.gz",
                 [json.dumps({k: v for k, v in rec.items() if k != "rating"}) for rec in lines])
    data = _prepared("amazon2023", folder)
    assert all(ex.rating is None and ex.history_ratings is None for ex in (*data.train, *data.test))
    assert "ratings" not in data.manifest and data.feedback() is None
    assert "rating" not in data.test[0].to_json() and "history_ratings" not in data.test[0].to_json()


def test_minionerec_csv_rating_columns(tmp_path):
    folder = _minionerec(tmp_path)
    path = folder / "test" / "Office_5_2016-10-2018-11.csv"
    rows = list(csv.DictReader(open(path, newline="")))
    for n, row in enumerate(rows):
        row["rating"] = str(n + 1)
        row["history_rating"] = str([5] * len(json.loads(row["history_item_id"])))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*CSV_COLUMNS, "rating", "history_rating"])
        writer.writeheader()
        writer.writerows(rows)
    raw = read_minionerec_csv(folder)
    assert [ex.rating for ex in raw.splits["test"]] == [1.0, 2.0, 3.0]
    assert raw.splits["test"][0].history_ratings == [5.0] * 4
    assert raw.splits["train"][0].rating is None and raw.splits["train"][0].history_ratings is None
    data = _prepared("minionerec_csv", folder, history_cut=2)
    assert data.test[0].history_ratings == [5.0, 5.0]  # cut with its history
    assert data.manifest["ratings"]["targets"]["test"] == {"liked": 0, "neutral": 1, "disliked": 2, "unrated": 0}
    assert data.manifest["ratings"]["targets"]["train"]["unrated"] == 4

    rows[1]["history_rating"] = "[5]"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*CSV_COLUMNS, "rating", "history_rating"])
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DataError, match=r"Office_5_2016-10-2018-11\.csv: line 3: history_rating has 1 entries"):
        read_minionerec_csv(folder)


def test_minionerec_released_csvs_have_no_ratings(tmp_path):
    data = _prepared("minionerec_csv", _minionerec(tmp_path))
    assert "ratings" not in data.manifest
    assert all(ex.rating is None for ex in data.test)
