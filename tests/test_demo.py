"""The demo chains the ml-100k and ml-100k-compact recipes; every recipe must parse with its stage's config."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from rlrec.cli import STAGES
from rlrec.scripts.demo import PIPELINE, STEP_NAMES, DemoConfig, default_recipes_dir, stage_commands
from rlrec.utils.errors import ConfigError


def test_every_pipeline_step_has_a_recipe_that_parses():
    for step in PIPELINE:
        recipe = default_recipes_dir() / step.recipe
        assert recipe.is_file(), recipe
        parser = importlib.import_module(STAGES[step.stage][0]).make_parser()
        configs = parser.parse_args_and_config(["--config", str(recipe), *step.extra])
        assert configs, step.name


def test_stage_commands_point_each_step_at_the_folders_of_earlier_ones(tmp_path):
    commands = {step.name: argv for step, argv in stage_commands(DemoConfig(output_dir=str(tmp_path)))}
    assert list(STEP_NAMES) == list(commands)

    def value(name: str, flag: str) -> str:
        return commands[name][commands[name].index(flag) + 1]

    assert value("compact-sft", "--dataset_dir") == str(tmp_path / "prepare")
    assert value("compact-sft", "--sid_dir") == str(tmp_path / "compact-sid")
    assert value("llm-sft", "--sid_dir") == str(tmp_path / "compact-sid")
    assert "recipes/ml-100k-llm-cpu/sft.yaml" in value("llm-sft", "--config")
    assert value("compact-grpo", "--model_name_or_path") == str(tmp_path / "compact-sft")
    assert value("compact-evaluate", "--model_path") == str(tmp_path / "compact-grpo")
    assert value("compact-evaluate", "--compare") == f"sft={tmp_path / 'compact-sft'}"
    assert value("llm-grpo", "--model_name_or_path") == str(tmp_path / "llm-sft")
    # evaluations land in the evaluated model's eval/test, where `rlrec export` finds them for the card
    assert value("llm-evaluate", "--output_dir") == str(tmp_path / "llm-grpo" / "eval" / "test")
    assert value("compact-evaluate", "--output_dir") == str(tmp_path / "compact-grpo" / "eval" / "test")
    # The flags the demo adds come after the recipe's, so they win.
    assert commands["compact-sft"][-2:] == ["--eval_at_end", "false"]
    assert "recipes/ml-100k-compact/sft.yaml" in value("compact-sft", "--config")


def test_unknown_demo_stage_is_refused():
    with pytest.raises(ConfigError, match="unknown stage"):
        DemoConfig(stages=["prepare", "train"])


def test_missing_recipe_is_named(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "prepare.yaml").write_text("source: movielens\n")
    with pytest.raises(ConfigError, match=str(Path(tmp_path) / "ml-100k-compact" / "sid.yaml")):
        stage_commands(DemoConfig(output_dir=str(tmp_path / "out"), recipes_dir=str(tmp_path)))


def test_summary_table_lists_every_model_with_its_paired_interval():
    from rlrec.scripts.demo import summary_table

    interval = {"mean": 0.01, "low": -0.002, "high": 0.021, "p_below_zero": 0.06, "users": 943}
    report = {"k_values": [1, 10], "models": {
        "grpo": {"all": {"HR@10": 0.2, "NDCG@10": 0.1, "tail_share@10": 0.25}},
        "sft": {"all": {"HR@10": 0.15, "NDCG@10": 0.07}},
        "popularity": {"all": {"HR@10": 0.05, "NDCG@10": 0.02}}},
        "paired": {"main": "grpo", "k": 10, "against": {"sft": {"NDCG@10": interval}}}}
    lines = summary_table(report).splitlines()
    assert "HR@10" in lines[0] and "NDCG@10" in lines[0] and "grpo - model" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["grpo", "sft", "popularity"]
    assert lines[1].split()[1:] == ["0.2000", "0.1000", "0.2500"]
    assert lines[2].split()[3:] == ["-", "+0.0100", "[-0.0020,", "+0.0210]"]
    assert "liked@10" not in lines[0]  # unrated data: no feedback columns

    report["feedback"] = {"counts": {"liked": 487, "disliked": 217}, "liked_threshold": 4.0, "disliked_threshold": 2.0}
    report["models"]["grpo"].update({"liked": {"HR@10": 0.25}, "disliked": {"HR@10": 0.08}})
    lines = summary_table(report).splitlines()
    assert "liked@10" in lines[0] and "disliked@10" in lines[0]
    assert lines[1].split()[1:6] == ["0.2000", "0.1000", "0.2500", "0.2500", "0.0800"]
    assert lines[2].split()[4:6] == ["-", "-"]
    assert "487 targets the user rated >= 4" in lines[-1]


def test_the_llm_rows_are_explained():
    """The demo's LLM rows come from a cut-down CPU run; its caption says what they are and where the full run is."""
    (llm,) = [step for step in PIPELINE if step.name == "llm-evaluate"]
    assert "6 of 30 layers" in llm.caption and "GPU" in llm.caption
    assert all(not step.caption for step in PIPELINE if step.name != "llm-evaluate")
