"""`valid_average_top`: the mean of the best checks' weights is kept only when it ranks the valid users better."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rlrec.training.valid_selection import ValidSelectionArguments, ValidSelectionCallback, average_weights
from rlrec.utils.errors import ConfigError


def test_average_weights_is_the_elementwise_mean_and_keeps_integer_buffers():
    states = [{"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)},
              {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)}]
    mean = average_weights(states)
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0]))
    assert mean["n"].item() == 3 and mean["n"].dtype == torch.int64


class ScriptedCallback(ValidSelectionCallback):
    """Ranks by a function of the weights instead of beam search, so each check's score is known."""

    def __init__(self, args: ValidSelectionArguments, score) -> None:
        super().__init__(args, examples=[object()], index=None, tokenizer=None, max_history=None)
        self.score = score

    def _measure(self, model):
        return {self.args.valid_metric: float(self.score(model.weight.detach())), "seconds": 0.0}


def _run(callback: ValidSelectionCallback, weights: list[float]) -> torch.nn.Linear:
    """Checks at step 0 and after each step, the weight set to `weights[i]` at step i + 1."""
    model = torch.nn.Linear(1, 1, bias=False)
    control = SimpleNamespace(should_training_stop=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    callback.on_train_begin(SimpleNamespace(), SimpleNamespace(global_step=0, max_steps=len(weights),
                                                               num_train_epochs=1), control, model=model)
    for step, value in enumerate(weights, start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        callback.on_step_end(SimpleNamespace(), SimpleNamespace(global_step=step), control, model=model)
    callback.on_train_end(SimpleNamespace(), SimpleNamespace(global_step=len(weights)), control, model=model)
    return model


def test_the_average_of_the_top_checks_is_kept_when_it_scores_higher():
    # the score peaks at weight 2: checks at 1.0, 3.0 (and 2.6) are the top 3, whose mean 2.2 beats each
    args = ValidSelectionArguments(valid_every_steps=1, valid_average_top=3)
    callback = ScriptedCallback(args, lambda w: 10 - (w - 2).abs().item())
    model = _run(callback, [1.0, 3.0, 2.6, 5.0])
    assert model.weight.item() == pytest.approx((1.0 + 3.0 + 2.6) / 3)
    summary = callback.summary()
    assert summary["average"]["kept"] is True and sorted(summary["average"]["averaged_steps"]) == [1, 2, 3]
    assert summary["best"]["step"] == 3  # the best single check is still reported as such


def test_the_best_single_check_stays_when_the_average_is_worse():
    # the score rewards large weights: the mean of the top 2 (4 and 3) is below the best (4)
    args = ValidSelectionArguments(valid_every_steps=1, valid_average_top=2)
    callback = ScriptedCallback(args, lambda w: w.item())
    model = _run(callback, [3.0, 4.0, 1.0])
    assert model.weight.item() == pytest.approx(4.0)
    assert callback.summary()["average"] == {"averaged_steps": [2, 1], "NDCG@10": 3.5, "seconds": 0.0, "kept": False}


def test_off_by_default_and_bad_values_are_refused():
    callback = ScriptedCallback(ValidSelectionArguments(valid_every_steps=1), lambda w: -w.abs().item())
    model = _run(callback, [1.0, 0.5])
    assert model.weight.item() == 0.0 and callback.summary()["average"] is None
    with pytest.raises(ConfigError, match="valid_average_top"):
        ValidSelectionArguments(valid_every_steps=1, valid_average_top=0)


class TwoMetricCallback(ValidSelectionCallback):
    """tail_share@10 = the weight, NDCG@10 = 10 - the weight: more of one costs the other."""

    def __init__(self, args: ValidSelectionArguments) -> None:
        super().__init__(args, examples=[object()], index=None, tokenizer=None, max_history=None, space=object())

    def _measure(self, model):
        w = float(model.weight.item())
        return {"tail_share@10": w, "NDCG@10": 10.0 - w, "seconds": 0.0}


def test_a_floor_on_ndcg_chooses_the_most_tail_that_keeps_it():
    args = ValidSelectionArguments(valid_every_steps=1, valid_metric="tail_share@10", valid_floor="NDCG@10>=0.8")
    assert args.metrics == ["tail_share@10", "NDCG@10"] and args.needs_item_space
    callback = TwoMetricCallback(args)
    model = _run(callback, [1.0, 3.0, 2.0, 5.0])  # NDCG 9, 7, 8, 5 against the start's 10: floor 8
    assert model.weight.item() == 2.0
    summary = callback.summary()
    assert summary["best"]["step"] == 3 and [p["eligible"] for p in summary["curve"]] == [True, True, False, True,
                                                                                           False]
    # Without the floor the largest tail share wins, whatever it costs.
    free = TwoMetricCallback(ValidSelectionArguments(valid_every_steps=1, valid_metric="tail_share@10"))
    assert _run(free, [1.0, 3.0, 2.0, 5.0]).weight.item() == 5.0


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
        ValidSelectionCallback(ValidSelectionArguments(valid_every_steps=1, valid_metric="novelty@10"),
                               examples=[object()], index=None, tokenizer=None, max_history=None)


def test_checks_counted_in_epochs_follow_the_runs_length():
    """valid_every_epochs: 1 checks once an epoch whatever the data's size (77 steps on ML-100k's compact recipe,
    41 on Industrial's), so a recipe carries to another dataset; half an epoch of 8 steps is every 4."""
    args = ValidSelectionArguments(valid_every_epochs=1.0)
    assert args.enabled and args.checks_every(770, 10) == 77 and args.checks_every(1640, 40.0) == 41
    assert ValidSelectionArguments(valid_every_epochs=0.5).checks_every(16, 2) == 4
    assert ValidSelectionArguments(valid_every_epochs=0.01).checks_every(10, 1) == 1  # at least every step
    assert ValidSelectionArguments(valid_every_steps=25).checks_every(770, 10) == 25
    callback = ScriptedCallback(ValidSelectionArguments(valid_every_epochs=0.5), lambda w: -w.abs().item())
    model = torch.nn.Linear(1, 1, bias=False)
    control = SimpleNamespace(should_training_stop=False)
    callback.on_train_begin(SimpleNamespace(), SimpleNamespace(global_step=0, max_steps=8, num_train_epochs=2),
                            control, model=model)
    for step in range(1, 9):
        callback.on_step_end(SimpleNamespace(), SimpleNamespace(global_step=step), control, model=model)
    assert [p["step"] for p in callback.curve] == [0, 2, 4, 6, 8] and callback.summary()["every_steps"] == 2
    with pytest.raises(ConfigError, match="not both"):
        ValidSelectionArguments(valid_every_steps=5, valid_every_epochs=1.0)
    with pytest.raises(ConfigError, match="valid_every_epochs"):
        ValidSelectionArguments(valid_every_epochs=0)
