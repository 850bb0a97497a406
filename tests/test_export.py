"""Export, `Recommender` and the cache stage on tiny SFT models: full fine-tune, merged LoRA, kept adapter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlrec.cli import run_stage
from rlrec.data.synthetic import synthetic_dataset
from rlrec.inference import Catalog, Recommender, TopKCache
from rlrec.models.checkpoint import load_checkpoint
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import ConfigError, DataError

SIZES = (4, 4, 8)
MAX_HISTORY = 5


def stage(name: str, argv: list[str]):
    """Run a stage exactly as `rlrec NAME ...` does."""
    return run_stage(name, argv)


def _codes(n_items: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    space = np.array(np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij")).reshape(len(SIZES), -1).T
    return space[rng.choice(len(space), n_items, replace=False)]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    dataset = synthetic_dataset(num_users=40, num_items=60, seed=1, history_cut=8)
    (root / "data").mkdir()
    dataset.save(root / "data")
    item_ids = sorted(dataset.items)
    SIDIndex(item_ids, _codes(len(item_ids)), list(SIZES)).save(root / "sid")
    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    return root


def _sft(ws: Path, name: str, *extra: str) -> Path:
    out = ws / name
    if not (out / "manifest.json").is_file():
        run_stage("sft", [
            "--dataset_dir", str(ws / "data"), "--sid_dir", str(ws / "sid"), "--model_name_or_path", str(ws / "base"),
            "--output_dir", str(out), "--use_cpu", "true", "--max_steps", "3", "--per_device_train_batch_size", "8",
            "--learning_rate", "0.01", "--num_train_examples", "24", "--save_strategy", "no", "--report_to", "none",
            "--max_history", str(MAX_HISTORY), "--dtype", "float32", *extra,
        ])
    return out


@pytest.fixture(scope="module")
def full(ws) -> Path:
    return _sft(ws, "sft_full", "--eval_max_examples", "12", "--eval_num_beams", "10", "--eval_k_values", "5", "10",
                "--eval_baselines", "popularity")


@pytest.fixture(scope="module")
def lora(ws) -> Path:
    return _sft(ws, "sft_lora", "--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj",
                "--eval_at_end", "false")


@pytest.fixture(scope="module")
def adapter(ws) -> Path:
    return _sft(ws, "sft_adapter", "--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "q_proj",
                "v_proj", "--merge_lora", "false", "--eval_at_end", "false")


@pytest.fixture(scope="module")
def exported(ws, full) -> Path:
    out = ws / "export_full"
    stage("export", ["--model_path", str(full), "--output_dir", str(out), "--num_beams", "10"])
    return out


def _histories(ws: Path) -> list[list[str]]:
    from rlrec.data.schema import PreparedDataset

    test = PreparedDataset.load(ws / "data").test
    return [ex.history for ex in test[:6]] + [[]]


def _in_memory(ws: Path, source: Path) -> Recommender:
    model, tokenizer = load_checkpoint(source, device="cpu")
    return Recommender.from_model(model, tokenizer, SIDIndex.load(source / "sid"),
                                  Catalog.load(ws / "data" / "items.jsonl"), num_beams=10, batch_size=4,
                                  max_history=MAX_HISTORY)


def _assert_same_topk(before: Recommender, after: Recommender, histories: list[list[str]], k: int = 5) -> None:
    assert after.max_history == before.max_history == MAX_HISTORY
    expected = before.recommend_batch(histories, k)
    got = after.recommend_batch(histories, k)
    for e, g in zip(expected, got, strict=True):
        assert g.item_ids == e.item_ids and len(g.items) == k
        np.testing.assert_allclose([i.score for i in g.items], [i.score for i in e.items], atol=1e-4)


def _front_matter(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_full_finetune_export_recommends_as_the_model_did(ws, full, exported):
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "sid/index.json",
                 "catalog.jsonl", "inference_config.json", "README.md", "manifest.json", "eval_report.json"):
        assert (exported / name).is_file(), name
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["stage"] == "export" and manifest["saved_as"] == "full" and manifest["source_stage"] == "sft"
    assert manifest["prompt_max_history"] == MAX_HISTORY
    catalog = [json.loads(line) for line in (exported / "catalog.jsonl").read_text().splitlines()]
    index = SIDIndex.load(exported / "sid")
    assert [row["item_id"] for row in catalog] == index.item_ids
    assert all(row["sid"] == index.sid(row["item_id"]) and row["title"] for row in catalog)
    assert json.loads((exported / "generation_config.json").read_text())["max_new_tokens"] == len(SIZES)

    after = Recommender.from_pretrained(exported, device="cpu", batch_size=4)
    assert after.num_beams == 10
    _assert_same_topk(_in_memory(ws, full), after, _histories(ws))
    # A training output folder loads the same way (titles from its dataset).
    _assert_same_topk(_in_memory(ws, full), Recommender.from_pretrained(full, device="cpu", num_beams=10,
                                                                        batch_size=4), _histories(ws))


def test_model_card_front_matter_carries_the_latest_metrics(ws, full, exported):
    meta = _front_matter(exported / "README.md")
    assert meta["library_name"] == "transformers" and meta["license"] == "apache-2.0"
    assert "rlrec" in meta["tags"] and "base_model" not in meta  # the base is a local folder, not a Hub id
    evaluation = json.loads((full / "manifest.json").read_text())["eval"]["models"]["model"]["all"]
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert set(metrics) == {"HR@5", "NDCG@5", "HR@10", "NDCG@10"}
    assert metrics["HR@10"] == pytest.approx(evaluation["HR@10"], abs=1e-6)
    assert metrics["NDCG@10"] == pytest.approx(evaluation["NDCG@10"], abs=1e-6)
    from huggingface_hub import ModelCard

    card = ModelCard.load(exported / "README.md")  # the Hub's own parser reads the model-index back
    parsed = {r.metric_name: r.metric_value for r in card.data.eval_results}
    split = json.loads((exported / "eval_report.json").read_text())["split"]
    assert parsed == metrics and {r.dataset_split for r in card.data.eval_results} == {split}

    # A later `rlrec evaluate` report is newer than the manifest: the card shows it.
    report_dir = full / "eval" / "later"
    report_dir.mkdir(parents=True, exist_ok=True)
    later = json.loads((exported / "eval_report.json").read_text())
    later["models"]["model"]["all"]["HR@10"] = 0.987
    (report_dir / "report.json").write_text(json.dumps(later))
    out = ws / "export_card"
    try:
        stage("export", ["--model_path", str(full), "--output_dir", str(out), "--base_model",
                         "HuggingFaceTB/SmolLM2-135M", "--datasets", "someone/ml-100k", "--tags", "movies",
                         "--license", "mit"])
    finally:
        (report_dir / "report.json").unlink()
    meta = _front_matter(out / "README.md")
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M" and meta["datasets"] == ["someone/ml-100k"]
    assert "movies" in meta["tags"] and meta["license"] == "mit"
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["HR@10"] == 0.987


def test_an_evaluation_written_elsewhere_reaches_the_card(ws, full, exported, tmp_path):
    """`eval_report` takes a report `rlrec evaluate` wrote outside the model folder (file or folder)."""
    report = json.loads((exported / "eval_report.json").read_text())
    report["models"] = {"grpo": {**report["models"]["model"], "all": {**report["models"]["model"]["all"],
                                                                       "HR@10": 0.4321}},
                        "popularity": report["models"]["popularity"]}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.json").write_text(json.dumps(report))
    out = ws / "export_elsewhere"
    stage("export", ["--model_path", str(full), "--output_dir", str(out), "--eval_report", str(tmp_path / "eval")])
    meta = _front_matter(out / "README.md")
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["HR@10"] == 0.4321  # the trained model's row ("grpo"), not the baseline's
    with pytest.raises(ConfigError, match="eval_report"):
        stage("export", ["--model_path", str(full), "--output_dir", str(ws / "export_bad"), "--eval_report",
                         str(tmp_path / "nothing")])
    assert not (ws / "export_bad").exists()


def test_merged_lora_export_recommends_as_the_model_did(ws, lora):
    out = ws / "export_lora"
    manifest = stage("export", ["--model_path", str(lora), "--output_dir", str(out), "--num_beams", "10"])
    assert manifest["saved_as"] == "merged"
    meta = _front_matter(out / "README.md")
    assert "model-index" not in meta  # no evaluation recorded
    _assert_same_topk(_in_memory(ws, lora), Recommender.from_pretrained(out, device="cpu", batch_size=4),
                      _histories(ws))


def test_adapter_export_kept_or_merged(ws, adapter):
    before = _in_memory(ws, adapter)  # load_checkpoint merges the adapter in memory
    kept = ws / "export_adapter"
    assert stage("export", ["--model_path", str(adapter), "--output_dir", str(kept), "--num_beams", "10",
                            "--merge_lora", "false"])["saved_as"] == "adapter"
    assert (kept / "adapter_config.json").is_file() and not (kept / "model.safetensors").exists()
    _assert_same_topk(before, Recommender.from_pretrained(kept, device="cpu", batch_size=4), _histories(ws))

    merged = ws / "export_adapter_merged"
    assert stage("export", ["--model_path", str(adapter), "--output_dir", str(merged),
                            "--num_beams", "10"])["saved_as"] == "merged"
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    _assert_same_topk(before, Recommender.from_pretrained(merged, device="cpu", batch_size=4), _histories(ws))


def test_histories_by_title_and_unknown_entries_are_reported(ws, exported):
    rec = Recommender.from_pretrained(exported, device="cpu")
    catalog = [json.loads(line) for line in (exported / "catalog.jsonl").read_text().splitlines()]
    by_id = rec.recommend([catalog[0]["item_id"], catalog[1]["item_id"]], k=3)
    titles = {row["title"] for row in catalog}
    unique = [row for row in catalog[:2] if sum(r["title"] == row["title"] for r in catalog) == 1]
    by_title = rec.recommend([row["title"].upper() if row in unique else row["item_id"] for row in catalog[:2]]
                             + ["no such item"], k=3)
    assert by_title.history == by_id.history == [catalog[0]["item_id"], catalog[1]["item_id"]]
    assert by_title.item_ids == by_id.item_ids and by_title.unknown == ["no such item"] and not by_id.unknown
    assert all(item.title in titles for item in by_id.items)
    excluded = rec.recommend(by_id.history, k=3, exclude_history=True)
    assert not set(excluded.item_ids) & set(by_id.history)
    # A history holding every item the search keeps still gets k unseen items: excluded inside the search.
    long_history = [*by_id.history, *rec.recommend(by_id.history, k=rec.num_beams).item_ids]
    unseen = rec.recommend(long_history, k=5, exclude_history=True)
    assert len(unseen.item_ids) == 5 and not set(unseen.item_ids) & set(long_history)
    strict = Recommender.from_pretrained(exported, device="cpu", on_unknown="error")
    with pytest.raises(DataError, match="no such item"):
        strict.recommend(["no such item"], k=3)
    with pytest.raises(ConfigError, match="list of item ids"):
        rec.recommend("abc", k=3)


def test_candidates_rank_only_the_pool_in_the_models_order(ws, exported, capsys):
    """A candidate pool (ids or titles) is ranked by a search over its SIDs: the full ranking's order within it."""
    rec = Recommender.from_pretrained(exported, device="cpu")
    catalog = [json.loads(line) for line in (exported / "catalog.jsonl").read_text().splitlines()]
    history = [row["item_id"] for row in catalog[:3]]
    everything = rec.recommend(history, k=len(catalog))  # beams raised to k: the whole catalog, in order
    pool = [row["item_id"] for row in catalog[::5]]
    expected = [item for item in everything.item_ids if item in set(pool)]
    assert len(expected) == len(pool)
    within = rec.recommend(history, k=4, candidates=pool[:-1] + [catalog[::5][-1]["title"]])
    assert within.item_ids == expected[:4]
    np.testing.assert_allclose([i.score for i in within.items],
                               [i.score for i in everything.items if i.item_id in expected[:4]], atol=1e-4)
    with pytest.raises(DataError, match="no candidate names an item"):
        rec.recommend(history, k=2, candidates=["nothing here"])
    result = stage("recommend", ["--model_path", str(exported), "--history", ",".join(history), "--k", "2",
                                 "--candidates", ",".join(pool), "--device", "cpu"])
    assert result.item_ids == expected[:2]


def test_recommend_stage_prints_a_table(ws, exported, capsys):
    catalog = [json.loads(line) for line in (exported / "catalog.jsonl").read_text().splitlines()]
    result = stage("recommend", ["--model_path", str(exported), "--history",
                                 json.dumps([catalog[3]["item_id"], "unknown-thing"]), "--k", "4", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "rank" in out and "unknown-thing" in out
    assert all(item.item_id in out for item in result.items) and len(result.items) == 4


def test_push_to_hub_uploads_the_complete_folder(ws, full, monkeypatch):
    from huggingface_hub import HfApi

    calls: dict[str, dict] = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = {"repo_id": repo_id, **kwargs}
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kwargs):
        calls["create_branch"] = {"repo_id": repo_id, **kwargs}

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])  # checked for real while the upload "runs"
        calls["upload_folder"] = {**kwargs, "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                                                            if p.is_file())}
        return None

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    out = ws / "export_push"
    manifest = stage("export", ["--model_path", str(full), "--output_dir", str(out), "--push_to_hub", "true",
                                "--hub_repo_id", "me/rlrec-tiny", "--hub_private", "true", "--hub_revision", "v1"])
    assert calls["create_repo"]["repo_id"] == "me/rlrec-tiny" and calls["create_repo"]["private"] is True
    assert calls["create_repo"]["exist_ok"] is True
    assert calls["create_branch"]["branch"] == "v1"
    upload = calls["upload_folder"]
    assert upload["repo_id"] == "me/rlrec-tiny" and upload["revision"] == "v1" and Path(upload["folder_path"]) == out
    assert set(upload["files"]) == set(json.loads((out / "manifest.json").read_text())["files"])
    assert {"README.md", "model.safetensors", "catalog.jsonl", "sid/index.json"} <= set(upload["files"])
    assert manifest["pushed"]["revision"] == "v1"
    assert _front_matter(out / "README.md")["model-index"][0]["name"] == "rlrec-tiny"


def test_offline_or_failed_push_is_a_clear_error_and_keeps_the_folder(ws, full, monkeypatch):
    from huggingface_hub import HfApi

    from rlrec.export import HubError

    out = ws / "export_offline"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="offline mode is on"):
        stage("export", ["--model_path", str(full), "--output_dir", str(out), "--push_to_hub", "true",
                         "--hub_repo_id", "me/x"])
    assert (out / "manifest.json").is_file() and (out / "model.safetensors").is_file()

    def no_network(self, repo_id, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(HfApi, "create_repo", no_network)
    with pytest.raises(HubError, match="intact"):
        stage("export", ["--output_dir", str(out), "--push_only", "true", "--hub_repo_id", "me/x"])
    assert (out / "manifest.json").is_file() and (out / "README.md").is_file()


def test_export_errors_name_the_problem(ws, full, tmp_path):
    with pytest.raises(ConfigError, match="no manifest.json"):
        stage("export", ["--model_path", str(ws / "base"), "--output_dir", str(tmp_path / "x")])
    with pytest.raises(ConfigError, match="overlaps"):
        stage("export", ["--model_path", str(full), "--output_dir", str(full / "export")])
    with pytest.raises(DataError, match="items.jsonl"):
        stage("export", ["--model_path", str(full), "--output_dir", str(tmp_path / "x"),
                         "--dataset_dir", str(tmp_path)])
    assert not (tmp_path / "x").exists()


def test_cache_stage_build_resume_refresh(ws, exported, monkeypatch):
    from rlrec.data.schema import PreparedDataset
    from rlrec.inference.topk_cache import latest_histories

    out = ws / "cache"
    argv = ["--action", "build", "--model_path", str(exported), "--dataset_dir", str(ws / "data"),
            "--output_dir", str(out), "--k", "5", "--batch_size", "16", "--device", "cpu"]
    real = Recommender.recommend_batch
    asked: list[list[str]] = []

    def dying(self, histories, k, **kwargs):
        if asked:
            raise RuntimeError("killed")
        asked.extend(map(list, histories))
        return real(self, histories, k, **kwargs)

    monkeypatch.setattr(Recommender, "recommend_batch", dying)
    with pytest.raises(RuntimeError, match="killed"):
        stage("cache", argv)
    assert len(asked) == 16
    monkeypatch.setattr(Recommender, "recommend_batch", real)
    manifest = stage("cache", argv)
    assert manifest["status"] == "complete" and manifest["batches_done"] == 3

    histories = latest_histories(PreparedDataset.load(ws / "data"))
    cache = TopKCache.load(out)
    assert set(cache.users()) == set(histories) and all(len(cache.get(u)) == 5 for u in histories)
    rec = Recommender.from_pretrained(exported, device="cpu")
    user = sorted(histories)[0]
    direct = rec.recommend(histories[user], k=5)  # alone, where the cache decoded it in a padded batch
    assert {c.item_id for c in cache.get(user)} == set(direct.item_ids)
    np.testing.assert_allclose([c.score for c in cache.get(user)], [i.score for i in direct.items], atol=1e-3)

    before = (out / "topk.jsonl").read_text().splitlines()
    newer = ws / "newer.jsonl"
    newer.write_text("".join(json.dumps({"user_id": u, "history": h[:1]}) + "\n" for u, h in histories.items()))
    refreshed = sorted(histories)[:2]
    stage("cache", ["--action", "refresh", "--output_dir", str(out), "--users", ",".join(refreshed),
                    "--histories_file", str(newer), "--device", "cpu"])
    after = (out / "topk.jsonl").read_text().splitlines()
    changed = {json.loads(a)["user_id"] for a, b in zip(after, before, strict=True) if a != b}
    assert changed <= set(refreshed)
    cache = TopKCache.load(out)
    expected = rec.recommend_batch([histories[u][:1] for u in refreshed], k=5)
    for u, result in zip(refreshed, expected, strict=True):
        assert [c.item_id for c in cache.get(u)] == result.item_ids


def test_cache_build_honours_users(ws, exported):
    from rlrec.data.schema import PreparedDataset
    from rlrec.inference.topk_cache import latest_histories

    named = sorted(latest_histories(PreparedDataset.load(ws / "data")))[1:4]
    argv = ["--action", "build", "--model_path", str(exported), "--dataset_dir", str(ws / "data"), "--k", "3",
            "--device", "cpu"]
    manifest = stage("cache", [*argv, "--output_dir", str(ws / "some"), "--users", ",".join(named)])
    assert manifest["num_users"] == 3 and sorted(TopKCache.load(ws / "some").users()) == named
    with pytest.raises(ConfigError, match=r"users \['nobody'\] \(of 1\) have no history"):
        stage("cache", [*argv, "--output_dir", str(ws / "none"), "--users", f"{named[0]},nobody"])
    assert not (ws / "none").exists()
