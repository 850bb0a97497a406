"""What `rlrec sft` builds before it trains: inputs, keywords, the model with its SID rows, the task mixture and
the trainer (`build_trainer`), for an LLM (chat rows, or SID-only rows with `sid_only_prompts`) or a from-scratch
SID model. `rlrec/scripts/sft.py` runs the stage around it; `benchmarks/sft_throughput.py` times this same trainer.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from trl import ModelConfig

from rlrec.data.schema import PreparedDataset
from rlrec.models.scratch import SCRATCH, ScratchModelArguments, is_scratch
from rlrec.models.sid_vocab import BOS
from rlrec.models.truncate import truncate_layers
from rlrec.sid.index import SIDIndex, check_index_matches
from rlrec.training.config import RecSFTConfig, SFTScriptArguments
from rlrec.training.valid_selection import ValidSelectionArguments, ranks_valid
from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)


def load_inputs(script_args: SFTScriptArguments) -> tuple[PreparedDataset, SIDIndex]:
    """The prepared dataset and the SID index, checked against each other."""
    dataset = PreparedDataset.load(script_args.dataset_dir)
    index = SIDIndex.load(script_args.sid_dir)
    check_index_matches(index, dataset, script_args.sid_dir, script_args.dataset_dir)
    return dataset, index


def ensure_keywords(index: SIDIndex, dataset: PreparedDataset, script_args: SFTScriptArguments) -> dict[str, Any]:
    """Fill `index.keywords` (SA-Init and TS-Align read them) and `index.descriptions` (TS-Align); return the
    manifest's `keywords` record (source, coverage per SID level).

    `keyword_source: file` reads `keyword_file` and replaces what the index carried (the recipe named that file).
    The other sources keep keywords the index already carries and only add missing descriptions.
    """
    from rlrec.init.keyword_file import index_keyword_file, keyword_coverage
    from rlrec.init.keywords import index_descriptions, index_keywords
    from rlrec.models.loading import cache_root

    source = script_args.keyword_source
    start = time.perf_counter()
    if source == "file":
        if index.keywords:
            logger.info("keyword_file %s replaces the %d keyword lists the SID index carried",
                        script_args.keyword_file, len(index.keywords))
        report = index_keyword_file(index, script_args.keyword_file, strict=script_args.keyword_file_strict)
    else:
        if source == "teacher":
            texts = {item_id: item.title or item.text for item_id, item in dataset.items.items()}
        else:
            texts = {item_id: item.text for item_id, item in dataset.items.items()}
        cache_path = cache_root() / "keywords" / "teacher.json"
        kept = bool(index.keywords)
        if kept:
            index_descriptions(index, texts, source=source, teacher_model=script_args.teacher_model,
                               cache_path=cache_path)
        else:
            index_keywords(index, texts, source=source, top_k=script_args.keyword_top_k,
                           teacher_model=script_args.teacher_model, cache_path=cache_path)
        report = {"source": "index" if kept else source, "coverage": keyword_coverage(index, index.keywords),
                  "descriptions": len(index.descriptions)}
    report["seconds"] = round(time.perf_counter() - start, 2)
    logger.info("keywords for %d SID tokens, %d descriptions (%s) in %.1f s", len(index.keywords),
                len(index.descriptions), report["source"], report["seconds"])
    return report


def build_model(script_args: SFTScriptArguments, model_args: ModelConfig, index: SIDIndex):
    """Base model (cut to `truncate_layers`) + tokenizer with the SID tokens added and initialised; returns them,
    the SID ids, the SA-Init report and what the cut kept (None without one)."""
    from rlrec.init.sa_init import init_sid_embeddings
    from rlrec.models.loading import load_base_model

    model, tokenizer = load_base_model(model_args.model_name_or_path, torch_dtype=model_args.dtype or "auto",
                                       device=None, attn_implementation=model_args.attn_implementation)
    truncated = None
    if script_args.truncate_layers is not None:
        truncated = truncate_layers(model, script_args.truncate_layers)
        logger.info("base model cut to its first %d of %d decoder layers", truncated["kept_layers"],
                    truncated["of_layers"])
    start = time.perf_counter()
    sid_ids, report = init_sid_embeddings(
        model, tokenizer, index, mode=script_args.sa_init_mode(), levels=script_args.sa_init_levels,
        layer=script_args.sa_init_layer, match_norm=script_args.sa_init_match_norm,
        center=script_args.sa_init_center,
    )
    report["seconds"] = round(time.perf_counter() - start, 2)
    model.train()
    return model, tokenizer, sid_ids, report, truncated


def rebuild_base(model_args: ModelConfig, index: SIDIndex, truncate: int | None = None):
    """A fresh base model (cut as for training) with the SID rows added (their values come from the trained
    state dict)."""
    from rlrec.init.vocab import add_sid_tokens
    from rlrec.models.loading import load_base_model

    model, tokenizer = load_base_model(model_args.model_name_or_path, torch_dtype=model_args.dtype or "auto",
                                       device="cpu")
    if truncate is not None:
        truncate_layers(model, truncate)
    add_sid_tokens(tokenizer, model, index.vocabulary())
    return model


def build_train_dataset(script_args: SFTScriptArguments, training_args: RecSFTConfig, dataset: PreparedDataset,
                        index: SIDIndex):
    from rlrec.tasks import TaskContext, build_mixture, mixture_summary

    context = TaskContext.build(dataset, index, keyword_top_k=script_args.keyword_top_k,
                                max_history=script_args.max_history)
    train = build_mixture(context, script_args.task_weights(scratch=False),
                          num_examples=script_args.num_train_examples, seed=training_args.seed)
    return train, mixture_summary(train)


def wants_eval_loss(training_args: RecSFTConfig) -> bool:
    """Whether the run measures a validation loss: evaluation is on and is not valid ranking."""
    return training_args.eval_strategy != "no" and not ranks_valid(training_args)


def build_eval_dataset(script_args: SFTScriptArguments, training_args: RecSFTConfig, dataset: PreparedDataset,
                       index: SIDIndex):
    """The validation-loss set (MiniOneRec's and TS-Rec's early stopping): the valid split's next-item examples
    through the same task mix as training (the tasks that read no split render as they do for training)."""
    from rlrec.tasks import TaskContext, build_mixture

    held_out = dataclasses.replace(dataset, train=list(dataset.valid))
    context = TaskContext.build(held_out, index, keyword_top_k=script_args.keyword_top_k,
                                max_history=script_args.max_history)
    return build_mixture(context, script_args.task_weights(scratch=False),
                         num_examples=script_args.num_eval_examples, seed=training_args.seed + 1)


@dataclasses.dataclass
class SFTSetup:
    """What `build_trainer` made: the trainer and the pieces the stage writes next to the model."""

    trainer: Any
    tokenizer: Any
    index: SIDIndex
    sid_ids: list[int]
    sa_init_report: dict[str, Any]
    task_summary: dict[str, int]
    dataset: PreparedDataset
    keywords_report: dict[str, Any] | None = None  # source and coverage of the SID tokens' keywords
    truncated: dict[str, int] | None = None  # `truncate_layers`: the decoder layers kept, of how many


def sid_row_datasets(script_args: SFTScriptArguments, training_args: RecSFTConfig, dataset: PreparedDataset,
                     index: SIDIndex, token_ids: dict[str, int], start_token: str = BOS):
    """The SID-only next-item rows of a scratch model or a `sid_only_prompts` LLM (`sid_sequence_rows`, a seeded
    sample of `num_train_examples` of them when set) and, when the run evaluates a loss, the valid users' next
    items, one target each, as a Dataset (None otherwise)."""
    import random

    from datasets import Dataset

    from rlrec.tasks.sid_sequences import sid_sequence_rows

    rows = sid_sequence_rows(dataset.train, index, token_ids, script_args.max_history,
                             script_args.sequence_stride, start_token,
                             target_weight=script_args.target_weight(dataset.feedback()))
    if script_args.num_train_examples is not None and script_args.num_train_examples < len(rows):
        rows = random.Random(training_args.seed).sample(rows, script_args.num_train_examples)
    if not wants_eval_loss(training_args):
        return rows, None
    eval_rows = sid_sequence_rows(dataset.valid, index, token_ids, script_args.max_history, 1, start_token)
    if script_args.num_eval_examples is not None and script_args.num_eval_examples < len(eval_rows):
        eval_rows = random.Random(training_args.seed + 1).sample(eval_rows, script_args.num_eval_examples)
    return rows, Dataset.from_list(eval_rows)


def build_scratch_trainer(script_args: SFTScriptArguments, training_args: RecSFTConfig, model_args: ModelConfig,
                          scratch_args: ScratchModelArguments, dataset: PreparedDataset, index: SIDIndex) -> SFTSetup:
    """A from-scratch SID model (`rlrec.models.scratch`) and its next-item examples as token ids, trained with
    the plain-loss `SFTTrainer` (TRL's fused LM head only costs time at this size)."""
    from datasets import Dataset

    from rlrec.models.scratch import build_scratch_model, scratch_report, sid_tokenizer
    from rlrec.training.plain_loss import PlainLossSFTTrainer

    script_args.settle(scratch=True)
    if model_args.use_peft:
        raise ConfigError("use_peft: LoRA adapts a pretrained model, but a from-scratch model (model_name_or_path: "
                          "scratch) trains every weight; drop use_peft")
    if model_args.model_name_or_path == SCRATCH:
        tokenizer = sid_tokenizer(index.vocabulary())
        model = build_scratch_model(tokenizer, scratch_args, seed=training_args.seed,
                                    attn_implementation=model_args.attn_implementation)
    else:  # a saved scratch model: continue training it
        from rlrec.models.checkpoint import load_checkpoint
        from rlrec.ranking.sid import check_index_matches_tokenizer

        model, tokenizer = load_checkpoint(model_args.model_name_or_path, device="cpu", dtype="float32")
        check_index_matches_tokenizer(index, tokenizer, model)
        if model_args.attn_implementation is not None:  # the recipe's, as for a new model
            model.set_attn_implementation(model_args.attn_implementation)
        model.train()
    rows, eval_dataset = sid_row_datasets(script_args, training_args, dataset, index, tokenizer.get_vocab())
    longest = max(len(row["input_ids"]) for row in rows)
    if longest > scratch_args.scratch_max_positions:
        raise ConfigError(f"examples run to {longest} tokens but scratch_max_positions is "
                          f"{scratch_args.scratch_max_positions}; raise it or lower max_history")
    trainer = PlainLossSFTTrainer(model=model, args=training_args, train_dataset=Dataset.from_list(rows),
                                  eval_dataset=eval_dataset, processing_class=tokenizer)
    sid_ids = tokenizer.convert_tokens_to_ids(index.vocabulary())
    logger.info("from-scratch SID model: %s; %d examples (stride %d)", scratch_report(model),
                len(rows), script_args.sequence_stride)
    return SFTSetup(trainer, tokenizer, index, sid_ids, scratch_report(model), {"next_item": len(rows)},
                    dataset)


def build_sid_only_trainer(script_args: SFTScriptArguments, training_args: RecSFTConfig, model_args: ModelConfig,
                           model: Any, tokenizer: Any, dataset: PreparedDataset, index: SIDIndex):
    """A pretrained LLM taught next-item prediction on SID-only rows (start token, history SIDs, `sequence_stride`
    targets; `sid_sequence_rows`), the other tasks of the mixture as chat rows beside them (each task's weight
    is its share of the next-item row count), all as token ids for the plain-loss trainer. The tokenizer is
    marked so that every later stage asks the model the same way."""
    import random

    from datasets import Dataset

    from rlrec.models.sid_vocab import mark_sid_only_prompts, sid_prompt_start
    from rlrec.tasks import TaskContext, build_mixture
    from rlrec.tasks.tokenized import chat_token_rows
    from rlrec.training.model import lora_config
    from rlrec.training.plain_loss import PlainLossSFTTrainer

    script_args.settle(scratch=False)
    mark_sid_only_prompts(tokenizer)
    rows, eval_dataset = sid_row_datasets(script_args, training_args, dataset, index, tokenizer.get_vocab(),
                                          start_token=sid_prompt_start(tokenizer))
    summary = {"next_item": len(rows)}
    weights = script_args.task_weights(scratch=False)
    counts = {task: round(weight / weights.get("next_item", 1.0) * len(rows))
              for task, weight in weights.items() if task != "next_item"}
    counts = {task: count for task, count in counts.items() if count}
    if counts:
        context = TaskContext.build(dataset, index, keyword_top_k=script_args.keyword_top_k,
                                    max_history=script_args.max_history)
        rows += chat_token_rows(tokenizer, build_mixture(context, counts, seed=training_args.seed))
        summary.update(counts)
    random.Random(training_args.seed).shuffle(rows)
    trainer = PlainLossSFTTrainer(model=model, args=training_args, train_dataset=Dataset.from_list(rows),
                                  eval_dataset=eval_dataset, processing_class=tokenizer,
                                  peft_config=lora_config(model_args))
    return trainer, summary


def build_trainer(script_args: SFTScriptArguments, training_args: RecSFTConfig, model_args: ModelConfig,
                  scratch_args: ScratchModelArguments | None = None,
                  valid_args: ValidSelectionArguments | None = None) -> SFTSetup:
    """The `SFTTrainer` of the stage: inputs checked, keywords, SA-Init model, task mixture, SID rows trainable
    (or, for `model_name_or_path: scratch`, a from-scratch SID model: `build_scratch_trainer`).

    `benchmarks/sft_throughput.py` times this same trainer, so what it measures is what `rlrec sft` runs.
    """
    from rlrec.training.model import lora_config, train_sid_rows
    from rlrec.training.sft_trainer import RecSFTTrainer

    if script_args.freeze_llm and model_args.use_peft:
        raise ConfigError("freeze_llm trains only the SID rows and use_peft adds LoRA adapters; choose one")
    if script_args.freeze_embeddings and model_args.use_peft:
        raise ConfigError("freeze_embeddings trains every layer and use_peft trains LoRA adapters; choose one")
    if training_args.weight_decay and script_args.freeze_embeddings:
        raise ConfigError(f"weight_decay={training_args.weight_decay} would also shrink the frozen embedding rows "
                          "(AdamW decays a weight whatever its gradient); set weight_decay: 0 with freeze_embeddings")
    dataset, index = load_inputs(script_args)
    if script_args.target_weights is not None and not (is_scratch(model_args.model_name_or_path)
                                                       or script_args.sid_only_prompts):
        raise ConfigError("`target_weights` weighs the SID next-item rows of a scratch model or of sid_only_prompts; "
                          "chat-prompt SFT has none: set sid_only_prompts: true or drop target_weights")
    if valid_args is not None:
        dataset.train = valid_args.training_examples(dataset.train)
    if is_scratch(model_args.model_name_or_path):
        return build_scratch_trainer(script_args, training_args, model_args, scratch_args or ScratchModelArguments(),
                                     dataset, index)
    with training_args.main_process_first(desc="keywords"):
        keywords_report = ensure_keywords(index, dataset, script_args)
    model, tokenizer, sid_ids, sa_report, truncated = build_model(script_args, model_args, index)
    if script_args.sid_only_prompts:
        trainer, summary = build_sid_only_trainer(script_args, training_args, model_args, model, tokenizer,
                                                  dataset, index)
    else:
        train_dataset, summary = build_train_dataset(script_args, training_args, dataset, index)
        eval_dataset = None
        if wants_eval_loss(training_args):
            eval_dataset = build_eval_dataset(script_args, training_args, dataset, index).remove_columns(["task"])
        trainer = RecSFTTrainer(
            model=model,
            args=training_args,
            train_dataset=train_dataset.remove_columns(["task"]),
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=lora_config(model_args),
        )
    logger.info("task mixture: %s", summary)
    if script_args.freeze_llm:
        for parameter in trainer.model.parameters():
            parameter.requires_grad_(False)
    if model_args.use_peft or script_args.freeze_llm or script_args.freeze_embeddings:
        if training_args.weight_decay:
            logger.warning("weight_decay=%s with frozen weights also decays the frozen embedding rows; set it to 0",
                           training_args.weight_decay)
        train_sid_rows(trainer.model, sid_ids)
    return SFTSetup(trainer, tokenizer, index, sid_ids, sa_report, summary, dataset, keywords_report, truncated)
