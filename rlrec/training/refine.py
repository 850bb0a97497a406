"""What every stage that refines an SFT model (`rlrec grpo`, `rlrec dpo`) does once training ends.

Both save an ordinary model folder that the next stages read unchanged: the weights (LoRA merged), the
tokenizer, the SID index in `sid/`, `inference_config.json` (how to prompt and decode it), then run the
end-of-training evaluation and write `manifest.json` last, so a folder holding one is finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rlrec
from rlrec.ranking.spec import RankingSpec
from rlrec.sid.index import SIDIndex
from rlrec.utils.io import write_json

MANIFEST = "manifest.json"


def refinement_manifest(stage: str, trainer: Any, result: Any, model_path: Path, dataset_dir: str, sid_dir: str,
                        max_history: int | None, selection: Any, config: dict[str, Any],
                        **extra: Any) -> dict[str, Any]:
    """The manifest fields a refinement stage shares; `extra` adds the stage's own (rewards, pairs, logs)."""
    return {
        "stage": stage,
        "rlrec_version": rlrec.__version__,
        "base_model": str(model_path),
        "dataset_dir": dataset_dir,
        "sid_dir": sid_dir,
        "world_size": trainer.accelerator.num_processes,
        "distributed_type": str(trainer.accelerator.distributed_type.value),
        "global_step": trainer.state.global_step,
        "prompt_max_history": max_history,
        "train": {key: value for key, value in result.metrics.items() if isinstance(value, int | float)},
        **extra,
        "valid_selection": selection.summary() if selection is not None else None,
        "config": config,
    }


def finish_refinement(trainer: Any, output_dir: Path, tokenizer: Any, index: SIDIndex, spec: RankingSpec,
                      rebuild: Callable[[], Any], manifest: dict[str, Any], eval_config: Any,
                      started: float) -> dict[str, Any]:
    """Save the model folder, end the distributed run, evaluate on the main process and write the manifest.

    The caller drops its own references to the model before calling: the trainer's are released here, so the
    evaluation does not hold the training copy (and a reference model) beside the one it reloads.
    """
    from rlrec.training.end_eval import run_end_eval
    from rlrec.training.model import collect_memory, release_training, save_final_model

    saved_as = save_final_model(trainer, output_dir, merge_lora=True, rebuild=rebuild)
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir)
        index.save(output_dir / "sid")
        spec.save(output_dir)
        manifest = {**manifest, "saved_as": saved_as}
    else:
        manifest = {}
    if hasattr(trainer, "ref_model"):
        trainer.ref_model = None
    is_main = release_training(trainer)  # the other ranks are done; the evaluation below is the main process's
    collect_memory()
    if is_main:
        if eval_config is not None:
            manifest["eval"] = run_end_eval(eval_config)
        manifest["seconds"] = round(time.perf_counter() - started, 1)
        write_json(output_dir / MANIFEST, manifest)
    return manifest
