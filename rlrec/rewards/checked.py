"""`checked(fn)`: the guard `load_rewards` puts around every reward, so a bad completion never stops training.

A reward may return None for a completion it cannot score; so may it, through a bug, return NaN, an infinity or
a non-number, or raise. All of these become the invalid penalty (TRL would otherwise drop None as NaN, and a
NaN or infinity poisons the group's advantage), and their count goes to `log_metric("rewards/{name}/invalid")`
each call, so a run shows how often its completions were malformed. A reward that raises on the whole batch is
retried one completion at a time, so one odd completion costs only its own score; rewards that score groups
(`fn.scores_groups = True`) are not, and their batch gets the penalty.

What is not about one completion raises: a result of the wrong length is a bug in the reward, a
`ConfigError` (a column missing or mis-sized, groups that do not divide the batch) means the run is wired wrong,
and a reward that fails on every completion of a batch (raises, or returns NaN / a non-number, for all of
them) is broken, not unlucky: `RewardError` names it and its first error instead of training on penalties.
None for every completion stays legal: it is the reward saying that none of them is a valid item.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

from rlrec.rewards.context import RewardFunc
from rlrec.utils.errors import ConfigError, RlrecError

logger = logging.getLogger(__name__)


class RewardOutputError(RlrecError, ValueError):
    """A reward returned something other than one value per completion: a bug in the reward, not in the data.

    An RlrecError, so the CLI names the reward in one line: the fix is in the user's reward code.
    """


class RewardError(RlrecError, RuntimeError):
    """A reward failed on every completion of a batch: the reward is broken, so training stops and names it."""


class _Failed:
    """Marks a completion whose reward raised (kept apart from a None the reward returned on purpose)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def _as_list(values: Any, shown: str, n: int) -> list[Any]:
    if hasattr(values, "tolist"):  # numpy array, torch tensor
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise RewardOutputError(f"reward {shown} returned {type(values).__name__}, expected a list of {n} floats")
    if len(values) != n:
        raise RewardOutputError(
            f"reward {shown} returned {len(values)} values for {n} completions; expected one score per completion"
        )
    return list(values)


def _score(value: Any) -> float | None:
    """The value as a finite float, or None when it is not one."""
    if isinstance(value, Real) and math.isfinite(float(value)):
        return float(value)
    return None


def _one(value: Any, i: int, n: int) -> Any:
    """Completion `i`'s slice of a batch argument (lists of length n are per-completion; the rest is shared)."""
    if isinstance(value, list) and len(value) == n:
        return value[i : i + 1]
    return value


def checked(fn: RewardFunc, *, name: str | None = None, penalty: float = 0.0, source: str | None = None) -> RewardFunc:
    """`fn` made safe for training: always one finite float per completion (see the module docstring).

    `source` is how the recipe named the reward (`package.module:function`); errors show it, so a user's plugin
    is found by the path they wrote.
    """
    name = name or getattr(fn, "__name__", None) or type(fn).__name__
    shown = repr(name) + (f" ({source})" if source and source != name else "")
    penalty = float(penalty)
    if not math.isfinite(penalty):
        raise ConfigError(f"reward {name!r}: invalid_penalty must be a finite number, got {penalty}")
    grouped = bool(getattr(fn, "scores_groups", False))
    warned = False

    def warn(message: str) -> None:
        nonlocal warned
        # The first failure with its traceback; later ones only at debug level (they show in the metric).
        logger.log(logging.DEBUG if warned else logging.WARNING, message, exc_info=not warned)
        warned = True

    def call(completions: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        n = len(completions)
        try:
            result = fn(completions=completions, **kwargs)
        except ConfigError:
            raise
        except Exception as err:
            if grouped or n <= 1:
                warn(f"reward {name!r} raised on {n} completion(s); scoring them {penalty}")
                return [_Failed(err)] * n
            values: list[Any] = []
            for i in range(n):
                values.extend(call(completions[i : i + 1], {key: _one(v, i, n) for key, v in kwargs.items()}))
            return values
        return _as_list(result, shown, n)

    @functools.wraps(fn)
    def reward(completions: list[Any], **kwargs: Any) -> list[float]:
        if not isinstance(completions, list):
            completions = list(completions)
        values = call(completions, kwargs)
        scores = [_score(v) for v in values]
        failed = [v for v in values if isinstance(v, _Failed) or (v is not None and _score(v) is None)]
        if values and len(failed) == len(values):
            first = next((v.error for v in failed if isinstance(v, _Failed)), None)
            what = f"raised {type(first).__name__}: {first}" if first is not None else f"returned {failed[0]!r}"
            raise RewardError(f"reward {shown} failed on all {len(values)} completions of the batch; it {what}") \
                from first
        invalid = sum(s is None for s in scores)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric(f"rewards/{name}/invalid", float(invalid))
        return [penalty if s is None else s for s in scores]

    reward.__name__ = name
    reward.__qualname__ = name
    return reward
