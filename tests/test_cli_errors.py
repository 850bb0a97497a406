"""Bad input to every `rlrec` stage ends in one `rlrec: error: ...` line, exit code 2, and no output left behind.

Each case runs the real entry point (`rlrec.cli.main`) in-process on small fixtures and checks the three
promises of issue 16: the exit code is 2; stderr is exactly one line that names the file (and line or field)
and says what was expected; nothing was written (no output folder, no `.NAME.tmp-*` sibling, nothing new in
the shared fixtures). Every case fails before any training, so the module stays fast.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from transformers.utils import logging as hf_logging

from rlrec.cli import main as cli_main
from rlrec.data.synthetic import synthetic_dataset, synthetic_interactions, synthetic_items
from rlrec.init.vocab import add_sid_tokens
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.sid.index import SIDIndex

ROOT = Path(__file__).resolve().parents[1]
SIZES = (4, 4, 8)
PLUGIN = "rlrec_cli_error_rewards"
PLUGIN_SOURCE = '''
def wrong_length(completions, **kwargs):
    """A user reward with a bug: one score for the whole batch instead of one per completion."""
    return [0.0]
'''


def _codes(n_items: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(np.prod(SIZES)), size=n_items, replace=False)
    return np.stack(np.unravel_index(flat, SIZES), axis=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A prepared dataset, its SID index, a tiny base model, a tiny "trained" model (SID tokens, `sid/`, manifest),
    a raw Amazon dump, saved rollouts and a reward plugin: every input a stage reads, once per module."""
    root = tmp_path_factory.mktemp("cli_errors")
    dataset = synthetic_dataset(num_users=30, num_items=40, seed=1, history_cut=6)
    (root / "data").mkdir()
    dataset.save(root / "data")
    item_ids = sorted(dataset.items)
    index = SIDIndex(item_ids, _codes(len(item_ids)), list(SIZES))
    index.save(root / "sid")

    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    add_sid_tokens(tokenizer, model, index.vocabulary())
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    index.save(root / "model" / "sid")
    (root / "model" / "manifest.json").write_text(json.dumps({
        "stage": "sft", "dataset_dir": str(root / "data"), "sid_dir": str(root / "sid"), "saved_as": "full",
        "base_model": str(root / "base"), "prompt_max_history": 5}))

    raw = root / "raw"
    raw.mkdir()
    items = synthetic_items(50, seed=7)
    with open(raw / "meta_Office.json", "w") as f:
        for item in items.values():
            f.write(json.dumps({"asin": item.item_id, "title": item.title}) + "\n")
    reviews = "".join(json.dumps({"reviewerID": x.user_id, "asin": x.item_id, "unixReviewTime": x.timestamp,
                                  "overall": x.rating, "reviewText": "fine " * 40}) + "\n"
                      for x in synthetic_interactions(60, list(items), seed=7))
    (raw / "reviews_Office_5.json.gz").write_bytes(gzip.compress(reviews.encode()))

    with open(root / "rollouts.jsonl", "w") as f:
        for ex in dataset.valid[:3]:
            candidates = [{"item_id": item, "text": index.sid(item), "completion_ids": [], "beam_rank": rank}
                          for rank, item in enumerate(item_ids[:4])]
            f.write(json.dumps({"user_id": ex.user_id, "target": ex.target, "target_sid": index.sid(ex.target),
                                "prompt": [], "candidates": candidates}) + "\n")

    (root / "plugins").mkdir()
    (root / "plugins" / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    sys.path.insert(0, str(root / "plugins"))
    # transformers draws a "Loading weights" bar on stderr even off a terminal; like the log records (which
    # pytest routes to caplog) it is not the error line these tests read.
    hf_logging.disable_progress_bar()
    yield root
    hf_logging.enable_progress_bar()
    sys.path.remove(str(root / "plugins"))
    sys.modules.pop(PLUGIN, None)


# -- helpers that build a case's bad input in its own folder -------------------------------------------------------


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _dataset_copy(world: Path, tmp: Path, name: str = "data") -> Path:
    folder = tmp / name
    shutil.copytree(world / "data", folder)
    return folder


def _empty_split(world: Path, tmp: Path, split: str) -> Path:
    folder = _dataset_copy(world, tmp)
    (folder / f"{split}.jsonl").write_text("")
    return folder


def _model_copy(world: Path, tmp: Path, drop: tuple[str, ...] = ()) -> Path:
    folder = tmp / "model"
    shutil.copytree(world / "model", folder)
    for name in drop:
        target = folder / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return folder


def _other_catalog_index(tmp: Path) -> Path:
    """A valid SID index of items no prepared dataset here holds: an index built for another catalog."""
    ids = [f"other{i}" for i in range(20)]
    SIDIndex(ids, _codes(len(ids), seed=3), list(SIZES)).save(tmp / "other_sid")
    return tmp / "other_sid"


def _renamed_token_index(world: Path, tmp: Path) -> Path:
    """The dataset's index with SID tokens `<x_0>`... that the trained model's tokenizer never had."""
    index = SIDIndex.load(world / "sid")
    SIDIndex(index.item_ids, index.codes, index.codebook_sizes, token_prefixes=["x", "y", "z"]).save(tmp / "xyz")
    return tmp / "xyz"


def _truncated_index(world: Path, tmp: Path) -> Path:
    """A SID index folder whose `index.json` stops half-way, as after a full disk."""
    (tmp / "sid").mkdir()
    (tmp / "sid" / "index.json").write_text((world / "sid" / "index.json").read_text()[:200])
    return tmp / "sid"


def _truncated_file(folder: Path, name: str) -> Path:
    """`folder` with its file `name` cut to half its size, as an interrupted copy leaves it."""
    (folder / name).write_bytes(_truncated((folder / name).read_bytes()))
    return folder


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _sft(world: Path, tmp: Path, *extra: str, data: Path | None = None, sid: Path | None = None,
         model: Path | None = None) -> list[str]:
    return ["sft", "--dataset_dir", str(data or world / "data"), "--sid_dir", str(sid or world / "sid"),
            "--model_name_or_path", str(model or world / "base"), "--output_dir", str(tmp / "out"),
            "--use_cpu", "true", "--max_steps", "1", "--per_device_train_batch_size", "4", "--save_strategy", "no",
            "--report_to", "none", "--eval_at_end", "false", "--dtype", "float32", *extra]


def _grpo(world: Path, tmp: Path, *extra: str, data: Path | None = None, model: Path | None = None) -> list[str]:
    return ["grpo", "--dataset_dir", str(data or world / "data"),
            "--model_name_or_path", str(model or world / "model"), "--output_dir", str(tmp / "out"),
            "--use_cpu", "true", "--max_steps", "1", "--num_generations", "4", "--per_device_train_batch_size", "4",
            "--save_strategy", "no", "--report_to", "none", "--eval_at_end", "false", *extra]


def _evaluate(world: Path, tmp: Path, *extra: str, data: Path | None = None, model: Path | None = None) -> list[str]:
    return ["evaluate", "--model_path", str(model or world / "model"), "--dataset_dir", str(data or world / "data"),
            "--output_dir", str(tmp / "out"), "--device", "cpu", "--num_beams", "5", "--k_values", "1", "5",
            "--baselines", "popularity", *extra]


def _setrec(world: Path, tmp: Path, *extra: str, data: Path | None = None) -> list[str]:
    return ["setrec", "--dataset_dir", str(data or world / "data"), "--output_dir", str(tmp / "out"),
            "--model_name_or_path", str(world / "base"), "--sasrec_epochs", "1", "--max_steps", "1",
            "--use_cpu", "true", "--eval_plot", "false", *extra]


def _prepare(world: Path, tmp: Path, reviews: bytes, name: str = "reviews_Office_5.json.gz") -> list[str]:
    raw = tmp / "raw"
    raw.mkdir()
    shutil.copy(world / "raw" / "meta_Office.json", raw)
    (raw / name).write_bytes(reviews)
    return ["prepare", "--source", "amazon2018", "--data_path", str(raw), "--reviews_file", name,
            "--category", "Office", "--user_k_core", "1", "--item_k_core", "1", "--output_dir", str(tmp / "out")]


def _recipe(tmp: Path, text: str | bytes, stage: str, *extra: str) -> list[str]:
    path = _write(tmp / f"{stage}.yaml", text)
    return [stage, "--config", str(path), "--output_dir", str(tmp / "out"), *extra]


# -- the cases: (id, argv builder, phrases the one error line must hold) ------------------------------------------


@dataclass
class Case:
    id: str
    argv: Callable[[Path, Path], list[str]]
    expected: Callable[[Path, Path], list[str]]


CASES = [
    # The command line and the recipe, before any stage runs.
    Case("unknown_stage", lambda w, t: ["sftt", "--output_dir", str(t / "out")],
         lambda w, t: ["unknown stage 'sftt'", "did you mean 'sft'", "expected one of: prepare, sid, sft"]),
    Case("config_file_missing",
         lambda w, t: ["sft", "--config", str(t / "missing.yaml"), "--output_dir", str(t / "out")],
         lambda w, t: [f"{t / 'missing.yaml'}: config file not found"]),
    Case("config_is_a_folder", lambda w, t: ["sid", "--config", str(t), "--output_dir", str(t / "out")],
         lambda w, t: [f"{t}: config is a folder; expected a YAML file"]),
    Case("config_flag_without_file", lambda w, t: ["evaluate", "--output_dir", str(t / "out"), "--config"],
         lambda w, t: ["--config needs a file"]),
    Case("yaml_does_not_parse", lambda w, t: _recipe(t, "max_steps: 3\nlearning_rate: [oops\n", "sft"),
         lambda w, t: [f"{t / 'sft.yaml'}: line 2, column 16: invalid YAML", "expected ',' or ']'"]),
    Case("yaml_not_a_mapping", lambda w, t: _recipe(t, "- max_steps\n- 3\n", "grpo"),
         lambda w, t: [f"{t / 'grpo.yaml'}: expected a mapping of `field: value` lines, found a YAML list"]),
    Case("yaml_not_utf8", lambda w, t: _recipe(t, b"split: test\nmodel_name: \xff\xfe\n", "evaluate"),
         lambda w, t: [f"{t / 'evaluate.yaml'}: config is not UTF-8 text", "expected a YAML file"]),
    Case("yaml_unknown_field", lambda w, t: _recipe(t, "max_steps: 1\nlearnin_rate: 0.1\n", "sft"),
         lambda w, t: [f"{t / 'sft.yaml'}: line 2: unknown field `learnin_rate`", "did you mean `learning_rate`"]),
    Case("yaml_list_for_a_number", lambda w, t: _recipe(t, "learning_rate: [1, 2]\n", "sft"),
         lambda w, t: [f"{t / 'sft.yaml'}: line 1: field `learning_rate` is [1, 2]; expected a number"]),
    Case("yaml_word_for_an_integer", lambda w, t: _recipe(t, "report_to: none\nmax_steps: abc\n", "grpo"),
         lambda w, t: [f"{t / 'grpo.yaml'}: line 2: field `max_steps` is 'abc'; expected an integer"]),
    Case("yaml_word_for_a_bool", lambda w, t: _recipe(t, "use_cpu: maybe\n", "setrec"),
         lambda w, t: [f"{t / 'setrec.yaml'}: line 1: field `use_cpu` is 'maybe'; expected true or false"]),
    Case("yaml_number_for_a_list", lambda w, t: _recipe(t, "num_beams: 5\nk_values: 5\n", "evaluate"),
         lambda w, t: [f"{t / 'evaluate.yaml'}: line 2: field `k_values` is 5; expected a list of integers"]),
    Case("yaml_value_not_a_choice", lambda w, t: _recipe(t, "dtype: float64\n", "sft"),
         lambda w, t: [f"{t / 'sft.yaml'}: line 1: field `dtype` is 'float64'; expected one of: auto, bfloat16"]),
    Case("yaml_unquoted_no_for_a_choice", lambda w, t: _recipe(t, "save_strategy: no\n", "sft"),
         lambda w, t: [f"{t / 'sft.yaml'}: line 1: field `save_strategy` is False; expected one of: no, steps",
                       "quote the word"]),
    Case("flag_word_for_an_integer", lambda w, t: _sft(w, t, "--max_steps", "abc"),
         lambda w, t: ["sft: command line: argument --max_steps", "invalid int value: 'abc'"]),
    Case("flag_unknown", lambda w, t: _evaluate(w, t, "--num_beam", "5"),
         lambda w, t: ["evaluate: unknown command-line option --num_beam", "did you mean --num_beams?"]),
    # prepare: raw files.
    Case("prepare_truncated_gz",
         lambda w, t: _prepare(w, t, _truncated((w / "raw/reviews_Office_5.json.gz").read_bytes())),
         lambda w, t: [f"{t / 'raw/reviews_Office_5.json.gz'}: line ", "the compressed file ends early",
                       "expected a complete gzip file"]),
    Case("prepare_gz_name_plain_text", lambda w, t: _prepare(w, t, b'{"reviewerID": "u1"}\n'),
         lambda w, t: [f"{t / 'raw/reviews_Office_5.json.gz'}: not a gzip file", "expected gzip-compressed text"]),
    Case("prepare_gzip_without_gz_name",
         lambda w, t: _prepare(w, t, (w / "raw/reviews_Office_5.json.gz").read_bytes(), "reviews_Office_5.json"),
         lambda w, t: [f"{t / 'raw/reviews_Office_5.json'}: line 1: not UTF-8 text", "give it a .gz name"]),
    Case("prepare_movielens_without_item_file",
         lambda w, t: ["prepare", "--source", "movielens", "--data_path", str(_write(t / "ml.inter", "x").parent),
                       "--output_dir", str(t / "out")],
         lambda w, t: [f"{t}: no item file (*.item) found", "looked for *.item"]),
    # sid: the prepared dataset.
    Case("sid_dataset_missing",
         lambda w, t: ["sid", "--dataset_dir", str(t / "nowhere"), "--output_dir", str(t / "out")],
         lambda w, t: [f"{t / 'nowhere'}: prepared dataset folder not found", "rlrec prepare"]),
    Case("sid_items_line_not_json",
         lambda w, t: ["sid", "--dataset_dir", str(_corrupt_line(w, t, "items.jsonl", 3, '{"item_id": "i2", ')),
                       "--output_dir", str(t / "out")],
         lambda w, t: [f"{t / 'data/items.jsonl'}: line 3: invalid JSON"]),
    Case("history_names_no_item",
         lambda w, t: ["sid", "--dataset_dir", str(_corrupt_line(w, t, "train.jsonl", 2, json.dumps(
             {"user_id": "u0", "history": ["i0", "nope"], "target": "i1", "timestamp": 1}))),
                       "--output_dir", str(t / "out")],
         lambda w, t: [f"{t / 'data/train.jsonl'}: line 2: item 'nope' is not in items.jsonl"]),
    Case("sid_file_missing",
         lambda w, t: ["sid", "--dataset_dir", str(w / "data"), "--sid_file", str(t / "codes.json"),
                       "--output_dir", str(t / "out")],
         lambda w, t: [f"{t / 'codes.json'}", "sid_file not found; expected a JSON object mapping item id"]),
    # sft: model, index, dataset.
    Case("sft_model_without_weights",
         lambda w, t: _sft(w, t, model=_model_copy(w, t, drop=("model.safetensors",))),
         lambda w, t: [f"{t / 'model'}: not a model folder", "missing model weights (model.safetensors"]),
    Case("sft_sid_dir_without_index",
         lambda w, t: _sft(w, t, sid=_write(t / "README", "no index here").parent),
         lambda w, t: [f"{t / 'index.json'}: file not found; expected the SID index `rlrec sid` writes"]),
    Case("sft_index_of_another_catalog", lambda w, t: _sft(w, t, sid=_other_catalog_index(t)),
         lambda w, t: [f"{t / 'other_sid'}: the SID index has no SID for", "was it built from this dataset?"]),
    Case("sft_index_json_truncated",
         lambda w, t: _sft(w, t, sid=_truncated_index(w, t)),
         lambda w, t: [f"{t / 'sid/index.json'}: line ", "invalid JSON"]),
    Case("sft_empty_train_split", lambda w, t: _sft(w, t, data=_empty_split(w, t, "train")),
         lambda w, t: [f"{t / 'data/train.jsonl'}", "empty", "expected at least one example"]),
    # resume from a checkpoint that is not there: refused before the model loads (rlrec/utils/output_dirs.py)
    # values out of range, caught before any work (rlrec/utils/ranges.py)
    Case("sft_negative_epochs", lambda w, t: _sft(w, t, "--max_steps", "-1", "--num_train_epochs", "-1"),
         lambda w, t: ["sft: invalid configuration", "num_train_epochs=-1.0; expected a number > 0"]),
    Case("sft_zero_batch", lambda w, t: _sft(w, t, "--per_device_train_batch_size", "0"),
         lambda w, t: ["per_device_train_batch_size=0; expected a number >= 1"]),
    Case("sft_max_steps_zero", lambda w, t: _sft(w, t, "--max_steps", "0"),
         lambda w, t: ["max_steps=0; expected a number >= 1 or -1"]),
    Case("grpo_negative_learning_rate", lambda w, t: _grpo(w, t, "--learning_rate", "-0.001"),
         lambda w, t: ["grpo: invalid configuration", "learning_rate=-0.001; expected a number >= 0"]),
    Case("grpo_negative_beta", lambda w, t: _grpo(w, t, "--beta", "-0.1"),
         lambda w, t: ["beta=-0.1; expected a number >= 0"]),
    Case("sid_codebook_of_one", lambda w, t: ["sid", "--dataset_dir", str(w / "data"), "--output_dir",
                                              str(t / "out"), "--codebook_size", "1"],
         lambda w, t: ["sid: invalid configuration", "codebook_size=1; expected a number >= 2"]),
    Case("sft_resume_from_missing_checkpoint",
         lambda w, t: _sft(w, t, "--resume_from_checkpoint", str(t / "runs" / "checkpoint-9")),
         lambda w, t: [f"sft: resume_from_checkpoint={t / 'runs' / 'checkpoint-9'}: no such folder", "expected a"]),
    # grpo: the SFT model and the rewards.
    Case("grpo_model_without_sid_index", lambda w, t: _grpo(w, t, model=_model_copy(w, t, drop=("sid",))),
         lambda w, t: [f"{t / 'model/sid/index.json'}: file not found; expected the SID index"]),
    Case("grpo_index_tokens_not_in_tokenizer", lambda w, t: _grpo(w, t, "--sid_dir", str(_renamed_token_index(w, t))),
         lambda w, t: ["not in the tokenizer"]),
    Case("grpo_reward_plugin_does_not_import", lambda w, t: _grpo(w, t, "--rewards", "no_such_module:reward"),
         lambda w, t: ["reward 'no_such_module:reward': cannot import module 'no_such_module'"]),
    Case("grpo_empty_train_split", lambda w, t: _grpo(w, t, data=_empty_split(w, t, "train")),
         lambda w, t: [f"{t / 'data/train.jsonl'}", "empty", "expected at least one example"]),
    Case("grpo_resume_from_missing_checkpoint",
         lambda w, t: _grpo(w, t, "--resume_from_checkpoint", str(t / "nothing")),
         lambda w, t: [f"grpo: resume_from_checkpoint={t / 'nothing'}: no such folder", "expected a"]),
    # rewards: a user reward with a bug, saved rollouts that are cut short.
    Case("rewards_plugin_wrong_length",
         lambda w, t: ["rewards", "--rollouts_file", str(w / "rollouts.jsonl"), "--sid_dir", str(w / "sid"),
                       "--rewards", f"exact_match,{PLUGIN}:wrong_length", "--output_dir", str(t / "out")],
         lambda w, t: [f"reward 'wrong_length' ({PLUGIN}:wrong_length) returned 1 values for 12 completions",
                       "expected one score per completion"]),
    Case("rewards_rollouts_truncated_gz",
         lambda w, t: ["rewards", "--rollouts_file",
                       str(_write(t / "rollouts.jsonl.gz",
                                  _truncated(gzip.compress((w / "rollouts.jsonl").read_bytes() * 40)))),
                       "--sid_dir", str(w / "sid"), "--output_dir", str(t / "out")],
         lambda w, t: [f"{t / 'rollouts.jsonl.gz'}: line ", "the compressed file ends early"]),
    # evaluate.
    Case("evaluate_model_without_weights",
         lambda w, t: _evaluate(w, t, model=_model_copy(w, t, drop=("model.safetensors",))),
         lambda w, t: [f"{t / 'model'}: not a model folder", "missing model weights"]),
    Case("evaluate_weights_truncated",
         lambda w, t: _evaluate(w, t, model=_truncated_file(_model_copy(w, t), "model.safetensors")),
         lambda w, t: [f"{t / 'model/model.safetensors'}: unreadable weights",
                       "expected a complete safetensors file"]),
    Case("evaluate_dataset_of_another_catalog",
         lambda w, t: _evaluate(w, t, "--sid_dir", str(_other_catalog_index(t))),
         lambda w, t: [f"SID index {t / 'other_sid'} does not match the dataset", "have no SID"]),
    Case("evaluate_empty_test_split", lambda w, t: _evaluate(w, t, data=_empty_split(w, t, "test")),
         lambda w, t: [f"{t / 'data/test.jsonl'}", "empty", "expected at least one example"]),
    # export.
    Case("export_unfinished_run",
         lambda w, t: ["export", "--model_path", str(_model_copy(w, t, drop=("manifest.json",))),
                       "--output_dir", str(t / "out")],
         lambda w, t: [f"{t / 'model'}: no manifest.json", "expected the output folder of a finished"]),
    Case("export_model_without_sid_index",
         lambda w, t: ["export", "--model_path", str(_model_copy(w, t, drop=("sid",))),
                       "--output_dir", str(t / "out")],
         lambda w, t: [f"{t / 'model/sid'}: no SID index (index.json)"]),
    # recommend.
    Case("recommend_history_names_no_item",
         lambda w, t: ["recommend", "--model_path", str(w / "model"), "--history", '["i1", "nope"]',
                       "--on_unknown", "error", "--device", "cpu"],
         lambda w, t: ["history", "'nope'", "name no item of the catalog"]),
    Case("recommend_tokenizer_json_truncated",
         lambda w, t: ["recommend", "--model_path", str(_truncated_file(_model_copy(w, t), "tokenizer.json")),
                       "--history", '["i1"]', "--device", "cpu"],
         lambda w, t: [f"{t / 'model/tokenizer.json'}: line ", "invalid JSON", "save or download the file again"]),
    Case("recommend_history_not_json",
         lambda w, t: ["recommend", "--model_path", str(w / "model"), "--history", '["i1", oops', "--device", "cpu"],
         lambda w, t: ["history: invalid JSON list"]),
    # cache.
    Case("cache_refresh_without_cache",
         lambda w, t: ["cache", "--action", "refresh", "--model_path", str(w / "model"), "--users", "u0",
                       "--output_dir", str(t / "out")],
         lambda w, t: [f"{t / 'out'}: no complete cache to refresh", "build it first"]),
    Case("cache_histories_line_not_json",
         lambda w, t: ["cache", "--model_path", str(w / "model"), "--histories_file",
                       str(_write(t / "h.jsonl", '{"user_id": "u0", "history": ["i1"]}\n{"user_id": \n')),
                       "--output_dir", str(t / "out"), "--device", "cpu"],
         lambda w, t: [f"{t / 'h.jsonl'}: line 2: invalid JSON"]),
    # setrec.
    Case("setrec_dataset_missing", lambda w, t: _setrec(w, t, data=t / "nowhere"),
         lambda w, t: [f"{t / 'nowhere'}: prepared dataset folder not found"]),
    Case("setrec_empty_train_split", lambda w, t: _setrec(w, t, data=_empty_split(w, t, "train")),
         lambda w, t: [f"{t / 'data/train.jsonl'}", "empty", "expected at least one example"]),
]


def _corrupt_line(world: Path, tmp: Path, name: str, lineno: int, text: str) -> Path:
    """A copy of the dataset with line `lineno` of `name` replaced by `text`."""
    folder = _dataset_copy(world, tmp)
    lines = (folder / name).read_text().splitlines()
    lines[lineno - 1] = text
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def _snapshot(*folders: Path) -> set[str]:
    """Every path under `folders` (bytecode caches aside): what a failed stage must leave unchanged."""
    return {str(p) for folder in folders for p in folder.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_clear_line(case: Case, world: Path, tmp_path: Path, capsys) -> None:
    argv = case.argv(world, tmp_path)
    capsys.readouterr()
    before = _snapshot(world, tmp_path)
    with warnings.catch_warnings(), pytest.raises(SystemExit) as exc:
        warnings.simplefilter("ignore")  # library deprecation notices are not the stage's error line
        cli_main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlrec: error: "), err
    for phrase in case.expected(world, tmp_path):
        assert phrase in lines[0], f"{phrase!r} not in {lines[0]!r}"
    assert _snapshot(world, tmp_path) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name == "out" or p.name.startswith(".out.")]


@pytest.mark.parametrize("case_id", ["config_file_missing", "yaml_does_not_parse", "prepare_truncated_gz"])
def test_a_real_process_prints_only_the_line(case_id: str, world: Path, tmp_path: Path) -> None:
    """The three tracebacks of issue 16, through `python -m rlrec`: stderr holds the one line and nothing else."""
    case = next(c for c in CASES if c.id == case_id)
    proc = subprocess.run([sys.executable, "-m", "rlrec", *case.argv(world, tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("rlrec: error: "), proc.stderr
    assert all(phrase in proc.stderr for phrase in case.expected(world, tmp_path)), proc.stderr
    assert not (tmp_path / "out").exists()


def test_cases_are_many_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


def test_help_still_prints_and_exits_zero(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["evaluate", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rlrec evaluate") and "--num_beams" in out


def test_help_shows_each_ranged_fields_default_and_range(capsys) -> None:
    with pytest.raises(SystemExit):
        cli_main(["dpo", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "Allowed: a number >= 1 or -1. (default: -1)" in text  # --max_steps
    assert "(default: 20)" in text and "Allowed: a number >= 0." in text


def test_yaml_values_argparse_converts_are_accepted(world: Path, tmp_path: Path) -> None:
    """The type check must not refuse what TrlParser accepts: `1e-3` (a string to YAML), quoted numbers, null."""
    from rlrec.scripts.sft import make_parser
    from rlrec.utils.recipe_file import check_config_file

    recipe = _write(tmp_path / "sft.yaml", "learning_rate: 1e-3\nmax_steps: '5'\nuse_cpu: true\nreport_to: none\n"
                                           "num_train_examples: null\neval_k_values: [1, 5]\nsave_strategy: steps\n"
                                           "tasks: {next_item: 1.0}\nenv: {RLREC_TEST_VAR: x}\n"
                                           "lora_target_modules: all-linear\n")
    config = check_config_file(make_parser(), str(recipe))
    assert config["learning_rate"] == "1e-3" and config["eval_k_values"] == [1, 5]


def test_version_prints_the_package_version(capsys) -> None:
    import rlrec

    for flag in ("--version", "-V"):
        cli_main([flag])
        assert capsys.readouterr().out.strip() == f"rlrec {rlrec.__version__}"
