"""Choose the weights on the validation users while training: rank them every few steps, keep the best.

Training loss says little about ranking, and a GRPO run can lower NDCG on users it has not seen while
its reward rises on the prompts it trains on. So a stage can rank the valid users with constrained beam
search (the evaluation's own `SIDRanker`) at the start and every `valid_every_steps` steps, keep
the weights of the best `valid_metric` seen (the start included: a run that only got worse ends with its
start), stop after `valid_patience` checks without a new best, and load the best weights back when
training ends, before the model is saved. The curve goes into the
manifest. Test users are never touched: choose on valid, report test.

A valid user's history is the user's whole train sequence, which a small model can memorise, while a
test history ends with the valid item, never trained on: selection on such valid users favours the
memorising checkpoints that then fall on test. `valid_unseen_last_item` leaves each user's last train
window out of training (`without_last_windows`), so the valid histories end with an unseen item too.

Every process ranks the same users with the same weights, so all of them reach the same decision with no
collective call and none waits on another (ZeRO-3's partitioned weights are refused: each process would
hold only a shard).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from rlrec.utils.errors import ConfigError
from rlrec.utils.io import read_json_object, write_json

logger = logging.getLogger(__name__)

SELECTION_STATE = "valid_selection.json"
# Metrics a check can choose by or hold a floor on: higher is better for each.
SELECTION_METRICS = ("HR", "NDCG", "tail_share", "novelty", "coverage", "diversity")
SELECTION_WEIGHTS = "valid_best.safetensors"


@dataclass
class ValidSelectionArguments:
    """Rank the valid users during training and keep the best weights (off unless `valid_every_steps` is set)."""

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
                  "beyond-accuracy reward, tail_share@K, novelty@K, coverage@K or diversity@K (with valid_floor)."},
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
    valid_num_beams: int = field(default=20, metadata={"help": "Beams of the valid ranking (>= the metric's K)."})
    valid_batch_size: int = field(
        default=32, metadata={"help": "Valid users decoded together (as `rlrec evaluate`, so the figures agree)."}
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
    valid_average_top: int = field(
        default=1,
        metadata={"help": "At the end, average the weights of the N checks with the best valid_metric (a uniform "
                  "model soup of one run), rank the valid users with the average and keep it if it beats the best "
                  "single check; 1: off."},
    )

    def __post_init__(self) -> None:
        if self.valid_patience is not None and self.valid_patience < 1:
            raise ConfigError(f"`valid_patience` must be positive or None, got {self.valid_patience}")
        if self.valid_average_top < 1:
            raise ConfigError(f"`valid_average_top` must be 1 (off) or more, got {self.valid_average_top}")
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
            name, _, k = metric.partition("@")
            if name not in SELECTION_METRICS or not k.isdigit() or int(k) < 1:
                raise ConfigError(f"`{what}` names {metric!r}; expected METRIC@K with METRIC one of "
                                  f"{', '.join(SELECTION_METRICS)} (e.g. NDCG@10)")
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
        return sorted({int(metric.partition("@")[2]) for metric in self.metrics})

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

    def checkpoint_files(self) -> tuple[str, ...]:
        """Files a complete checkpoint holds for this selection (see `ValidSelectionCallback.on_save`)."""
        return (SELECTION_STATE,) if self.enabled else ()

    def training_examples(self, train: list) -> list:
        """The train windows a stage may train on: all of them, or `without_last_windows` for test-like
        validation (`valid_unseen_last_item`)."""
        return without_last_windows(train) if self.valid_unseen_last_item else train


class ValidSelectionCallback(TrainerCallback):
    """Ranks the valid users at train start and every `every_steps` steps; restores the best weights at the end."""

    def __init__(self, args: ValidSelectionArguments, examples: list, index: Any, tokenizer: Any,
                 max_history: int | None, space: Any = None) -> None:
        if not examples:
            raise ConfigError("valid_every_steps is set but the valid split has no examples to rank")
        if args.needs_item_space and space is None:
            raise ConfigError(f"valid selection by {args.metrics} needs the items' train popularity and vectors "
                              "(an ItemSpace)")
        self.args = args
        self.space = space  # rlrec.evaluation.beyond.ItemSpace, for the beyond-accuracy metrics
        self.examples = examples
        self.index, self.tokenizer, self.max_history = index, tokenizer, max_history
        self.curve: list[dict[str, float]] = []
        self.stopped_at: int | None = None  # the step early stopping ended training at
        self.best: dict[str, float] | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        # (metric, step, weights) of the `valid_average_top` best checks, best first (checks of this process
        # only: a resumed run averages the checks made after resuming, with the restored best among them)
        self._top: list[tuple[float, int, dict[str, torch.Tensor]]] = []
        self.average: dict[str, Any] | None = None
        self.every: int | None = args.valid_every_steps  # resolved from the run's length when counted in epochs

    def _measure(self, model: torch.nn.Module) -> dict[str, float]:
        from rlrec.evaluation.beyond import BeyondAccuracyAccumulator
        from rlrec.evaluation.evaluate import evaluate_ranker
        from rlrec.ranking import SIDRanker

        start = time.perf_counter()
        ranker = SIDRanker(model, self.tokenizer, self.index, num_beams=self.args.valid_num_beams,
                           batch_size=self.args.valid_batch_size, max_history=self.max_history)
        beyond = BeyondAccuracyAccumulator(self.space, self.args.k_values) if self.args.needs_item_space else None
        metrics = evaluate_ranker(ranker, self.examples, self.args.k_values, batch_size=len(self.examples),
                                  beyond=beyond)["all"]
        if any(metric not in metrics for metric in self.args.metrics):
            raise ConfigError(f"valid selection: {[m for m in self.args.metrics if m not in metrics]} cannot be "
                              "measured here (diversity needs the SID index's item embeddings)")
        return {**metrics, "seconds": round(time.perf_counter() - start, 2)}

    def eligible(self, point: dict[str, float]) -> bool:
        """Whether a check keeps `valid_floor` (relative to the first check, the start); always, without one."""
        floor = self.args.floor
        if floor is None or not self.curve:
            return True
        metric, ratio = floor
        return point[metric] >= ratio * self.curve[0][metric]

    def _validate(self, model: torch.nn.Module, step: int) -> None:
        point = {"step": step, **self._measure(model)}
        point["eligible"] = self.eligible(point)
        self.curve.append(point)
        value = point[self.args.valid_metric]
        if point["eligible"] and (self.best is None or value > self.best[self.args.valid_metric]):
            self.best = point
            self._best_state = _cpu_copy(model)
        if point["eligible"]:
            self._keep_top(value, step, lambda: self._best_state if self.best is point else _cpu_copy(model))
        logger.info("valid %s at step %d: %.4f (best %.4f at step %d)", self.args.valid_metric, step, value,
                    self.best[self.args.valid_metric], self.best["step"])

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.every = self.args.checks_every(state.max_steps, state.num_train_epochs)
        if getattr(args, "deepspeed_plugin", None) is not None and args.deepspeed_plugin.zero_stage == 3:
            raise ConfigError("valid_every_steps does not work under ZeRO-3 (each process holds a shard of the "
                              "weights); use ZeRO-2 or DDP, or evaluate the saved checkpoints afterwards")
        if not self.curve:
            self._validate(model, state.global_step)
        elif self._best_state is None and self.best is not None:  # resumed at the best step: the checkpoint's
            self._best_state = _cpu_copy(model)
            self._keep_top(self.best[self.args.valid_metric], self.best["step"], lambda: self._best_state)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self._validate(model, state.global_step)
            patience = self.args.valid_patience
            if patience is not None and len(self.curve) - 1 - self.curve.index(self.best) >= patience:
                logger.info("no new best valid %s in %d checks: stopping at step %d", self.args.valid_metric,
                            patience, state.global_step)
                self.stopped_at = state.global_step
                control.should_training_stop = True

    def _keep_top(self, value: float, step: int, weights: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Remember a check among the `valid_average_top` best (`weights` called only when averaging is on)."""
        if self.args.valid_average_top <= 1:
            return
        self._top.append((value, step, weights()))
        self._top.sort(key=lambda entry: -entry[0])
        del self._top[self.args.valid_average_top:]

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not self.curve or self.curve[-1]["step"] != state.global_step:
            self._validate(model, state.global_step)
        if self._best_state is not None and self.best["step"] != state.global_step:
            model.load_state_dict(self._best_state)
            logger.info("kept the weights of step %d (valid %s %.4f) instead of the last step's", self.best["step"],
                        self.args.valid_metric, self.best[self.args.valid_metric])
        if len(self._top) > 1:
            self._try_average(model)

    def _try_average(self, model: torch.nn.Module) -> None:
        """Rank the valid users with the mean of the top checks' weights; keep it only if it beats the best."""
        steps = [step for _, step, _ in self._top]
        model.load_state_dict(average_weights([weights for _, _, weights in self._top]))
        point = {"averaged_steps": steps, **self._measure(model)}
        metric = self.args.valid_metric
        kept = point[metric] > self.best[metric]
        self.average = {**point, "kept": kept}
        if kept:
            logger.info("kept the average of steps %s (valid %s %.4f > %.4f, step %d alone)", steps, metric,
                        point[metric], self.best[metric], self.best["step"])
        else:
            model.load_state_dict(self._best_state)
            logger.info("the average of steps %s scored valid %s %.4f, not above step %d's %.4f: kept step %d",
                        steps, metric, point[metric], self.best["step"], self.best[metric], self.best["step"])

    def on_save(self, args, state, control, **kwargs):
        """Keep the curve and the best weights with the checkpoint, so a resumed run selects as one run would."""
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not folder.is_dir():
            return
        if self._best_state is not None and self.best is not None and self.best["step"] != state.global_step:
            from safetensors.torch import save_file

            save_file({name: t.contiguous() for name, t in self._best_state.items()}, folder / SELECTION_WEIGHTS)
        # Written last: a checkpoint holding it is complete (`resume_from_checkpoint: last` looks for it).
        write_json(folder / SELECTION_STATE, {"curve": self.curve, "best": self.best, "stopped_at": self.stopped_at})

    def restore(self, checkpoint: str | Path) -> None:
        """Continue from a checkpoint's selection state (`on_save`). When the best step is the checkpoint's
        own, no weights were saved beside it: they are the checkpoint's, taken when training begins."""
        folder = Path(checkpoint)
        saved = read_json_object(folder / SELECTION_STATE, missing_ok=True)
        if not saved:
            logger.warning("%s: no %s: valid selection starts afresh from the resumed step", folder, SELECTION_STATE)
            return
        self.curve, self.best, self.stopped_at = saved["curve"], saved["best"], saved["stopped_at"]
        self._best_state = None  # no file: the best step is the checkpoint's own (taken in `on_train_begin`)
        if (folder / SELECTION_WEIGHTS).is_file():
            from safetensors.torch import load_file

            self._best_state = load_file(folder / SELECTION_WEIGHTS)
            self._keep_top(self.best[self.args.valid_metric], self.best["step"], lambda: self._best_state)

    def summary(self) -> dict[str, Any]:
        """What the manifest records: the metric, the best point, the whole curve and the average's check."""
        return {"metric": self.args.valid_metric, "every_steps": self.every, "best": copy.deepcopy(self.best),
                "curve": list(self.curve),
                "users": len(self.examples), "stopped_early_at": self.stopped_at,
                "average": copy.deepcopy(self.average)}


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several state dicts of one model (floating tensors; others from the first)."""
    first = states[0]
    return {name: (torch.stack([state[name].float() for state in states]).mean(0).to(tensor.dtype)
                   if tensor.is_floating_point() else tensor.clone())
            for name, tensor in first.items()}


def _cpu_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}


def valid_selection_callback(args: ValidSelectionArguments, dataset: Any, index: Any, tokenizer: Any,
                             max_history: int | None, seed: int) -> ValidSelectionCallback | None:
    """The callback for a stage, or None when neither `valid_every_steps` nor `valid_every_epochs` is set."""
    if not args.enabled:
        return None
    from rlrec.evaluation.run import select_examples
    from rlrec.evaluation.settings import EvalSettings

    examples = select_examples([ex for ex in dataset.valid if ex.target in index], args.valid_max_examples, seed)
    space = None
    if args.needs_item_space:
        from rlrec.evaluation.run import index_vectors, item_space

        space = item_space(dataset, EvalSettings().head_fraction, index_vectors(index))
    return ValidSelectionCallback(args, examples, index, tokenizer, max_history, space)


def without_last_windows(train: list) -> list:
    """`train` without each user's last window (the latest target), for `valid_unseen_last_item`."""
    last = {example.user_id: i for i, example in enumerate(train)}
    return [example for i, example in enumerate(train) if last[example.user_id] != i]
