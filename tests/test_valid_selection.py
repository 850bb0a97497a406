"""Valid selection through the Trainer: checks are evaluations, the best is a checkpoint on disk chosen by
`metric_for_best_model`, early stopping is the Trainer's callback. A toy model whose weight moves every step and
a ranking that returns scripted scores make every decision known in advance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from rlrec.training.valid_selection import (
    ValidRanking,
    ValidRankingMixin,
    ValidSelectionArguments,
    attach_valid_selection,
    check_metrics,
    end_valid_selection,
    settle_valid_selection,
)
from rlrec.utils.errors import ConfigError


class Toy(torch.nn.Module):
    """One weight pulled toward 1 by SGD: a different value after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, labels=None):
        return {"loss": ((self.w * x - labels) ** 2).mean()}


class ToyTrainer(ValidRankingMixin, Trainer):
    pass


class ScriptedRanking(ValidRanking):
    """The i-th check scores `scores[i]` (a dict of metrics, or an NDCG@10) and records the weight it saw."""

    def __init__(self, args: ValidSelectionArguments, scores: list) -> None:
        super().__init__(args, examples=[object()], index=None, tokenizer=None, max_history=None, space=object())
        self.scores, self.seen = scores, {}

    def measure(self, model):
        point = self.scores[len(self.seen)]
        self.seen[len(self.seen)] = model.w.item()
        return {**(point if isinstance(point, dict) else {"NDCG@10": point}), "seconds": 0.0}


def _train(tmp_path: Path, valid: ValidSelectionArguments, scores: list, max_steps: int = 6, **training):
    data = Dataset.from_dict({"x": [1.0] * 8, "labels": [1.0] * 8})
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=max_steps, per_device_train_batch_size=2,
                             learning_rate=0.1, use_cpu=True, report_to="none", logging_steps=1,
                             **{"save_strategy": "no", **training})
    checkpoints = settle_valid_selection(args, valid)
    trainer = ToyTrainer(model=Toy(), args=args, train_dataset=data)
    ranking = ScriptedRanking(valid, scores)
    attach_valid_selection(trainer, ranking, checkpoints)
    trainer.train()
    return trainer, ranking, end_valid_selection(trainer)


def test_the_best_check_is_loaded_back_and_its_checkpoints_removed(tmp_path):
    trainer, ranking, summary = _train(tmp_path, ValidSelectionArguments(valid_every_steps=2), [0.1, 0.3, 0.2, 0.25])
    assert [point["step"] for point in summary["curve"]] == [0, 2, 4, 6]
    assert summary["best"]["step"] == 2 and summary["best"]["NDCG@10"] == 0.3 and summary["every_steps"] == 2
    assert trainer.model.w.item() == ranking.seen[1] != ranking.seen[3]  # step 2's weight, not the last
    assert not list((tmp_path / "run").glob("checkpoint-*"))  # save_strategy: no leaves no checkpoint behind


def test_a_run_that_only_got_worse_ends_with_its_start(tmp_path):
    trainer, ranking, summary = _train(tmp_path, ValidSelectionArguments(valid_every_steps=3), [0.5, 0.1, 0.2])
    assert summary["best"]["step"] == 0 and trainer.model.w.item() == ranking.seen[0] == 0.0


def test_patience_stops_after_checks_without_a_new_best(tmp_path):
    valid = ValidSelectionArguments(valid_every_steps=1, valid_patience=2)
    trainer, ranking, summary = _train(tmp_path, valid, [0.1, 0.2, 0.15, 0.1, 0.9, 0.9, 0.9])
    assert [point["step"] for point in summary["curve"]] == [0, 1, 2, 3] and summary["stopped_early_at"] == 3
    assert summary["best"]["step"] == 1 and trainer.model.w.item() == ranking.seen[1]


def test_a_floor_on_ndcg_chooses_the_most_tail_that_keeps_it(tmp_path):
    valid = ValidSelectionArguments(valid_every_steps=1, valid_metric="tail_share@10", valid_floor="NDCG@10>=0.8")
    assert valid.metrics == ["tail_share@10", "NDCG@10"] and valid.needs_item_space
    points = [{"tail_share@10": t, "NDCG@10": 10.0 - t} for t in (0.0, 1.0, 3.0, 2.0, 5.0)]  # floor: NDCG >= 8
    trainer, ranking, summary = _train(tmp_path, valid, points, max_steps=4)
    assert summary["best"]["step"] == 3 and trainer.model.w.item() == ranking.seen[3]
    assert [point["eligible"] for point in summary["curve"]] == [True, True, False, True, False]
    # Without the floor the largest tail share wins, whatever it costs.
    free = ValidSelectionArguments(valid_every_steps=1, valid_metric="tail_share@10")
    assert _train(tmp_path / "free", free, points, max_steps=4)[2]["best"]["step"] == 4


def test_the_recipes_checkpoints_stay_and_every_check_is_one(tmp_path):
    """save_strategy steps: checkpoints every gcd(save_steps, check interval), the recipe's kept (full, for
    resuming) as save_total_limit allows, the best always."""
    valid = ValidSelectionArguments(valid_every_steps=2)
    trainer, ranking, summary = _train(tmp_path, valid, [0.1, 0.3, 0.2, 0.25], save_strategy="steps", save_steps=3)
    kept = sorted(int(path.name.split("-")[1]) for path in (tmp_path / "run").glob("checkpoint-*"))
    assert kept == [0, 1, 2, 3, 4, 5, 6] and (tmp_path / "run" / "checkpoint-5" / "optimizer.pt").is_file()
    assert summary["best"]["step"] == 2 and Path(trainer.state.best_model_checkpoint).name == "checkpoint-2"


def test_checks_counted_in_epochs_follow_the_runs_length(tmp_path):
    """valid_every_epochs: 1 checks once an epoch whatever the data's size (77 steps on ML-100k's compact recipe,
    41 on Industrial's), so a recipe carries to another dataset; half an epoch of 4 steps is every 2."""
    args = ValidSelectionArguments(valid_every_epochs=1.0)
    assert args.enabled and args.checks_every(770, 10) == 77 and args.checks_every(1640, 40.0) == 41
    assert ValidSelectionArguments(valid_every_epochs=0.01).checks_every(10, 1) == 1  # at least every step
    assert ValidSelectionArguments(valid_every_steps=25).checks_every(770, 10) == 25
    summary = _train(tmp_path, ValidSelectionArguments(valid_every_epochs=0.5), [0.1] * 5, max_steps=8)[2]
    assert [point["step"] for point in summary["curve"]] == [0, 2, 4, 6, 8] and summary["every_steps"] == 2
    with pytest.raises(ConfigError, match="not both"):
        ValidSelectionArguments(valid_every_steps=5, valid_every_epochs=1.0)
    with pytest.raises(ConfigError, match="valid_every_epochs"):
        ValidSelectionArguments(valid_every_epochs=0)


def test_a_trainer_that_cannot_rank_is_refused(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    valid = ValidSelectionArguments(valid_every_steps=1)
    data = Dataset.from_dict({"x": [1.0], "labels": [1.0]})
    unsettled = ToyTrainer(model=Toy(), args=args, train_dataset=data)
    with pytest.raises(RuntimeError, match="before the trainer is built"):
        attach_valid_selection(unsettled, ScriptedRanking(valid, [0.0]), None)
    checkpoints = settle_valid_selection(args, valid)
    trainer = Trainer(model=Toy(), args=args, train_dataset=data, eval_dataset=data)
    with pytest.raises(TypeError, match="ValidRankingMixin"):
        attach_valid_selection(trainer, ScriptedRanking(valid, [0.0]), checkpoints)


def test_selection_is_settled_before_the_trainer_and_refuses_a_validation_loss(tmp_path):
    """The TrainingArguments are final before the trainer exists: settling twice is a bug, the recipe's
    `eval_strategy` (a loss) beside valid ranking is a recipe error, and off means nothing changes."""
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", save_strategy="steps",
                             save_steps=7)
    assert settle_valid_selection(args, ValidSelectionArguments()) is None and args.eval_strategy == "no"
    checkpoints = settle_valid_selection(args, ValidSelectionArguments(valid_every_steps=3))
    assert (checkpoints.recipe_save_steps, checkpoints.for_selection_only) == (7, False)
    assert (args.eval_strategy, args.metric_for_best_model, args.load_best_model_at_end) == ("steps", "valid_score",
                                                                                           True)
    with pytest.raises(RuntimeError, match="settled already"):
        settle_valid_selection(args, ValidSelectionArguments(valid_every_steps=3))
    loss = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", eval_strategy="steps",
                             eval_steps=5)
    with pytest.raises(ConfigError, match="choose one"):
        settle_valid_selection(loss, ValidSelectionArguments(valid_every_epochs=1.0))


@pytest.mark.parametrize(("fields", "message"), [
    ({"valid_metric": "popularity@10"}, "valid_metric"),
    ({"valid_floor": "NDCG@10>0.9"}, "valid_floor"),
    ({"valid_floor": "NDCG@10>=1.5"}, "valid_floor"),
    ({"valid_floor": "MRR@10>=0.9"}, "valid_floor"),
    ({"valid_metric": "tail_share@50"}, "needs at least 50 beams"),
])
def test_bad_selection_metrics_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message):
        ValidSelectionArguments(valid_every_steps=1, **fields)
    with pytest.raises(ConfigError, match="needs the items"):
        ValidRanking(ValidSelectionArguments(valid_every_steps=1, valid_metric="novelty@10"),
                     examples=[object()], index=None, tokenizer=None, max_history=None)


def test_a_liked_metric_chooses_by_the_valid_users_who_liked_their_target(tmp_path):
    from rlrec.data.feedback import FeedbackRule

    valid = ValidSelectionArguments(valid_every_steps=2, valid_metric="NDCG@10:liked", valid_floor="NDCG@10>=0.9")
    assert valid.metrics == ["NDCG@10:liked", "NDCG@10"] and valid.k_values == [10]
    points = [{"NDCG@10": 0.10, "NDCG@10:liked": 0.10}, {"NDCG@10": 0.10, "NDCG@10:liked": 0.14},
              {"NDCG@10": 0.08, "NDCG@10:liked": 0.20}, {"NDCG@10": 0.095, "NDCG@10:liked": 0.12}]

    class Rated(ScriptedRanking):
        def __init__(self, args, scores):
            ValidRanking.__init__(self, args, examples=[object()], index=None, tokenizer=None, max_history=None,
                                  space=object(), feedback=FeedbackRule())
            self.scores, self.seen = scores, {}

    data = Dataset.from_dict({"x": [1.0] * 8, "labels": [1.0] * 8})
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=6, per_device_train_batch_size=2,
                             learning_rate=0.1, use_cpu=True, report_to="none", logging_steps=1, save_strategy="no")
    checkpoints = settle_valid_selection(args, valid)
    trainer = ToyTrainer(model=Toy(), args=args, train_dataset=data)
    attach_valid_selection(trainer, Rated(valid, points), checkpoints)
    trainer.train()
    selection = end_valid_selection(trainer)
    assert selection["best"]["step"] == 2  # step 4 likes more but falls below the floor on all users
    for bad in ("NDCG@10:disliked", "tail_share@10:liked", "tail_share@10:gap"):
        with pytest.raises(ConfigError, match="NDCG@10:liked"):
            ValidSelectionArguments(valid_every_steps=1, valid_metric=bad)
    with pytest.raises(ConfigError, match="reads the users' ratings"):
        ValidRanking(valid, examples=[object()], index=None, tokenizer=None, max_history=None)


def test_a_check_records_the_liked_and_disliked_groups_and_their_gap():
    result = {"all": {"HR@10": 0.5, "NDCG@10": 0.25}, "liked": {"HR@10": 0.75, "NDCG@10": 0.5},
              "disliked": {"HR@10": 0.25, "NDCG@10": 0.125}, "neutral": {"HR@10": 0.5, "NDCG@10": 0.5}}
    assert check_metrics(result, grouped=False) == {"HR@10": 0.5, "NDCG@10": 0.25}
    metrics = check_metrics(result, grouped=True)
    assert metrics["HR@10:gap"] == 0.5 and metrics["NDCG@10:gap"] == 0.375 and metrics["HR@10:disliked"] == 0.25
    assert "HR@10:neutral" not in metrics
    assert check_metrics({"all": {"HR@10": 0.5}, "liked": {"HR@10": 0.75}}, grouped=True) == {
        "HR@10": 0.5, "HR@10:liked": 0.75}  # no disliked user among the valid: no gap
    gap = ValidSelectionArguments(valid_every_steps=1, valid_metric="HR@10:gap", valid_floor="NDCG@10>=0.95")
    assert gap.metrics == ["HR@10:gap", "NDCG@10"] and gap.k_values == [10] and not gap.needs_item_space
