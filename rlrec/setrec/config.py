"""Settings of a SETRec model (identifier shape, grounding) and of its training (a `TrainingArguments`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from transformers import TrainingArguments

from rlrec.utils.errors import ConfigError
from rlrec.utils.ranges import AT_LEAST_ONE, Range

TRAIN_CATALOGS = ("all", "warm")
DEFAULT_PROMPT = "A user interacted with these items, oldest first. Recommend the next item."


@dataclass
class SETRecModelConfig:
    """The shape of a SETRec identifier and how generated tokens are grounded to items."""

    field_ranges: ClassVar[dict[str, Range]] = {"max_history": AT_LEAST_ONE}  # checked by rlrec/utils/ranges.py

    num_semantic_tokens: int = field(
        default=4,
        metadata={"help": "N: semantic tokens per item, equal slices of the autoencoder's code (must divide "
                  "the last of `ae_hidden`)."},
    )
    ae_hidden: list[int] = field(
        default_factory=lambda: [512, 256, 128],
        metadata={"help": "Widths of the semantic autoencoder's encoder (ReLU between layers); the decoder mirrors "
                  "them back to the text-embedding width."},
    )
    alpha: float = field(default=0.1, metadata={"help": "Weight α of the autoencoder's reconstruction loss."})
    beta: float = field(
        default=0.5,
        metadata={"help": "Grounding weight β: item score = (1-β)·s_CF + β·Σ_k s_k (cold items: β·Σ_k s_k)."},
    )
    logit_scale: float = field(
        default=10.0,
        metadata={"help": "Initial scale of the cosine scores (a learned softmax inverse temperature)."},
    )
    max_history: int = field(default=10, metadata={"help": "Most recent history items read per user."})
    prompt: str = field(
        default=DEFAULT_PROMPT,
        metadata={"help": "Text placed before the history's item tokens (empty: none)."},
    )

    def __post_init__(self) -> None:
        if self.num_semantic_tokens < 1:
            raise ConfigError(f"num_semantic_tokens={self.num_semantic_tokens}; expected a positive integer")
        if not self.ae_hidden or any(int(w) < 1 for w in self.ae_hidden):
            raise ConfigError(f"ae_hidden={self.ae_hidden}; expected a non-empty list of positive widths")
        self.ae_hidden = [int(w) for w in self.ae_hidden]
        if self.ae_hidden[-1] % self.num_semantic_tokens:
            raise ConfigError(
                f"ae_hidden ends with {self.ae_hidden[-1]}, not divisible by num_semantic_tokens="
                f"{self.num_semantic_tokens}: the code is split into equal semantic tokens"
            )
        if self.alpha < 0:
            raise ConfigError(f"alpha={self.alpha}; expected a number >= 0")
        if not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"beta={self.beta}; expected a number in [0, 1]")
        if self.logit_scale <= 0:
            raise ConfigError(f"logit_scale={self.logit_scale}; expected a number > 0")
        if self.max_history < 1:
            raise ConfigError(f"max_history={self.max_history}; expected a positive integer")


@dataclass
class SETRecTrainConfig(TrainingArguments):
    """`transformers.TrainingArguments` with SETRec's defaults and its extra fields.

    The LLM (or its LoRA adapters: TRL's `ModelConfig`, `use_peft`) trains at `learning_rate`, the SETRec
    parts at `head_learning_rate`; the schedule warms up linearly and decays by a cosine to 10% of each rate.
    """

    output_dir: str = field(default="runs/ml-100k/setrec", metadata={"help": "Folder of the trained model."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an output_dir that holds a finished or unfinished run."}
    )
    max_steps: int = field(default=100, metadata={"help": "Optimizer steps (batches per process)."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Train examples per step and process."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate of the LLM (or its LoRA)."})
    head_learning_rate: float = field(
        default=1e-3,
        metadata={"help": "AdamW learning rate of the SETRec parts: projections, autoencoder, queries."},
    )
    lr_scheduler_type: str = field(default="cosine_with_min_lr", metadata={"help": "Learning-rate schedule."})
    ae_pretrain_steps: int = field(
        default=200,
        metadata={"help": "Full-batch steps that pretrain the autoencoder on reconstruction alone before the "
                  "LLM trains, so the first semantic tokens already carry meaning (0: none)."},
    )
    train_catalog: str = field(
        default="all",
        metadata={"help": "Items the training softmaxes run over: `all`, or `warm` (items seen in train): held-out "
                  "cold items are then never negatives before they are asked for."},
    )
    logging_steps: float = field(default=10, metadata={"help": "Log the losses every this many steps."})
    save_strategy: str = field(
        default="steps", metadata={"help": "`steps`: a checkpoint every `save_steps` (for resume); `no`: none."}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept off: rows are model inputs."})

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ConfigError(f"max_steps={self.max_steps}; expected a positive integer (SETRec trains by steps)")
        if self.ae_pretrain_steps < 0:
            raise ConfigError(f"ae_pretrain_steps={self.ae_pretrain_steps}; expected an integer >= 0")
        if self.train_catalog not in TRAIN_CATALOGS:
            raise ConfigError(f"train_catalog={self.train_catalog!r}; expected one of {', '.join(TRAIN_CATALOGS)}")
        if self.head_learning_rate <= 0:
            raise ConfigError(f"head_learning_rate={self.head_learning_rate}; expected a number > 0")
        if str(self.lr_scheduler_type) == "cosine_with_min_lr" and not self.lr_scheduler_kwargs:
            self.lr_scheduler_kwargs = {"min_lr_rate": 0.1}  # cosine down to 10% of each rate
        super().__post_init__()
