"""Configs of the SFT stage: what to train on (`SFTScriptArguments`) and how (`RecSFTConfig`).

`RecSFTConfig` is TRL's `SFTConfig` with defaults that suit SID recommendation: `bf16` is chosen
from the hardware (TRL's True fails on a CPU), and sequences are short, so `max_length` is small.
Every other field, and its documentation, is TRL's (`rlrec sft --help` lists them all).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from trl import SFTConfig

from rlrec.data.feedback import FeedbackRule
from rlrec.data.schema import Example
from rlrec.evaluation.settings import EvalArguments, eval_field
from rlrec.utils.defaults import DEFAULT_MAX_LENGTH
from rlrec.utils.errors import ConfigError
from rlrec.utils.ranges import AT_LEAST_ONE, Range
from rlrec.utils.stage_fields import DatasetArguments

DEFAULT_TASKS: dict[str, float] = {
    "next_item": 1.0,
    "title_to_sid": 0.15,
    "sid_to_title": 0.1,
    "ts_align_token_description": 0.1,  # TS-Rec's TS-Align; the keyword variants are ts_align_token / _prefix
    "ts_align_prefix_description": 0.05,
}
SA_INIT_MODES = ("keywords", "mean_vocab", "none")
KEYWORD_SOURCES = ("ctfidf", "teacher", "file")
DEFAULT_SCRATCH_HISTORY = 10  # history items in a from-scratch model's prompt when the recipe sets none


@dataclass
class RecTrainingDefaults:
    """The defaults every rlrec trainer config (SFT, GRPO, DPO) puts over TRL's, mixed in before TRL's config:
    `bf16` chosen from the hardware (TRL's True fails on a CPU), gradient checkpointing off (TRL turns it on for
    DPO; it costs ~20% on short SID sequences and saves nothing at these sizes), and an output folder that is
    never replaced unless asked."""

    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision; None: on when a GPU supports it, off on CPU."}
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Deprecated alias of `activation_checkpointing` (off by default; pays off on big models)."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace an output_dir that holds a finished or unfinished run (refused otherwise)."},
    )

    def __post_init__(self) -> None:
        if self.bf16 is None:
            self.bf16 = bool(not self.use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        super().__post_init__()


def parse_mapping(value: Any, field_name: str) -> dict[str, float]:
    """A `{name: weight}` mapping from YAML (a dict) or the command line (a JSON string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(f"`{field_name}` must be a JSON object such as '{{\"next_item\": 1.0}}': {err}") from err
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"`{field_name}` must map task names to weights or example counts, got {value!r}")
    return value


@dataclass
class EndEvalArguments(EvalArguments):
    """The evaluation a training stage runs on the model it saved (`rlrec evaluate`'s settings, `eval_`-prefixed)."""

    eval_at_end: bool = field(
        default=True, metadata={"help": "Run constrained-beam-search evaluation on the model that was saved."})
    eval_split: str = eval_field("split", default="valid")
    eval_max_examples: int | None = eval_field("max_examples")
    eval_num_beams: int = eval_field("num_beams")
    eval_k_values: list[int] = eval_field("k_values")
    eval_baselines: list[str] = eval_field("baselines")


@dataclass
class SFTScriptArguments(DatasetArguments):
    """What the SFT stage reads and how it builds the vocabulary and the training mixture."""

    # `__post_init__` also refuses max_history < 1 (for callers that build the class themselves); the range here
    # is what `rlrec sft --help` shows.
    field_ranges: ClassVar[dict[str, Range]] = {"max_history": AT_LEAST_ONE}

    sid_dir: str = field(default="runs/ml-100k/sid", metadata={"help": "SID index folder (`rlrec sid`)."})
    tasks: dict[str, float] | str | None = field(
        default=None,
        metadata={
            "help": "Task mixture: {task: weight} (floats, proportions of num_train_examples) or {task: count} "
            "(ints). JSON on the command line. Default: next_item plus the alignment and TS-Align tasks."
        },
    )
    num_train_examples: int | None = field(
        default=None,
        metadata={"help": "Size of the mixture; None: the number of next-item examples the train split gives."},
    )
    num_eval_examples: int | None = field(
        default=1000,
        metadata={"help": "With eval_strategy steps/epoch: size of the validation-loss set, the valid split's "
                  "next-item examples through the same task mix; None: as many as the valid split gives."},
    )
    max_history: int | None = field(
        default=None,
        metadata={
            "help": "Keep the last N items of each history in next-item prompts (shorter prompts train faster); "
            "None: the histories as prepared. Evaluation reads it from the manifest and asks the same way."
        },
    )
    sa_init: str | None = field(
        default=None,
        metadata={"help": "SID token init: keywords (SA-Init), mean_vocab (vocabulary mean) or none (random); "
                  "None: keywords for a pretrained model, none for a from-scratch one (its rows are all new)."},
    )
    sa_init_levels: list[int] | None = field(
        default=None, metadata={"help": "SID levels that get SA-Init (others: vocabulary mean); None: all."}
    )
    sa_init_layer: int | None = field(
        default=None,
        metadata={"help": "Pool the hidden states of this layer over the keyword text instead of input embeddings."},
    )
    sa_init_match_norm: bool = field(
        default=True,
        metadata={"help": "Rescale every SA-Init row to the mean norm of the pretrained rows (TS-Rec's rule); "
                  "false: the plain mean of the keywords' sub-token rows (shorter, so smaller first logits)."},
    )
    sa_init_center: bool = field(
        default=False,
        metadata={"help": "SA-Init: subtract each SID level's mean keyword row before the norm matching, so rows "
                  "keep what sets a cluster apart rather than what all keyword means share (long keyword lists "
                  "pool to nearly one direction; the SA-Init report's keyword_row_cosine shows how near)."},
    )
    keyword_source: str = field(
        default="ctfidf",
        metadata={"help": "ctfidf (offline, class-based TF-IDF), teacher (a local LLM) or file (keyword_file, "
                  "e.g. TS-Rec's released keywords and descriptions). Each also gives one-sentence descriptions "
                  "for TS-Align (c-TF-IDF: templated from the keywords)."},
    )
    keyword_file: str | None = field(
        default=None,
        metadata={"help": "keyword_source=file: a JSON list of {\"token\": \"<a_12>\", \"keywords\": [...], "
                  "\"description\": \"...\"} (TS-Rec's *.description_keywords.json); it replaces keywords the "
                  "index carries. Coverage per level goes to the log and the manifest's `keywords`."},
    )
    keyword_file_strict: bool = field(
        default=False,
        metadata={"help": "Refuse a keyword_file with tokens the SID index lacks or that leaves tokens in use "
                  "undescribed; false: skip unknown tokens with a warning (counted in the manifest)."},
    )
    teacher_model: str | None = field(
        default=None, metadata={"help": "Teacher LLM folder for keyword_source=teacher; None: SmolLM2."}
    )
    keyword_top_k: int = field(
        default=5,
        metadata={"help": "Keywords per SID token (c-TF-IDF, teacher) and per SID prefix; a keyword_file's lists "
                  "are used whole."},
    )
    freeze_llm: bool = field(
        default=False,
        metadata={"help": "Train only the SID rows of the embeddings (MiniOneRec's freeze_LLM): every pretrained "
                  "weight stays as it was. Cheap runs that isolate the SID tokens, e.g. the SA-Init ablation."},
    )
    sid_only_prompts: bool = field(
        default=False,
        metadata={"help": "Pretrained models: teach next-item prediction as the compact model learns it, a start "
                  "token then the history's SIDs (no words, about a quarter of a chat prompt's tokens), "
                  "`sequence_stride` targets per example, loss on the targets only; the other tasks (TS-Align, "
                  "alignment) stay chat examples, weighted against the next-item rows. Every later stage asks the "
                  "model this way (the saved tokenizer says so)."},
    )
    truncate_layers: int | None = field(
        default=None,
        metadata={"help": "Keep the base model's first N decoder layers (the saved model is an ordinary N-layer "
                  "model): the pretrained embeddings and lower layers SA-Init and TS-Align rely on, at a cost a CPU "
                  "can pay (rlrec/models/truncate.py). None: every layer."},
    )
    freeze_embeddings: bool = field(
        default=False,
        metadata={"help": "Keep the pretrained rows of the embedding tables as they are and train only the SID rows "
                  "there, while every layer trains (freeze_llm also freezes the layers). With SID-only prompts the "
                  "word rows serve only the prompt's few template tokens."},
    )
    merge_lora: bool = field(
        default=True, metadata={"help": "With LoRA, save the merged full model (what evaluate and grpo read)."}
    )
    sequence_stride: int = field(
        default=1,
        metadata={"help": "From-scratch models and sid_only_prompts: consecutive targets of a user taught by one "
                  "example (1: one example per train window; s: s targets after a history of max_history - "
                  "s + 1 items, about s times fewer tokens per epoch). See rlrec/tasks/sid_sequences.py."},
    )

    target_weights: dict[str, float] | str | None = field(
        default=None,
        metadata={"help": "SID-row training on rated data (scratch or sid_only_prompts): the loss weight of a target "
                  "by the user's rating of it, as {liked, neutral, disliked, unrated} (missing labels weigh 1), e.g. "
                  "{liked: 1, neutral: 0, disliked: 0} (SFT on liked targets only: a zero-weight target stays in "
                  "the histories, it is just never a label) or {liked: 1.5, neutral: 1, disliked: 0.5}. None: every "
                  "target weighs 1 (plain next-item SFT)."},
    )

    def __post_init__(self) -> None:
        self.tasks = None if self.tasks is None else parse_mapping(self.tasks, "tasks")
        if self.target_weights is not None:
            self.target_weights = check_target_weights(parse_mapping(self.target_weights, "target_weights"))
        if self.sa_init is not None and self.sa_init not in SA_INIT_MODES:
            raise ConfigError(f"`sa_init` must be one of {SA_INIT_MODES}, got {self.sa_init!r}")
        if self.sa_init_center and self.sa_init not in (None, "keywords"):
            raise ConfigError(f"`sa_init_center` centres SA-Init's keyword rows; `sa_init: {self.sa_init}` has none: "
                              "drop sa_init_center or set sa_init: keywords")
        if self.sa_init_center and not self.sa_init_match_norm:
            raise ConfigError("`sa_init_center` needs `sa_init_match_norm: true` (centred rows are differences, far "
                              "shorter than a pretrained row)")
        if self.keyword_source not in KEYWORD_SOURCES:
            raise ConfigError(f"`keyword_source` must be one of {KEYWORD_SOURCES}, got {self.keyword_source!r}")
        if self.keyword_source == "file" and not self.keyword_file:
            raise ConfigError("`keyword_source: file` needs `keyword_file` (a JSON list of {token, keywords, "
                              "description} entries)")
        if self.keyword_file and self.keyword_source != "file":
            raise ConfigError(f"`keyword_file` is read only with `keyword_source: file` (got keyword_source "
                              f"{self.keyword_source!r})")
        if self.num_train_examples is not None and self.num_train_examples < 1:
            raise ConfigError(f"`num_train_examples` must be positive, got {self.num_train_examples}")
        if self.max_history is not None and self.max_history < 1:
            raise ConfigError(f"`max_history` must be positive, got {self.max_history}")
        if self.keyword_top_k < 1:
            raise ConfigError(f"`keyword_top_k` must be positive, got {self.keyword_top_k}")
        if self.sequence_stride < 1:
            raise ConfigError(f"`sequence_stride` must be positive, got {self.sequence_stride}")
        if self.truncate_layers is not None and self.truncate_layers < 1:
            raise ConfigError(f"`truncate_layers` must be a positive number of layers, got {self.truncate_layers}")
        if self.freeze_embeddings and self.freeze_llm:
            raise ConfigError("freeze_llm already freezes every pretrained weight (the embeddings too); "
                              "freeze_embeddings trains the layers: choose one")

    def target_weight(self, rule: FeedbackRule | None) -> Callable[[Example], float] | None:
        """The loss weight of each train target (`target_weights`); None when every target weighs 1."""
        if self.target_weights is None:
            return None
        if rule is None:
            raise ConfigError("`target_weights` weighs targets by the user's rating, but the dataset has no ratings "
                              "(its manifest.json has no `ratings`)")
        weights = dict(self.target_weights)
        return lambda example: weights.get(rule.label(example.rating) or "unrated", 1.0)

    def settle(self, scratch: bool) -> None:
        """Resolve, once, the values that depend on the base model, before anything reads them: a from-scratch
        model's refusals (`check_scratch`) and, for SID-only rows (scratch or `sid_only_prompts`), the history cap
        (`max_history`, DEFAULT_SCRATCH_HISTORY when unset). `rlrec sft` settles first thing, so the
        end-of-training evaluation and the trainer read the same settled value; later calls change nothing."""
        settled = getattr(self, "_settled_for", None)
        if settled is not None:
            if settled != scratch:
                raise ValueError(f"SFTScriptArguments settled for scratch={settled}, asked again for {scratch}")
            return
        if scratch:
            self.check_scratch()
        elif self.sid_only_prompts:
            self.check_sid_rows()
        self._settled_for = scratch

    def check_scratch(self) -> None:
        """Refuse what a from-scratch SID model cannot do: it knows no words, so it has no text tasks and no
        pretrained vocabulary to initialise SID rows from."""
        text_tasks = sorted(set(self.tasks or {}) - {"next_item"})
        if text_tasks:
            raise ConfigError(
                f"`tasks` {text_tasks} need text (titles, keywords, queries), but a from-scratch model "
                "(model_name_or_path: scratch) has only SID tokens in its vocabulary; use tasks: {next_item: 1.0}"
            )
        if self.sa_init not in (None, "none"):
            raise ConfigError(
                f"`sa_init: {self.sa_init}` needs a pretrained model's embeddings; a from-scratch model "
                "(model_name_or_path: scratch) starts from random rows: drop sa_init or set it to none"
            )
        for name in ("truncate_layers", "freeze_embeddings", "freeze_llm", "sid_only_prompts", "sa_init_center"):
            if getattr(self, name):
                raise ConfigError(f"`{name}` acts on a pretrained base model; a from-scratch model "
                                  "(model_name_or_path: scratch) has none: drop it")
        self.check_sid_rows()

    def check_sid_rows(self) -> None:
        """SID-only next-item rows (a scratch model's, or an LLM's with `sid_only_prompts`) need a history cap (the
        rows are cut to it) that leaves room for the stride."""
        if self.max_history is None:
            self.max_history = DEFAULT_SCRATCH_HISTORY
        if self.sequence_stride > self.max_history:
            raise ConfigError(f"`sequence_stride`={self.sequence_stride} exceeds max_history="
                              f"{self.max_history}: each target must keep at least one history item")

    def task_weights(self, scratch: bool) -> dict[str, float]:
        """The task mixture, with the defaults of a pretrained model (DEFAULT_TASKS) or a scratch one."""
        if self.tasks is not None:
            return dict(self.tasks)
        return {"next_item": 1.0} if scratch else dict(DEFAULT_TASKS)

    def sa_init_mode(self) -> str:
        return self.sa_init or "keywords"


@dataclass
class RecSFTConfig(RecTrainingDefaults, SFTConfig):
    """TRL's `SFTConfig` with SID-recommendation defaults (see the module docstring)."""

    max_length: int | None = field(
        default=DEFAULT_MAX_LENGTH, metadata={"help": "Maximum tokenized length; recommendation prompts are short."}
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many validation-loss evaluations without improvement and keep the best "
                  "checkpoint (MiniOneRec/TS-Rec: eval_steps 0.05, patience 3). Needs eval_strategy steps or "
                  "epoch; checkpoints follow the evaluations. 0 or null: off (the eval loss is still logged)."},
    )

    def __post_init__(self) -> None:
        if self.early_stopping_patience == 0:  # a recipe's patience switched off from the command line
            self.early_stopping_patience = None
        if self.early_stopping_patience is not None:
            if self.early_stopping_patience < 1:
                raise ConfigError(f"early_stopping_patience={self.early_stopping_patience}; expected an integer >= 0")
            if str(self.eval_strategy) in ("no", "IntervalStrategy.NO"):
                raise ConfigError("early_stopping_patience needs the validation loss: set eval_strategy to steps "
                                  "(with eval_steps) or epoch")
            # The best checkpoint is kept by the Trainer: saves must land on the evaluations.
            self.load_best_model_at_end = True
            self.metric_for_best_model = self.metric_for_best_model or "eval_loss"
            self.save_strategy, self.save_steps = self.eval_strategy, self.eval_steps or self.save_steps
        super().__post_init__()


TARGET_LABELS = ("liked", "neutral", "disliked", "unrated")


def check_target_weights(weights: dict[str, Any]) -> dict[str, float]:
    """`target_weights` checked: known labels, finite weights >= 0, not all zero."""
    unknown = sorted(set(weights) - set(TARGET_LABELS))
    if unknown:
        raise ConfigError(f"`target_weights` has {unknown}; expected labels among {', '.join(TARGET_LABELS)}")
    out = {}
    for label, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise ConfigError(f"`target_weights.{label}` is {weight!r}; expected a number >= 0")
        out[label] = float(weight)
    if all(out.get(label, 1.0) == 0 for label in TARGET_LABELS):
        raise ConfigError("`target_weights` weighs every target 0: nothing would be learned")
    return out
