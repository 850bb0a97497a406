"""Choose the weights on the validation users while training: rank them every few steps, keep the best.

Training loss says little about ranking, and a GRPO run can lower NDCG on users it has not seen while
its reward rises on the prompts it trains on. So a stage can rank the valid users with constrained beam
search (the evaluation's own `SIDRanker`) at the start and every `valid_every_steps` steps, and keep the
weights of the best `valid_metric` seen (the start included: a run that only got worse ends with its start).

The Trainer does the bookkeeping, as it does for a validation loss: the trainer's `evaluate` returns the
ranking metrics (`eval_NDCG@10`, ...; `ValidRankingMixin`), every check is a checkpoint on disk, the best is
chosen by `metric_for_best_model` and loaded back by `load_best_model_at_end`, `EarlyStoppingCallback` stops
after `valid_patience` checks without a new best, and a resumed run continues from the checkpoint's
`trainer_state.json` (its log history holds the curve). No copy of the weights is held in memory, so the same
selection serves a 0.6M-parameter compact model and a 7B LLM. Test users are never touched: choose on valid,
report test.

A valid user's history is the user's whole train sequence, which a small model can memorise, while a
test history ends with the valid item, never trained on: selection on such valid users favours the
memorising checkpoints that then fall on test. `valid_unseen_last_item` leaves each user's last train
window out of training (`without_last_windows`), so the valid histories end with an unseen item too.

Every process ranks the same users with the same weights, so all of them reach the same decision with no
collective call (ZeRO-3's partitioned weights are refused: each process would hold only a shard).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import EarlyStoppingCallback, TrainerCallback
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from rlrec.utils.defaults import DEFAULT_NUM_BEAMS, DEFAULT_RANKING_BATCH_SIZE
from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)

# Metrics a check can choose by or hold a floor on: higher is better for each.
SELECTION_METRICS = ("HR", "NDCG", "tail_share", "novelty", "coverage", "diversity")
# Target groups a check can choose by, written METRIC@K:GROUP (e.g. NDCG@10:liked, on rated data); `gap` is the
# liked group's value minus the disliked group's (PNFRec's gap: higher when a model prefers what users liked).
SELECTION_GROUPS = ("liked", "gap")
# Groups each check of such a run also records, to read beside the chooser: HR@K:disliked (lower is better).
RECORDED_GROUPS = ("liked", "disliked")
# What `metric_for_best_model` reads: the chosen metric, or INELIGIBLE for a check below `valid_floor`.
VALID_SCORE = "valid_score"
INELIGIBLE = -1.0  # below every ranking metric (all are >= 0)


@dataclass
class ValidSelectionArguments:
    """Rank the valid users during training and keep the best weights (off unless `valid_every_steps` or
    `valid_every_epochs` is set)."""

    valid_every_steps: int | None = field(
        default=None,
        metadata={"help": "Rank the valid users every N optimizer steps (and before the first) and keep the weights "
                  "with the best valid_metric; None: off (the last weights are saved)."},
    )
    valid_every_epochs: float | None = field(
        default=None,
        metadata={"help": "The same, every this many epochs of the train data (1: once an epoch, whatever the data's "
                  "size): a recipe carries to another dataset unchanged. Set this or valid_every_steps."},
    )
    valid_metric: str = field(
        default="NDCG@10",
        metadata={"help": "Metric that chooses (higher is better): HR@K or NDCG@K, or, for a run steered by a "
                  "beyond-accuracy reward, tail_share@K, novelty@K, coverage@K or diversity@K (with valid_floor); "
                  "on rated data HR@K:liked or NDCG@K:liked (the valid users whose target they liked), or "
                  "HR@K:gap / NDCG@K:gap (the liked users' value minus the disliked users')."},
    )
    valid_floor: str | None = field(
        default=None,
        metadata={"help": "Only checks that keep METRIC at or above RATIO x its value at the start may be chosen, "
                  "written METRIC>=RATIO (e.g. NDCG@10>=0.95: the most tail share for at most a twentieth of the "
                  "start's NDCG@10); None: every check may be chosen."},
    )
    valid_max_examples: int | None = field(
        default=None, metadata={"help": "Rank a fixed random subset of this many valid users; None: all of them."}
    )
    valid_num_beams: int = field(
        default=DEFAULT_NUM_BEAMS, metadata={"help": "Beams of the valid ranking (>= the metric's K)."}
    )
    valid_batch_size: int = field(
        default=DEFAULT_RANKING_BATCH_SIZE,
        metadata={"help": "Valid users decoded together (as `rlrec evaluate`, so the figures agree)."}
    )
    valid_unseen_last_item: bool = field(
        default=False,
        metadata={"help": "Leave each user's last train window out of training, so that the valid histories end, "
                  "as the test histories do, with an item the model never trained on (test-like validation)."},
    )
    valid_patience: int | None = field(
        default=None,
        metadata={"help": "Stop training after this many checks in a row without a new best; None: never stop early."},
    )
    def __post_init__(self) -> None:
        if self.valid_patience is not None and self.valid_patience < 1:
            raise ConfigError(f"`valid_patience` must be positive or None, got {self.valid_patience}")
        if self.valid_every_steps is not None and self.valid_every_steps < 1:
            raise ConfigError(f"`valid_every_steps` must be positive or None, got {self.valid_every_steps}")
        if self.valid_every_epochs is not None and not self.valid_every_epochs > 0:
            raise ConfigError(f"`valid_every_epochs` must be a number > 0 or None, got {self.valid_every_epochs}")
        if self.valid_every_steps is not None and self.valid_every_epochs is not None:
            raise ConfigError("set valid_every_steps or valid_every_epochs, not both")
        floor = self.floor
        for what, metric in (("valid_metric", self.valid_metric), ("valid_floor", floor[0] if floor else None)):
            if metric is None:
                continue
            name, _, rest = metric.partition("@")
            k, _, group = rest.partition(":")
            if name not in SELECTION_METRICS or not k.isdigit() or int(k) < 1 \
                    or (group and (group not in SELECTION_GROUPS or name not in ("HR", "NDCG"))):
                raise ConfigError(f"`{what}` names {metric!r}; expected METRIC@K with METRIC one of "
                                  f"{', '.join(SELECTION_METRICS)} (e.g. NDCG@10), or HR@K / NDCG@K followed by "
                                  f":{' / :'.join(SELECTION_GROUPS)} (e.g. NDCG@10:liked)")
            if int(k) > self.valid_num_beams:
                raise ConfigError(f"`{what}` {metric} needs at least {k} beams, valid_num_beams is "
                                  f"{self.valid_num_beams}")

    @property
    def floor(self) -> tuple[str, float] | None:
        """`valid_floor` as (metric, ratio), checked: RATIO in (0, 1], so the start is always eligible."""
        if self.valid_floor is None:
            return None
        metric, sep, ratio = str(self.valid_floor).replace(" ", "").partition(">=")
        try:
            value = float(ratio)
        except ValueError:
            value = float("nan")
        if not sep or not 0.0 < value <= 1.0:
            raise ConfigError(f"`valid_floor` must look like NDCG@10>=0.95 (a ratio in (0, 1] of the start's value), "
                              f"got {self.valid_floor!r}")
        return metric, value

    @property
    def metrics(self) -> list[str]:
        """Every metric a check measures: the chooser and the floor's."""
        return list(dict.fromkeys([self.valid_metric, *([self.floor[0]] if self.floor else [])]))

    @property
    def k_values(self) -> list[int]:
        return sorted({int(metric.partition("@")[2].partition(":")[0]) for metric in self.metrics})

    @property
    def needs_item_space(self) -> bool:
        return any(metric.partition("@")[0] not in ("HR", "NDCG") for metric in self.metrics)

    @property
    def enabled(self) -> bool:
        return self.valid_every_steps is not None or self.valid_every_epochs is not None

    def checks_every(self, max_steps: int, num_train_epochs: float) -> int:
        """Optimizer steps between checks: `valid_every_steps`, or `valid_every_epochs` x the run's steps an epoch."""
        if self.valid_every_steps is not None:
            return self.valid_every_steps
        per_epoch = max_steps / num_train_epochs if num_train_epochs else max_steps
        return max(1, round(self.valid_every_epochs * per_epoch))

    def training_examples(self, train: list) -> list:
        """The train windows a stage may train on: all of them, or `without_last_windows` for test-like
        validation (`valid_unseen_last_item`)."""
        return without_last_windows(train) if self.valid_unseen_last_item else train


def check_metrics(result: dict[str, dict[str, float]], grouped: bool) -> dict[str, float]:
    """A check's metrics from `evaluate_ranker`'s result: all users' (`NDCG@10`, ...) and, when `grouped`, the
    liked and disliked groups' (`NDCG@10:liked`, `HR@10:disliked`) and their difference (`NDCG@10:gap`)."""
    metrics = dict(result["all"])
    if not grouped:
        return metrics
    for group in RECORDED_GROUPS:
        metrics.update({f"{name}:{group}": value for name, value in result.get(group, {}).items()})
    liked, disliked = result.get("liked", {}), result.get("disliked", {})
    metrics.update({f"{name}:gap": liked[name] - disliked[name] for name in liked if name in disliked})
    return metrics


class ValidRanking:
    """What a check measures: the valid users ranked with constrained beam search, as `rlrec evaluate` ranks."""

    def __init__(self, args: ValidSelectionArguments, examples: list, index: Any, tokenizer: Any,
                 max_history: int | None, space: Any = None, feedback: Any = None) -> None:
        if any(":" in metric for metric in args.metrics) and feedback is None:
            raise ConfigError(f"valid selection by {args.metrics} reads the users' ratings, but the dataset has none "
                              "(its manifest.json has no `ratings`)")
        if not examples:
            raise ConfigError("valid_every_steps is set but the valid split has no examples to rank")
        if args.needs_item_space and space is None:
            raise ConfigError(f"valid selection by {args.metrics} needs the items' train popularity and vectors "
                              "(an ItemSpace)")
        self.args = args
        self.space = space  # rlrec.evaluation.beyond.ItemSpace, for the beyond-accuracy metrics
        self.examples = examples
        self.index, self.tokenizer, self.max_history = index, tokenizer, max_history
        # rlrec.data.feedback.FeedbackRule, read only when a metric names a group (METRIC@K:liked): the curve of
        # any other selection stays as it was
        self.feedback = feedback if any(":" in metric for metric in args.metrics) else None

    def measure(self, model: torch.nn.Module) -> dict[str, float]:
        from rlrec.evaluation.beyond import BeyondAccuracyAccumulator
        from rlrec.evaluation.evaluate import evaluate_ranker
        from rlrec.ranking import SIDRanker

        start = time.perf_counter()
        ranker = SIDRanker(model, self.tokenizer, self.index, num_beams=self.args.valid_num_beams,
                           batch_size=self.args.valid_batch_size, max_history=self.max_history)
        beyond = BeyondAccuracyAccumulator(self.space, self.args.k_values) if self.args.needs_item_space else None
        result = evaluate_ranker(ranker, self.examples, self.args.k_values, batch_size=len(self.examples),
                                 beyond=beyond, feedback=self.feedback)
        metrics = check_metrics(result, grouped=self.feedback is not None)
        if any(metric not in metrics for metric in self.args.metrics):
            raise ConfigError(f"valid selection: {[m for m in self.args.metrics if m not in metrics]} cannot be "
                              "measured here (diversity needs the SID index's item embeddings)")
        return {**metrics, "seconds": round(time.perf_counter() - start, 2)}

    def score(self, point: dict[str, float], start: dict[str, float]) -> float:
        """What chooses among checks: `valid_metric`, or INELIGIBLE when the check falls below `valid_floor`
        (relative to `start`, the first check's metrics)."""
        floor = self.args.floor
        if floor is not None and point[floor[0]] < floor[1] * start[floor[0]]:
            return INELIGIBLE
        return point[self.args.valid_metric]


class ValidRankingMixin:
    """A Trainer whose `evaluate` ranks the valid users when a `ValidRanking` is attached (`attach_valid_selection`),
    built (with keyword arguments) on TrainingArguments `settle_valid_selection` settled.

    The metrics are logged as `eval_<metric>` with `eval_valid_score`, what `metric_for_best_model` chooses by.
    A check at step 0 also saves `checkpoint-0` and counts as a candidate, which the Trainer does not do for
    `eval_on_start`, so that a run which only got worse ends with the weights it started from. A resumed run's
    `eval_on_start` measures nothing: the checks before the checkpoint are in its restored log history.
    """

    valid_ranking: ValidRanking | None = None
    checkpoints_for_selection_only = False  # save_strategy was "no": the checks' checkpoints go when training ends

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if ranks_valid(kwargs.get("args")) and kwargs.get("eval_dataset") is None:
            # Trainer.__init__ refuses evaluation without an eval_dataset; the checks rank the valid users and
            # never read it, so one train row stands in.
            kwargs["eval_dataset"] = kwargs["train_dataset"].select(range(1))
        super().__init__(*args, **kwargs)

    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        if self.valid_ranking is None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        prefix = f"{metric_key_prefix}_"
        step, key = self.state.global_step, prefix + VALID_SCORE
        checks = [entry for entry in self.state.log_history if key in entry]
        if any(entry["step"] == step for entry in checks):  # resumed at a check: measured before the checkpoint
            return {}
        if step and step % self.state.eval_steps and step < self.state.max_steps:  # a resumed run's eval_on_start
            return {}
        point = self.valid_ranking.measure(self.model)
        start = {name.removeprefix(prefix): value for name, value in checks[0].items()} if checks else point
        metrics = {prefix + name: value for name, value in point.items()}
        metrics[key] = self.valid_ranking.score(point, start)
        was_training = self.model.training
        self.model.eval()  # TRL's trainers log their own train metrics when the model is in training mode
        self.log(metrics)
        self.model.train(was_training)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        logger.info("valid %s at step %d: %.4f", self.valid_ranking.args.valid_metric, step,
                    point[self.valid_ranking.args.valid_metric])
        if step == 0:
            self._keep_start(metrics)
        return metrics

    def _keep_start(self, metrics: dict[str, float]) -> None:
        """Make the start a candidate: the best so far, saved as `checkpoint-0` (the Trainer records a best
        checkpoint only for steps > 0, so it is named here before the state is written)."""
        self._determine_best_metric(metrics=metrics, trial=None)
        self.state.best_model_checkpoint = os.path.join(self.args.output_dir, "checkpoint-0")
        self._save_checkpoint(self.model, trial=None)
        self.control = self.callback_handler.on_save(self.args, self.state, self.control)


class ValidCheckSchedule(TrainerCallback):
    """Puts the checks (and the checkpoints they choose among) on the run's step grid once its length is known:
    every `valid_every_steps`, or `valid_every_epochs` x the steps of an epoch, and at the last step."""

    def __init__(self, args: ValidSelectionArguments, save_steps: int | None) -> None:
        self.args = args
        self.save_steps = save_steps  # the recipe's own checkpoint interval (for resuming), if it had one

    def on_train_begin(self, args, state, control, **kwargs):
        if getattr(args, "deepspeed_plugin", None) is not None and args.deepspeed_plugin.zero_stage == 3:
            raise ConfigError("valid_every_steps does not work under ZeRO-3 (each process holds a shard of the "
                              "weights); use ZeRO-2 or DDP, or evaluate the saved checkpoints afterwards")
        state.eval_steps = self.args.checks_every(state.max_steps, state.num_train_epochs)
        state.save_steps = math.gcd(state.eval_steps, self.save_steps) if self.save_steps else state.eval_steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_evaluate = True  # the last weights are a candidate too (saved: DefaultFlowCallback)


@dataclass(frozen=True)
class SelectionCheckpoints:
    """What the recipe's own checkpointing was, read before `settle_valid_selection` replaces it."""

    recipe_save_steps: int | None  # the recipe's `save_strategy: steps` interval (kept for resuming), if any
    for_selection_only: bool  # `save_strategy: no`: the checks' checkpoints go when training ends


def ranks_valid(training: Any) -> bool:
    """Whether these TrainingArguments were settled for valid selection (`settle_valid_selection`)."""
    return getattr(training, "metric_for_best_model", None) == VALID_SCORE


def settle_valid_selection(training: Any, args: ValidSelectionArguments) -> SelectionCheckpoints | None:
    """Turn the TrainingArguments' evaluation into valid ranking with the best check kept (module docstring),
    before the trainer is built; None when valid selection is off. The trainer reads them as they are from then on.

    The recipe's `save_strategy: steps` checkpoints stay (every check is one more); with `save_strategy: no` the
    checks' checkpoints hold the weights only and the stage removes them once training ends
    (`end_valid_selection`). A recipe that also asks for a validation loss (`eval_strategy`) is refused: the loss
    and the ranking would each choose their own best checkpoint.
    """
    if not args.enabled:
        return None
    if ranks_valid(training):
        raise RuntimeError("settle_valid_selection: these TrainingArguments are settled already")
    if training.eval_strategy != IntervalStrategy.NO:
        raise ConfigError("eval_strategy (the validation loss, with early_stopping_patience) and "
                          "valid_every_steps / valid_every_epochs (ranking the valid users) would each choose "
                          "their own best checkpoint; choose one")
    checkpoints = SelectionCheckpoints(
        recipe_save_steps=training.save_steps if training.save_strategy == SaveStrategy.STEPS else None,
        for_selection_only=training.save_strategy == SaveStrategy.NO)
    if checkpoints.for_selection_only:
        training.save_only_model = getattr(training, "deepspeed_plugin", None) is None
        training.save_total_limit = training.save_total_limit or 1  # the newest and the best stay
    training.eval_strategy, training.save_strategy = IntervalStrategy.STEPS, SaveStrategy.STEPS
    training.eval_steps = training.save_steps = args.valid_every_steps or 1  # set per run by ValidCheckSchedule
    training.eval_on_start = True
    training.metric_for_best_model, training.greater_is_better = VALID_SCORE, True
    training.load_best_model_at_end = True
    training.restore_callback_states_from_checkpoint = True  # the early-stopping counter of a resumed run
    return checkpoints


def attach_valid_selection(trainer: Any, ranking: ValidRanking, checkpoints: SelectionCheckpoints) -> None:
    """Give a trainer built on settled TrainingArguments (`settle_valid_selection`, which returned `checkpoints`)
    what its checks rank, and the callbacks that put the checks on the run's step grid and stop early."""
    if not isinstance(trainer, ValidRankingMixin):
        raise TypeError(f"{type(trainer).__name__} cannot rank the valid users; mix in ValidRankingMixin")
    if not ranks_valid(trainer.args):
        raise RuntimeError("attach_valid_selection: settle the TrainingArguments (settle_valid_selection) before "
                           "the trainer is built")
    trainer.valid_ranking = ranking
    trainer.checkpoints_for_selection_only = checkpoints.for_selection_only
    trainer.add_callback(ValidCheckSchedule(ranking.args, checkpoints.recipe_save_steps))
    if ranking.args.valid_patience is not None:
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=ranking.args.valid_patience))


def end_valid_selection(trainer: Any) -> dict[str, Any]:
    """After `trainer.train()` (the best weights loaded): the manifest's record of the selection, read from the
    log history, and the checkpoints made only for it removed."""
    ranking: ValidRanking = trainer.valid_ranking
    state, key = trainer.state, f"eval_{VALID_SCORE}"
    curve = [{"step": entry["step"], **{name.removeprefix("eval_"): value for name, value in entry.items()
                                        if name.startswith("eval_") and name != key},
              "eligible": entry[key] != INELIGIBLE}
             for entry in state.log_history if key in entry]
    best_step = state.best_global_step or 0
    best = next((point for point in curve if point["step"] == best_step), None)
    if trainer.checkpoints_for_selection_only:
        trainer.accelerator.wait_for_everyone()  # every rank has loaded the best weights
        if trainer.accelerator.is_main_process:
            from rlrec.utils.output_dirs import checkpoints

            for folder in checkpoints(trainer.args.output_dir):
                shutil.rmtree(folder, ignore_errors=True)
    if best is not None and best_step != state.global_step:
        logger.info("kept the weights of step %d (valid %s %.4f) instead of the last step's", best_step,
                    ranking.args.valid_metric, best[ranking.args.valid_metric])
    return {"metric": ranking.args.valid_metric, "every_steps": state.eval_steps, "best": best, "curve": curve,
            "users": len(ranking.examples),
            "stopped_early_at": state.global_step if state.global_step < state.max_steps else None}


def valid_ranking(args: ValidSelectionArguments, dataset: Any, index: Any, tokenizer: Any,
                  max_history: int | None, seed: int) -> ValidRanking | None:
    """What a stage's checks rank, or None when neither `valid_every_steps` nor `valid_every_epochs` is set."""
    if not args.enabled:
        return None
    from rlrec.evaluation.run import select_examples
    from rlrec.evaluation.settings import EvalSettings

    examples = select_examples([ex for ex in dataset.valid if ex.target in index], args.valid_max_examples, seed)
    space = None
    if args.needs_item_space:
        from rlrec.evaluation.run import index_vectors, item_space

        space = item_space(dataset, EvalSettings().head_fraction, index_vectors(index))
    return ValidRanking(args, examples, index, tokenizer, max_history, space, dataset.feedback())


def without_last_windows(train: list) -> list:
    """`train` without each user's last window (the latest target), for `valid_unseen_last_item`."""
    last = {example.user_id: i for i, example in enumerate(train)}
    return [example for i, example in enumerate(train) if last[example.user_id] != i]
