"""Range checks on the numeric fields of every stage's configs, before any work starts.

An rlrec config class says the ranges of its numeric fields beside their declarations, in a `field_ranges`
class variable (`field_ranges: ClassVar[dict[str, Range]] = {"codebook_size": Range(2)}`; a subclass adds to
its bases'), or its `__post_init__` checks them. (A field's own metadata cannot hold it: HfArgumentParser hands
every metadata key to argparse.) The fields every trainer shares come from
transformers and TRL, which accept many out-of-range values silently (`num_train_epochs: -1` trains 0 steps
and saves the untrained model as a finished run); rlrec cannot write beside those declarations, so
`LIBRARY_RANGES` names their ranges. `check_ranges` holds every parsed config to both, so a bad value fails in
one line that names the field and the range, and `annotate_help` shows the range in `--help`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rlrec.utils.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """`low <= value` (or `<` when not `low_inclusive`), `value <= high`, or exactly one of `also`."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    also: tuple[float, ...] = ()

    def holds(self, value: float) -> bool:
        if value in self.also:
            return True
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        parts = []
        if self.low is not None and self.high is not None:
            parts.append(f"a number {'in [' if self.low_inclusive else 'in ('}{self.low:g}, {self.high:g}]")
        elif self.low is not None:
            parts.append(f"a number {'>=' if self.low_inclusive else '>'} {self.low:g}")
        parts += [f"{value:g}" for value in self.also]
        return " or ".join(parts)


POSITIVE = Range(0, low_inclusive=False)
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
SHARE = Range(0, 1)

# The ranges of fields transformers and TRL declare (rlrec's classes carry theirs in `field_ranges`).
LIBRARY_RANGES: dict[str, Range] = {
    # transformers' TrainingArguments, shared by every training stage
    "num_train_epochs": POSITIVE,
    "max_steps": Range(1, also=(-1,)),
    "learning_rate": NON_NEGATIVE,  # 0 is a legitimate control (weights that never move)
    "per_device_train_batch_size": AT_LEAST_ONE,
    "per_device_eval_batch_size": AT_LEAST_ONE,
    "gradient_accumulation_steps": AT_LEAST_ONE,
    "weight_decay": NON_NEGATIVE,
    "warmup_steps": NON_NEGATIVE,
    "max_grad_norm": NON_NEGATIVE,
    "logging_steps": POSITIVE,
    "seed": NON_NEGATIVE,
    "adam_epsilon": POSITIVE,
    "adam_beta1": SHARE,
    "adam_beta2": SHARE,
    # TRL's GRPO / DPO
    "num_generations": Range(2),
    "beta": NON_NEGATIVE,
    "temperature": POSITIVE,
    "epsilon": NON_NEGATIVE,
    "num_iterations": AT_LEAST_ONE,
    "steps_per_generation": AT_LEAST_ONE,
    "max_completion_length": AT_LEAST_ONE,
}


def class_ranges(config_type: type) -> dict[str, Range]:
    """The ranges a config class gives its fields: its `field_ranges` and its bases', then the library table's."""
    ranges = dict(LIBRARY_RANGES)
    for base in reversed(config_type.__mro__):
        ranges.update(vars(base).get("field_ranges", {}))
    return ranges


def annotate_help(parser: Any) -> None:
    """Say each ranged field's allowed values in its `--help` line, beside argparse's default, so `rlrec STAGE
    --help` shows a field's default and range together."""
    ranges = {field.name: class_ranges(config).get(field.name) for config in getattr(parser, "dataclass_types", ())
              for field in dataclasses.fields(config)}
    for action in getattr(parser, "_actions", []):
        allowed = ranges.get(action.dest)
        if allowed is not None and action.help and "Allowed:" not in action.help:
            action.help = f"{action.help.rstrip()} Allowed: {allowed.describe()}."


def check_ranges(configs: Iterable[Any]) -> None:
    """Raise ConfigError naming the first numeric field of `configs` (dataclass instances) outside its range.

    None (a field left unset) is not checked; booleans are not numbers here.
    """
    for config in configs:
        if not dataclasses.is_dataclass(config):
            continue
        ranges = class_ranges(type(config))
        for field in dataclasses.fields(config):
            allowed = ranges.get(field.name)
            value = getattr(config, field.name, None)
            if allowed is None or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not allowed.holds(float(value)):
                raise ConfigError(f"{field.name}={value!r}; expected {allowed.describe()}")
