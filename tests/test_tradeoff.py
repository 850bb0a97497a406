"""`benchmarks/tradeoff.py --smoke`: GRPO with a steering reward and re-ranking, on every user, in one command."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow  # a benchmark's --smoke path: whole stages end to end


def test_smoke_writes_both_frontiers_and_the_matched_pairs(tmp_path, benchmark_script):
    script = benchmark_script("tradeoff")
    out = tmp_path / "tradeoff"
    result = script.main(["--smoke", "--output_dir", str(out), "--objectives", "novelty", "diversity",
                          "--grpo_weights", "0", "0.5", "2"])
    assert json.loads((out / "tradeoff.json").read_text())["users"] == result["users"] > 0
    assert (out / "tradeoff.png").stat().st_size > 1000 and (out / "tradeoff.md").read_text().startswith("| GRPO")
    assert [(p["objective"], p["weight"]) for p in result["grpo"]] == [
        ("novelty", 0.5), ("novelty", 2.0), ("diversity", 0.5), ("diversity", 2.0)]
    assert all(p["rewards"][-1]["name"] == p["objective"] for p in result["grpo"])
    # Re-ranking at weight 0 is the base model's own list; a larger tail bonus never shows fewer tail items.
    sft, control = result["sft"]["metrics"], result["controls"][0]
    assert control["weight"] == 0 and control["rewards"] == ["exact_match", {"name": "ranking", "weight": 1.0}]
    for base, metrics in (("SFT", sft), ("control seed=42", control["metrics"])):
        for family in ("novelty", "tail", "mmr"):
            points = [r for r in result["rerank"] if r["family"] == family and r["base"] == base]
            assert points[0]["weight"] == 0 and points[0]["metrics"]["tail_share@10"] == metrics["tail_share@10"]
            assert points[0]["metrics"]["NDCG@10"] == pytest.approx(metrics["NDCG@10"])
        tail = [r["metrics"]["tail_share@10"] for r in result["rerank"] if r["family"] == "tail" and r["base"] == base]
        assert tail == sorted(tail) and tail[-1] > tail[0]
    # Each GRPO point is paired with the nearest point of each family it competes with, re-ranking the SFT model
    # and the control, on the same users.
    assert len(result["pairs"]) == 2 * (2 * 2 + 2 * 1)
    for pair in result["pairs"]:
        stats = pair["NDCG@10 grpo - rerank"]
        assert stats["users"] == result["users"] and stats["low"] <= stats["mean"] <= stats["high"]
        assert pair["within_tolerance"] == (abs(pair["gap"]) <= 0.02)
    summary = result["summary"].splitlines()
    assert summary[0].startswith("| objective | re-ranked base") and {row.split(" | ")[1] for row in summary[2:]} <= {
        "SFT", "control"}
    # A finished run is reused: a second call trains nothing and reads the same points.
    again = script.main(["--smoke", "--output_dir", str(out), "--objectives", "novelty", "--grpo_weights", "0.5"])
    assert again["grpo"][0]["metrics"] == result["grpo"][0]["metrics"]
