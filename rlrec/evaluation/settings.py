"""`EvalSettings`: how a model is evaluated, declared once.

`rlrec evaluate` takes the fields as they are (`EvaluateConfig` extends it); the training stages' end-of-training
evaluation and `rlrec setrec` take `eval_`-prefixed copies of some of them (plain dataclasses whose fields are
`eval_field(...)`: the original's help and default), since their parsers also hold TRL's and transformers'
fields, and turn them back into `EvalSettings` with `settings()`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from rlrec.baselines.sasrec import SASRecConfig
from rlrec.data.popularity import DEFAULT_HEAD_FRACTION
from rlrec.evaluation.evaluate import BASELINES, EVAL_SPLITS, OPTIONAL_BASELINES
from rlrec.evaluation.metrics import DEFAULT_K_VALUES
from rlrec.utils.defaults import DEFAULT_NUM_BEAMS, DEFAULT_RANKING_BATCH_SIZE, DEFAULT_SEED
from rlrec.utils.errors import ConfigError

PREFIX = "eval_"


@dataclass
class EvalSettings:
    """How a model is evaluated: split, cut-offs, beam search, subset, baselines (shared with the SFT stage)."""

    split: str = field(default="test", metadata={"help": "Split to evaluate: `valid` or `test`."})
    k_values: list[int] = field(
        default_factory=lambda: list(DEFAULT_K_VALUES),
        metadata={"help": "Cut-offs K of HR@K and NDCG@K; the largest must not exceed `num_beams`."},
    )
    num_beams: int = field(
        default=DEFAULT_NUM_BEAMS,
        metadata={"help": "Beams of the constrained beam search: the most items ranked per user."},
    )
    batch_size: int = field(default=DEFAULT_RANKING_BATCH_SIZE,
                            metadata={"help": "Users decoded together (prompts per forward pass)."})
    max_history: int | None = field(
        default=None,
        metadata={"help": "Keep only the most recent items of each history in the prompt; None: as prepared."},
    )
    max_examples: int | None = field(
        default=None,
        metadata={
            "help": "Evaluate a fixed random subset of this many users (drawn with `seed`, same for every "
            "model); None: the whole split."
        },
    )
    baselines: list[str] = field(
        default_factory=lambda: list(BASELINES),
        metadata={"help": "Baselines ranked on the same examples: `popularity`, `sasrec`, and on rated data "
                  "`sasrec_liked` (SASRec trained on liked targets only); none: an empty list."},
    )
    head_fraction: float | None = field(
        default=DEFAULT_HEAD_FRACTION,
        metadata={"help": "Most popular fraction of train items that counts as `head` (the rest `tail`); "
                  "None: no head/tail breakdown."},
    )
    cold_pool: bool = field(
        default=True,
        metadata={"help": "Also rank each user whose target is cold among the cold items only (items in no train "
                  "example), the cold-start protocol of SETRec and similar papers: group `cold_pool`. The `cold` "
                  "group ranks the same users among all items."},
    )
    beyond_accuracy: bool = field(
        default=True,
        metadata={"help": "Also describe every model's lists: coverage, tail share, novelty, diversity (in the SID "
                  "index's item text-embedding space) and popularity at each K (rlrec/evaluation/beyond.py)."},
    )
    sasrec_epochs: int = field(
        default=50,
        metadata={"help": "Most training epochs of the SASRec baseline (all when sasrec_valid_patience is 0)."},
    )
    sasrec_valid_patience: int = field(
        default=5,
        metadata={"help": "SASRec's epoch is chosen on the valid split, like the models it is compared with: the "
                  "best valid NDCG@10, stopping after this many epochs without a gain (0: train all sasrec_epochs)."},
    )
    sasrec_max_len: int = field(
        default=SASRecConfig.max_len, metadata={"help": "Most recent items SASRec reads per history."}
    )
    sasrec_hidden_size: int = field(
        default=SASRecConfig.hidden_size, metadata={"help": "Embedding / hidden width of SASRec."}
    )
    seed: int = field(default=DEFAULT_SEED, metadata={"help": "Seed of the example subset and of SASRec's training."})
    plot: bool = field(default=True, metadata={"help": "Also write `metrics.png` next to `report.json`."})

    def __post_init__(self) -> None:
        if self.split not in EVAL_SPLITS:
            raise ConfigError(f"split={self.split!r}; expected one of {', '.join(EVAL_SPLITS)}")
        if not self.k_values or any(int(k) < 1 for k in self.k_values):
            raise ConfigError(f"k_values={self.k_values}; expected positive integers")
        self.k_values = sorted({int(k) for k in self.k_values})
        for name in ("num_beams", "batch_size", "sasrec_epochs", "sasrec_max_len", "sasrec_hidden_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; expected a positive integer")
        if self.k_values[-1] > self.num_beams:
            raise ConfigError(
                f"k_values go up to {self.k_values[-1]} but num_beams={self.num_beams}: beam search ranks at most "
                "num_beams items; raise num_beams or lower the largest K"
            )
        for name in ("max_history", "max_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value}; expected a positive integer or None")
        if self.sasrec_valid_patience < 0:
            raise ConfigError(f"sasrec_valid_patience={self.sasrec_valid_patience}; expected an integer >= 0")
        unknown = [b for b in self.baselines if b not in BASELINES + OPTIONAL_BASELINES]
        if unknown:
            known = ", ".join(BASELINES + OPTIONAL_BASELINES)
            raise ConfigError(f"baselines: unknown {unknown}; expected any of {known}")
        if self.head_fraction is not None and not 0.0 < self.head_fraction < 1.0:
            raise ConfigError(f"head_fraction={self.head_fraction}; expected a number in (0, 1) or None")


class EvalArguments:
    """Base of the `eval_`-prefixed copies of EvalSettings fields a training stage takes (`EndEvalArguments`,
    `SETRecEvalArguments`): `settings()` gives the `EvalSettings` they stand for."""

    @property
    def settings_fields(self) -> tuple[str, ...]:
        """The EvalSettings fields this class holds a copy of (`eval_num_beams` -> `num_beams`)."""
        names = {f.name for f in dataclasses.fields(EvalSettings)}
        return tuple(f.name.removeprefix(PREFIX) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                     if f.name.startswith(PREFIX) and f.name.removeprefix(PREFIX) in names)

    def settings(self, **overrides: Any) -> EvalSettings:
        values = {name: getattr(self, PREFIX + name) for name in self.settings_fields}
        try:
            return EvalSettings(**{**values, **overrides})
        except ConfigError as err:  # name the fields as the user wrote them
            names = "|".join(self.settings_fields)
            raise ConfigError(re.sub(rf"\b({names})\b", lambda m: PREFIX + m.group(1), str(err))) from None

    def __post_init__(self) -> None:
        self.settings()  # checked when parsed, before any model loads


def eval_field(name: str, default: Any = dataclasses.MISSING) -> Any:
    """The field of an `eval_<name>` copy: EvalSettings' `name` with its help and, unless `default` is given, its
    default, so the copy cannot drift from the original."""
    original = next((f for f in dataclasses.fields(EvalSettings) if f.name == name), None)
    if original is None:
        raise ValueError(f"{name!r} is not an EvalSettings field")
    if default is not dataclasses.MISSING:
        return field(default=default, metadata=original.metadata)
    if original.default_factory is not dataclasses.MISSING:
        return field(default_factory=original.default_factory, metadata=original.metadata)
    return field(default=original.default, metadata=original.metadata)
