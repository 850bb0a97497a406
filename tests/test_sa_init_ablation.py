"""`benchmarks/sa_init_ablation.py --smoke`: the five SID initialisations through `rlrec sft` on tiny data, one
valid-loss table (step 0 and every eval step), read back from each run's manifest."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow  # a benchmark's --smoke path: whole stages end to end


def test_smoke_runs_five_variants_and_prints_the_loss_table(tmp_path, benchmark_script):
    script = benchmark_script("sa_init_ablation")
    out = tmp_path / "ablation"
    text = script.main(["--smoke", "--output_dir", str(out)])
    lines = text.splitlines()
    assert lines[0] == "| variant | SID row norm at init (keyword rows) | step 0 | step 2 | step 4 | seconds |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[0] for row in rows] == [name for name, _ in script.VARIANTS]
    for row in rows:
        losses = [float(cell) for cell in row[2:5]]
        assert all(math.isfinite(loss) and loss > 0 for loss in losses), row
    manifests = {folder: json.loads((out / folder / "manifest.json").read_text()) for folder in script.FOLDERS}
    for folder, manifest in manifests.items():
        script_config = manifest["config"]["script"]
        assert script_config["freeze_llm"] and script_config["tasks"] == {"next_item": 1.0}, folder
        assert manifest["global_step"] == 4 and set(manifest["tasks"]) == {"next_item"}
    assert [m["sa_init"]["mode"] for m in manifests.values()] == ["none", "mean_vocab"] + ["keywords"] * 3
    assert [m["sa_init"]["norm_matched"] for m in manifests.values()] == [False, False, False, True, True]
    assert manifests["tsrec_file"]["keywords"]["source"] == "file"
    assert manifests["ctfidf"]["keywords"]["source"] == "ctfidf"
    # Norm matching lifts the short keyword means to the pretrained rows' mean norm.
    raw, matched = manifests["ctfidf_raw_norm"]["sa_init"], manifests["ctfidf"]["sa_init"]
    assert raw["keyword_row_norm"] < matched["keyword_row_norm"]
    assert math.isclose(matched["keyword_row_norm"], matched["vocab_row_norm"], abs_tol=1e-3)
