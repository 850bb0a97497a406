"""`benchmarks/paper_table.py --smoke`: the papers' path (MiniOneRec-layout data, imported SIDs, SFT with early
stopping, GRPO, full-test evaluation) on tiny data, printing the table beside MiniOneRec's published row."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow  # a benchmark's --smoke path: whole stages end to end


def test_smoke_runs_the_whole_path_and_prints_the_table(tmp_path, capsys, benchmark_script):
    script = benchmark_script("paper_table")
    out = tmp_path / "paper"
    text = script.main(["--smoke", "--output_dir", str(out)])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()[2:]}
    assert set(rows) == {"grpo", "sft", "popularity", "sasrec", "MiniOneRec (published)"}
    assert "| 0.1143 | 0.1321 | 0.1586 | 0.1011 | 0.1084 | 0.1167 |" in rows["MiniOneRec (published)"]
    report = json.loads((out / "evaluate" / "report.json").read_text())
    assert report["split"] == "test" and report["counts"]["all"] == 30  # every test row of the generated data
    assert all(f"{m}@{k}" in report["models"]["sft"]["all"] for m in ("HR", "NDCG") for k in (3, 5, 10))
    sid = json.loads((out / "sid" / "manifest.json").read_text())
    assert sid["source"] == "sid_file"  # MiniOneRec's SIDs, imported
    sft = json.loads((out / "sft" / "manifest.json").read_text())
    assert sft["eval_loss"]["curve"]  # the paper recipe's validation-loss schedule ran
    assert sft["keywords"]["source"] == "file"  # TS-Rec's keyword file shape, every token in use covered
    assert all(level["covered"] == level["in_use"] for level in sft["keywords"]["coverage"].values())
    assert sft["sa_init"]["norm_matched"]
    # A second call finds every step finished and only prints the table again.
    capsys.readouterr()
    assert script.main(["--smoke", "--output_dir", str(out)]) == text
    assert capsys.readouterr().out.count("is finished, skipped") == 5
