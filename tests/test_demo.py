"""The demo chains the ml-100k recipes; every recipe must parse with its stage's config classes."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from rlrec.cli import STAGES
from rlrec.scripts.demo import PIPELINE, DemoConfig, default_recipes_dir, stage_commands
from rlrec.utils.errors import ConfigError


def test_every_pipeline_stage_has_a_recipe_that_parses():
    for stage, *_ in PIPELINE:
        recipe = default_recipes_dir() / f"{stage}.yaml"
        assert recipe.is_file(), recipe
        parser = importlib.import_module(STAGES[stage][0]).make_parser()
        configs = parser.parse_args_and_config(["--config", str(recipe)])
        assert configs, stage


def test_stage_commands_point_each_stage_at_the_folders_of_earlier_ones(tmp_path):
    commands = dict(stage_commands(DemoConfig(output_dir=str(tmp_path))))
    assert [stage for stage, *_ in PIPELINE] == list(commands)
    sft = commands["sft"]
    assert sft[sft.index("--dataset_dir") + 1] == str(tmp_path / "data")
    assert sft[sft.index("--sid_dir") + 1] == str(tmp_path / "sid")
    grpo = commands["grpo"]
    assert grpo[grpo.index("--model_name_or_path") + 1] == str(tmp_path / "sft")
    evaluate = commands["evaluate"]
    assert evaluate[evaluate.index("--model_path") + 1] == str(tmp_path / "grpo")
    assert evaluate[evaluate.index("--compare") + 1] == f"sft={tmp_path / 'sft'}"
    assert evaluate[evaluate.index("--output_dir") + 1] == str(tmp_path / "eval")
    # The flags the demo adds come after the recipe's, so they win.
    assert sft[-2:] == ["--eval_at_end", "false"]


def test_unknown_demo_stage_is_refused():
    with pytest.raises(ConfigError, match="unknown stage"):
        DemoConfig(stages=["prepare", "train"])


def test_missing_recipe_is_named(tmp_path):
    (tmp_path / "prepare.yaml").write_text("source: movielens\n")
    with pytest.raises(ConfigError, match=str(Path(tmp_path) / "sid.yaml")):
        stage_commands(DemoConfig(output_dir=str(tmp_path / "out"), recipes_dir=str(tmp_path)))


def test_summary_table_lists_every_model_with_hr_and_ndcg_at_10():
    from rlrec.scripts.demo import summary_table

    report = {"k_values": [1, 10], "models": {
        "grpo": {"all": {"HR@10": 0.2, "NDCG@10": 0.1}}, "sft": {"all": {"HR@10": 0.15, "NDCG@10": 0.07}},
        "popularity": {"all": {"HR@10": 0.05, "NDCG@10": 0.02}}}}
    lines = summary_table(report).splitlines()
    assert "HR@10" in lines[0] and "NDCG@10" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["grpo", "sft", "popularity"]
    assert lines[1].split()[1:] == ["0.2000", "0.1000"]
