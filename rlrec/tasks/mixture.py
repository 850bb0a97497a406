"""`build_mixture`: a recipe's weighted task list -> one shuffled SFT dataset.

A recipe names tasks with weights, e.g. `{next_item: 1.0, title_to_sid: 0.2, ts_align_token: 0.1}`:

- a float is a proportion: the float-weighted tasks share `num_examples` in proportion to their weights
  (largest remainders, so the counts add up exactly). With `num_examples` None they share the natural
  size of `next_item` (one example per train window), so the mixture is as long as one pass over the
  train windows: `{next_item: 0.8, ts_align_token: 0.2}` keeps 80% of them and adds 20% alignment;
- an integer is an exact example count, added on top of that (`ts_align_token: 2000`). Write `1.0`,
  not `1`, for a weight: an integer is a count.

A task asked for more examples than it naturally has repeats them - every one the same number of times,
then a sample of the rest - rendered afresh each time (other phrasings, other negatives), and says so in
the log. Each task draws from its own generator seeded by `(seed, task name)`, so adding a task to a
recipe leaves the other tasks' examples as they were.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rlrec.tasks.context import TaskContext
from rlrec.tasks.registry import TASKS
from rlrec.tasks.spec import Row
from rlrec.utils.errors import ConfigError

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

BASE_TASK = "next_item"


def check_weights(tasks: Mapping[str, float | int]) -> dict[str, float | int]:
    """The recipe's `tasks` mapping, checked: known names, finite non-negative numbers, not all zero."""
    if not isinstance(tasks, Mapping) or not tasks:
        raise ConfigError(f"tasks: expected a non-empty mapping of task name -> weight, got {tasks!r}")
    known = ", ".join(TASKS)
    checked: dict[str, float | int] = {}
    for name, weight in tasks.items():
        if name not in TASKS:
            raise ConfigError(f"tasks: unknown task {name!r}; known tasks: {known}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigError(f"tasks: weight of {name!r} is {weight!r}; expected a number >= 0")
        if weight < 0:
            raise ConfigError(f"tasks: weight of {name!r} is {weight!r}; expected a number >= 0")
        checked[name] = weight
    if sum(checked.values()) == 0:
        raise ConfigError("tasks: the weights sum to zero; give at least one task a positive weight")
    return checked


def plan_counts(
    context: TaskContext, tasks: Mapping[str, float | int], num_examples: int | None = None
) -> dict[str, int]:
    """How many examples each task contributes (see the module docstring)."""
    weights = check_weights(tasks)
    if num_examples is not None and (isinstance(num_examples, bool) or not isinstance(num_examples, int)
                                     or num_examples < 0):
        raise ConfigError(f"num_examples is {num_examples!r}; expected an integer >= 0 or None")
    counts = {name: int(w) for name, w in weights.items() if isinstance(w, int)}
    shares = {name: float(w) for name, w in weights.items() if isinstance(w, float)}
    if shares and sum(shares.values()) > 0:
        total = TASKS[BASE_TASK].size(context) if num_examples is None else num_examples
        counts.update(_apportion(shares, total))
    else:
        counts.update({name: 0 for name in shares})
    return {name: counts[name] for name in weights}


def _apportion(shares: Mapping[str, float], total: int) -> dict[str, int]:
    """Split `total` in proportion to `shares`, rounding by largest remainders (ties: recipe order)."""
    weight_sum = sum(shares.values())
    exact = {name: total * w / weight_sum for name, w in shares.items()}
    counts = {name: math.floor(x) for name, x in exact.items()}
    order = sorted(shares, key=lambda name: -(exact[name] - counts[name]))
    for name in order[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def sample_positions(size: int, count: int, rng: random.Random) -> list[int]:
    """`count` positions of `range(size)`: distinct when they fit, else whole passes plus a distinct sample."""
    passes, rest = divmod(count, size)
    return [i for _ in range(passes) for i in range(size)] + rng.sample(range(size), rest)


def build_mixture(
    context: TaskContext,
    tasks: Mapping[str, float | int],
    num_examples: int | None = None,
    seed: int = 0,
) -> datasets.Dataset:
    """A shuffled dataset with columns `prompt`, `completion`, `task`; the same for the same seed."""
    import datasets

    counts = plan_counts(context, tasks, num_examples)
    rows: list[Row] = []
    for name, count in counts.items():
        if count == 0:
            continue
        spec = TASKS[name]
        size = spec.size(context)
        if size == 0:
            raise ConfigError(
                f"tasks: task {name!r} has no examples for this dataset and SID index ({spec.description}); "
                "remove it from the recipe"
            )
        if count > size:
            logger.info("task %s: %d examples asked, %d natural ones: repeating them (sampling with replacement)",
                        name, count, size)
        rng = random.Random(f"{seed}:{name}")
        rows.extend(spec.examples(context, rng, sample_positions(size, count, rng)))
    random.Random(seed).shuffle(rows)
    logger.info("SFT mixture: %d examples (%s)", len(rows), ", ".join(f"{n} {c}" for n, c in counts.items()))
    columns = {key: [row[key] for row in rows] for key in ("prompt", "completion", "task")}
    return datasets.Dataset.from_dict(columns)


def mixture_summary(dataset: datasets.Dataset) -> dict[str, int]:
    """Examples per task, in registry order."""
    counts = Counter(dataset["task"])
    order = {name: i for i, name in enumerate(TASKS)}
    return {name: counts[name] for name in sorted(counts, key=lambda n: (order.get(n, len(order)), n))}
