"""`benchmarks/feedback.py --smoke`: SFT, the simple baselines, GRPO and DPO on ratings, one command, every user."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow  # a benchmark's --smoke path: whole stages end to end


def test_smoke_ranks_every_model_on_the_same_users_and_pairs_them(tmp_path, benchmark_script):
    script = benchmark_script("feedback")
    out = tmp_path / "feedback"
    result = script.main(["--smoke", "--seeds", "1", "--output_dir", str(out)])
    assert json.loads((out / "feedback.json").read_text())["table"] == result["table"]
    names = {"sft", "sft_liked", "sft_weighted", "sft+rating", "grpo_rating", "grpo_rating_exact", "dpo_rating",
             "grpo_rating_gap", "dpo_rating_gap", "grpo_rating_rated", "dpo_rating_gap+rating",
             "grpo_rating_rated+rating", "popularity", "sasrec", "sasrec_liked"}
    assert set(result["table"]) == names
    report = json.loads((out / "eval-s1" / "report.json").read_text())
    assert {len(ranks) for ranks in report["per_user"]["ranks"].values()} == {report["counts"]["all"]}
    assert report["counts"]["liked"] + report["counts"]["neutral"] + report["counts"]["disliked"] == \
        report["counts"]["all"]
    assert result["best_baseline"] in {"sft_liked", "sft_weighted", "sft+rating", "sasrec_liked"}
    gap_run = json.loads((out / "dpo_rating_gap-s1" / "manifest.json").read_text())["valid_selection"]
    assert gap_run["metric"] == "HR@10:gap" and all("HR@10:gap" in point for point in gap_run["curve"])
    rated = json.loads((out / "grpo_rating_rated-s1" / "manifest.json").read_text())
    assert rated["rollout_added_rated"] > 0 and rated["valid_selection"]["metric"] == "HR@10:gap"
    for name in ("grpo_rating", "dpo_rating", "grpo_rating_gap", "grpo_rating_rated", "dpo_rating_gap+rating"):
        against = result["comparisons"][name]
        assert set(against) == {"vs sft", f"vs {result['best_baseline']}"}
        assert set(against["vs sft"]) == {"NDCG@10 liked", "HR@10 disliked", "NDCG@10 all"}
    # The table's numbers are the report's: liked NDCG@10 of the SFT model.
    assert result["table"]["sft"]["liked NDCG@10"] == pytest.approx(report["models"]["sft"]["liked"]["NDCG@10"])
    # Both re-rankers' weights and rating-weighted SFT's grid point were chosen on valid, each among its own.
    for base in script.RERANKED:
        assert report["metadata"][f"rerank_rating_weight:{base}"] in script.RATING_WEIGHTS
        assert len(report["metadata"][f"rerank_rating_valid_curve:{base}"]) == len(script.RATING_WEIGHTS)
    tags = [script.weights_tag(*point) for point in script.WEIGHTED_GRID]
    assert report["metadata"]["weighted_targets"] in tags
    assert [p["model"] for p in report["metadata"]["weighted_valid_curve"]] == [f"sft_weighted:{t}" for t in tags]
    assert all((out / f"sft_weighted-{tag}-s1" / "manifest.json").is_file() for tag in tags)
    assert (out / "feedback.png").stat().st_size > 1000 and (out / "feedback.md").read_text().startswith("| model")
    # A second call reuses every finished run and report.
    again = script.main(["--smoke", "--seeds", "1", "--output_dir", str(out)])
    assert again["table"] == result["table"]
