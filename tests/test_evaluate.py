"""`SIDRanker` and the `rlrec evaluate` stage on a tiny model, a synthetic dataset and a random SID index."""

import json

import numpy as np
import pytest
import torch

from rlrec.data.split import cold_items
from rlrec.data.synthetic import synthetic_dataset
from rlrec.evaluation.run import EvalSettings, EvaluateConfig, evaluate_model, select_examples
from rlrec.init.vocab import add_sid_tokens
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.ranking import SIDRanker, encode_prompts, ranked_ids
from rlrec.scripts import evaluate as evaluate_stage
from rlrec.sid.index import SIDIndex
from rlrec.tasks.prompts import history_prompt
from rlrec.utils.errors import ConfigError, DataError

SIZES = (4, 4, 4)
FAST_SASREC = {"sasrec_epochs": 1, "sasrec_max_len": 8, "sasrec_hidden_size": 16}


def random_index(item_ids, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(np.prod(sizes)), size=len(item_ids), replace=False)
    return SIDIndex(list(item_ids), np.stack(np.unravel_index(flat, sizes), axis=1), list(sizes))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A prepared dataset with cold test targets, its SID index, and a tiny model saved with the SID tokens."""
    root = tmp_path_factory.mktemp("evaluate")
    dataset = synthetic_dataset(40, 60, seed=0, item_k_core=1)
    (root / "data").mkdir()
    dataset.save(root / "data")
    index = random_index(dataset.items)
    model, tokenizer = tiny_model_and_tokenizer()
    add_sid_tokens(tokenizer, model, index.vocabulary())
    with torch.no_grad():  # spread the logits of a fresh model so the beams are well apart
        model.get_output_embeddings().weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    index.save(root / "model" / "sid")
    return {"root": root, "dataset": dataset, "index": index, "model": model, "tokenizer": tokenizer}


def test_prompts_are_rendered_as_sft_renders_them(world):
    """TRL tokenizes a conversational prompt with apply_chat_template(add_generation_prompt=True, tokenize=True)."""
    rec = SIDRanker(world["model"], world["tokenizer"], world["index"], num_beams=5)
    histories = [ex.history for ex in world["dataset"].test[:4]]
    input_ids, attention_mask = encode_prompts(rec.tokenizer, rec.prompts(histories))
    for row, (history, ids, mask) in enumerate(zip(histories, input_ids, attention_mask, strict=True)):
        messages = history_prompt(history, world["index"])
        expected = world["tokenizer"].apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                          return_dict=True)["input_ids"]
        assert ids[mask.bool()].tolist() == expected, row
        assert mask[-1] == 1  # left padded
    assert rec.prompt_texts([["x"]])[0].endswith("<|im_start|>assistant\n")  # unknown items are skipped
    capped = SIDRanker(world["model"], world["tokenizer"], world["index"], max_history=2)
    assert capped.prompt_texts([histories[0]]) == rec.prompt_texts([histories[0][-2:]])


def test_recommends_real_distinct_items(world):
    index = world["index"]
    rec = SIDRanker(world["model"], world["tokenizer"], index, num_beams=12, batch_size=7)
    histories = [ex.history for ex in world["dataset"].test]
    scored = rec.rank(histories, 10)
    ranked = ranked_ids(scored)
    assert len(ranked) == len(histories)
    for items, row in zip(ranked, scored, strict=True):
        assert len(items) == 10 and len(set(items)) == 10 and all(item in index for item in items)
        assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)  # log-probabilities, best first
    # Batching (and the ranker's grouping by history length) does not change the answer, nor its order.
    assert ranked_ids(SIDRanker(world["model"], world["tokenizer"], index, num_beams=12, batch_size=40).rank(
        histories, 10)) == ranked
    assert ranked_ids(rec.rank(histories[::-1], 10)) == ranked[::-1]

    # A catalog smaller than the beams: every item once, padding dropped.
    small = SIDIndex(index.item_ids[:5], index.codes[:5], list(SIZES))
    ranked = ranked_ids(SIDRanker(world["model"], world["tokenizer"], small, num_beams=8).rank(histories[:3], 8))
    assert all(sorted(items) == sorted(small.item_ids) for items in ranked)


def test_a_pool_ranks_as_the_full_ranking_does_within_it(world):
    """Beam search over a pool's trie gives the exhaustive ranking's order of those items, with the same scores."""
    index = world["index"]
    histories = [ex.history for ex in world["dataset"].test[:5]]
    full = SIDRanker(world["model"], world["tokenizer"], index, num_beams=64)  # > 60 items: exhaustive
    pool = index.item_ids[::7]
    ranked_all = full.rank(histories, 64)
    for everything, within in zip(ranked_all, full.rank(histories, 64, pool=[*pool, "unknown"]), strict=True):
        assert [i for i, _ in within] == [i for i, _ in everything if i in set(pool)]
        assert [s for _, s in within] == pytest.approx([s for i, s in everything if i in set(pool)], abs=1e-4)
    assert full.rank(histories, 64) == ranked_all  # no state left behind
    assert full.rank(histories[:2], 5, pool=["no such item"]) == [[], []]  # nothing it can rank


def test_a_model_biased_towards_an_item_ranks_it_first(world):
    model, tokenizer, index = world["model"], world["tokenizer"], world["index"]
    biased = type(model)(model.config)
    biased.load_state_dict(model.state_dict())
    head = biased.lm_head
    biased.lm_head = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    favourite = index.item_ids[7]
    with torch.no_grad():
        biased.lm_head.weight.copy_(head.weight)
        biased.lm_head.bias.zero_()
        biased.lm_head.bias[tokenizer.convert_tokens_to_ids(index.tokens(favourite))] += 1000.0
    rec = SIDRanker(biased.eval(), tokenizer, index, num_beams=5)
    histories = [ex.history for ex in world["dataset"].test[:6]]
    assert all(items[0] == favourite for items in ranked_ids(rec.rank(histories, 3)))
    unbiased = ranked_ids(SIDRanker(model, tokenizer, index, num_beams=5).rank(histories, 3))
    assert not all(items[0] == favourite for items in unbiased)


def test_bad_input_is_a_clear_error(world):
    model, tokenizer, index = world["model"], world["tokenizer"], world["index"]
    rec = SIDRanker(model, tokenizer, index, num_beams=5)
    assert len(rec.rank([["i1"]], 6)[0]) == 6  # more items than beams: the search widens to k
    with pytest.raises(ConfigError, match="k=0"):
        rec.rank([["i1"]], 0)
    other = random_index(index.item_ids, sizes=(8, 8, 8))  # codes <a_4>.. were never added
    with pytest.raises(ConfigError, match=r"SID index does not match the model's tokenizer: 12 of 24 SID tokens"):
        SIDRanker(model, tokenizer, other)
    with pytest.raises(ConfigError, match="num_beams=20"):
        EvalSettings(k_values=[1, 10, 50])
    with pytest.raises(ConfigError, match="split"):
        EvalSettings(split="train")
    with pytest.raises(ConfigError, match="baselines"):
        EvalSettings(baselines=["random"])


def test_evaluate_model_leaves_the_model_as_it_was(world):
    model = world["model"]
    model.train()
    try:
        settings = EvalSettings(split="valid", k_values=[1, 5], num_beams=5, baselines=[], max_examples=9)
        report = evaluate_model(model, world["tokenizer"], world["index"], world["dataset"], settings,
                                show_progress=False)
        assert model.training
    finally:
        model.eval()
    assert report["split"] == "valid" and list(report["models"]) == ["model"]
    assert report["counts"]["all"] == 9 and report["metadata"]["split_examples"] == 40
    beyond = {f"{m}@{k}" for m in ("coverage", "tail_share", "novelty", "popularity") for k in (1, 5)}
    if world["index"].embeddings is not None:
        beyond |= {"diversity@1", "diversity@5"}
    assert set(report["models"]["model"]["all"]) == {"HR@1", "HR@5", "NDCG@1", "NDCG@5"} | beyond


def test_subset_is_deterministic(world):
    examples = world["dataset"].test
    subset = select_examples(examples, 10, seed=3)
    assert subset == select_examples(examples, 10, seed=3) and len(subset) == 10
    assert [examples.index(ex) for ex in subset] == sorted(examples.index(ex) for ex in subset)
    assert select_examples(examples, None, seed=3) == examples


def test_stage_writes_report_and_plot(world, tmp_path, capsys):
    root = world["root"]
    argv = ["--model_path", str(root / "model"), "--dataset_dir", str(root / "data"), "--output_dir",
            str(tmp_path / "eval"), "--device", "cpu", "--batch_size", "16",
            *(arg for key, value in FAST_SASREC.items() for arg in (f"--{key}", str(value)))]
    (config,) = evaluate_stage.make_parser().parse_args_and_config(argv)
    assert isinstance(config, EvaluateConfig) and config.k_values == [1, 3, 5, 10, 20]
    report = evaluate_stage.main(config)

    on_disk = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert (tmp_path / "eval" / "metrics.png").stat().st_size > 1000
    assert on_disk == report
    assert list(report["models"]) == ["model", "popularity", "sasrec"]
    assert report["counts"] == {"all": 40, "warm": 37, "cold": 3, "cold_pool": 3, "head": report["counts"]["head"],
                                "tail": report["counts"]["tail"], "liked": 15, "neutral": 9, "disliked": 16}
    assert report["feedback"]["counts"] == {"liked": 15, "disliked": 16}  # the synthetic log is rated
    for metrics in report["models"].values():
        assert set(metrics) >= {"all", "warm", "cold", "cold_pool", "counts"}
        ks = (1, 3, 5, 10, 20)
        accuracy = {f"{m}@{k}" for m in ("HR", "NDCG") for k in ks}
        beyond = {f"{m}@{k}" for m in ("coverage", "tail_share", "novelty", "popularity") for k in ks}
        # diversity when the tiny index keeps embeddings
        assert accuracy | beyond <= set(metrics["all"]) <= accuracy | beyond | {f"diversity@{k}" for k in ks}
        assert 0.0 <= metrics["all"]["NDCG@10"] <= metrics["all"]["HR@10"] <= metrics["all"]["HR@20"] <= 1.0
    assert report["metadata"]["sid_dir"] == str(root / "model" / "sid")
    # Among the cold items only: popularity has nothing to rank them by, a score-based model ranks each
    # target at least as high as among all items, and the beam search lists a pool this small whole.
    models = report["models"]
    pool = cold_items(world["dataset"].items, world["dataset"].train)
    assert 3 <= len(pool) <= 20
    assert models["popularity"]["cold_pool"]["HR@20"] == 0.0
    assert models["sasrec"]["cold_pool"]["HR@20"] >= models["sasrec"]["cold"]["HR@20"]
    assert models["model"]["cold_pool"]["HR@20"] == 1.0
    out = capsys.readouterr().out
    assert "HR@10 all" in out and "HR@10 cold_pool" in out and "sasrec" in out and "popularity" in out
    assert "tail_share@10" in out and "novelty@10" in out
    # Popularity recommends the same head to everyone: the fewest distinct items and no tail at K=1.
    assert models["popularity"]["all"]["coverage@10"] == pytest.approx(10 / len(world["dataset"].items), abs=1e-6)
    assert models["popularity"]["all"]["tail_share@1"] == 0.0
    against = report["paired"]["against"]["popularity"]
    assert against["tail_share@10"]["mean"] == pytest.approx(
        models["model"]["all"]["tail_share@10"] - models["popularity"]["all"]["tail_share@10"])
    assert len(report["per_user"]["beyond"]["sasrec"]["novelty@10"]) == 40


def test_stage_compares_checkpoints_side_by_side(world, tmp_path, capsys):
    """`compare` ranks other checkpoints on the same examples: the same model twice scores the same."""
    root = world["root"]
    config = EvaluateConfig(model_path=str(root / "model"), dataset_dir=str(root / "data"),
                            output_dir=str(tmp_path / "eval"), device="cpu", baselines=["popularity"],
                            model_name="grpo", compare=[f"sft={root / 'model'}"], max_examples=12)
    report = evaluate_stage.main(config)
    assert list(report["models"]) == ["grpo", "sft", "popularity"]
    assert report["models"]["grpo"]["all"] == report["models"]["sft"]["all"]
    assert "sft" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="NAME=PATH"):
        EvaluateConfig(compare=["sft="]).compared_models()
    with pytest.raises(ConfigError, match="used twice"):
        EvaluateConfig(compare=["popularity=x"]).compared_models()


def test_stage_ranks_reranking_baselines_beside_the_model(world, tmp_path):
    """`rerank` wraps the evaluated model: a large tail bonus fills the top K with tail items from its top N."""
    root = world["root"]
    config = EvaluateConfig(model_path=str(root / "model"), dataset_dir=str(root / "data"),
                            output_dir=str(tmp_path / "eval"), device="cpu", baselines=[], k_values=[1, 5, 10],
                            rerank=["tail=100,novelty=0"], rerank_top_n=20, max_examples=12)
    report = evaluate_stage.main(config)
    models = report["models"]
    assert list(models) == ["model", "model+tail100", "model+novelty0"]
    assert models["model+novelty0"]["all"] == models["model"]["all"]  # weight 0: the model's own order
    assert models["model+tail100"]["all"]["tail_share@10"] > models["model"]["all"]["tail_share@10"]
    assert report["paired"]["against"]["model+tail100"]["tail_share@10"]["mean"] < 0
    with pytest.raises(ConfigError, match="no item embeddings"):
        evaluate_stage.main(EvaluateConfig(model_path=str(root / "model"), dataset_dir=str(root / "data"),
                                           output_dir=str(tmp_path / "mmr"), device="cpu", baselines=[],
                                           rerank=["mmr=0.3"], max_examples=4))
    with pytest.raises(ConfigError, match="rerank_top_n=5 is below the largest K"):
        EvaluateConfig(rerank=["tail=1"], rerank_top_n=5)


def test_stage_refuses_an_index_of_another_dataset(world, tmp_path):
    root = world["root"]
    other = random_index([f"x{i}" for i in range(50)])
    other.save(tmp_path / "sid")
    config = EvaluateConfig(model_path=str(root / "model"), dataset_dir=str(root / "data"),
                            sid_dir=str(tmp_path / "sid"), output_dir=str(tmp_path / "eval"), device="cpu")
    with pytest.raises(DataError, match="does not match the dataset: 40 of 40 test targets have no SID"):
        evaluate_stage.main(config)
    assert not (tmp_path / "eval").exists()
    with pytest.raises(ConfigError, match="no SID index"):
        evaluate_stage.main(EvaluateConfig(model_path=str(root / "model"), dataset_dir=str(root / "data"),
                                           sid_dir=str(tmp_path / "nowhere"), device="cpu"))


def test_stage_compares_a_setrec_model_beside_the_sid_model(world, tmp_path):
    """A SETRec folder in `compare` is ranked by its own grounding, on the same examples as the SID model."""
    from rlrec.setrec import SETRecModelConfig, SETRecRanker, build_setrec, save_setrec
    from rlrec.setrec.features import warm_mask

    root, dataset = world["root"], world["dataset"]
    lm, tokenizer = tiny_model_and_tokenizer(hidden_size=32)
    item_ids = list(dataset.items)
    rng = np.random.default_rng(0)
    setrec = build_setrec(lm, tokenizer, item_ids, rng.normal(size=(len(item_ids), 8)),
                          warm_mask(item_ids, dataset.train), rng.normal(size=(len(item_ids), 16)),
                          SETRecModelConfig(num_semantic_tokens=2, ae_hidden=[16, 8], max_history=5)).eval()
    save_setrec(setrec, tmp_path / "setrec", tokenizer)
    config = EvaluateConfig(model_path=str(root / "model"), dataset_dir=str(root / "data"),
                            output_dir=str(tmp_path / "eval"), device="cpu", baselines=["popularity"],
                            compare=[f"setrec={tmp_path / 'setrec'}"], max_examples=12, k_values=[1, 5])
    report = evaluate_stage.main(config)
    assert list(report["models"]) == ["model", "setrec", "popularity"]
    examples = select_examples(dataset.test, 12, config.seed)
    direct = ranked_ids(SETRecRanker(setrec).rank([ex.history for ex in examples], 5))
    hits = np.mean([ex.target in top for ex, top in zip(examples, direct, strict=True)])
    assert report["models"]["setrec"]["all"]["HR@5"] == pytest.approx(hits)
    assert report["models"]["setrec"]["counts"] == report["models"]["model"]["counts"]
