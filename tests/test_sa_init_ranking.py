"""`benchmarks/sa_init_ranking.py --smoke`: the five SID-row initialisation / mixture variants of the CPU LLM recipe
through `rlrec sft` and one test evaluation per seed, summarised with paired intervals against the recipe's."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow  # a benchmark's --smoke path: whole stages end to end


def test_smoke_trains_every_variant_and_pairs_them_with_the_recipe(tmp_path, benchmark_script):
    script = benchmark_script("sa_init_ranking")
    out = tmp_path / "ranking"
    text = script.main(["--smoke", "--output_dir", str(out), "--seeds", "1", "2"])
    lines = text.splitlines()
    assert lines[0].startswith("| model | seed 1: HR@10 / NDCG@10 | seed 2: HR@10 / NDCG@10 | NDCG@10, seed mean")
    rows = {row[0]: row for row in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    assert list(rows) == [*script.VARIANTS, "popularity", "sasrec"]
    assert rows["keywords"][-1] == ""  # the reference is not compared with itself
    for name in ("mean_vocab", "random", "next_item_only", "keywords_centered", "popularity"):
        mean, interval = rows[name][-1].split(" [")
        low, high = (float(x) for x in interval.rstrip("]").split(", "))
        assert low <= float(mean) <= high, name
    manifests = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*-seed*/manifest.json")}
    assert len(manifests) == 10
    for name, manifest in manifests.items():
        assert manifest["truncated"] == {"kept_layers": 1, "of_layers": 2}
        assert manifest["config"]["script"]["sid_only_prompts"], name
    modes = {name: m["sa_init"]["mode"] for name, m in manifests.items()}
    assert modes["keywords-seed1"] == "keywords" and modes["mean_vocab-seed2"] == "mean_vocab"
    assert modes["random-seed1"] == "none"
    assert set(manifests["next_item_only-seed1"]["tasks"]) == {"next_item"}
    centered, plain = manifests["keywords_centered-seed1"]["sa_init"], manifests["keywords-seed1"]["sa_init"]
    assert centered["centered"] and not plain["centered"]
    assert centered["keyword_row_cosine"] < plain["keyword_row_cosine"]
    assert "ts_align_token_description" in manifests["keywords-seed1"]["tasks"]
    first = json.loads((out / "sa_init_ranking.json").read_text())
    summary = first["summary"]
    assert first["reference"] == "keywords" and set(first["seconds"]) == set(manifests)
    assert summary["mean_vocab"]["against_reference"]["users"] > 0
    # Finished runs and evaluations are reused: another reference only re-pairs the same per-user values.
    again = script.main(["--smoke", "--output_dir", str(out), "--seeds", "1", "2", "--reference", "random"])
    assert again.splitlines()[0].endswith("| random − model, paired 95% interval |")
    cells = ([c.strip() for c in line.strip("|").split("|")] for line in again.splitlines()[2:])
    rows = {row[0]: row for row in cells}
    assert rows["random"][-1] == "" and rows["keywords"][-1].startswith(("+", "-"))
    second = json.loads((out / "sa_init_ranking.json").read_text())
    assert second["reference"] == "random" and second["seconds"] == first["seconds"]  # nothing trained again
