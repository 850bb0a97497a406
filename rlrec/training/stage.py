"""The lifecycle every training stage shares: `rlrec sft`, `grpo`, `dpo` and `setrec` each open a `StageRun`.

A stage (1) checks its output folder and finds the checkpoint it resumes (`StageRun.open`: a finished folder is
never replaced unless asked), (2) trains under the Trainer, with valid selection when asked and the folder marked
unfinished until the end (`StageRun.train`), (3) saves an ordinary model folder with what the next stages read,
(4) lets the other processes go (`StageRun.end_training`) and evaluates the saved model on the main one, and (5)
writes `manifest.json` last, so a folder holding one is finished (`StageRun.write_manifest`). Steps 3 to 5 are
written out in each stage's own `main`, in that order, so what a stage writes reads top to bottom there.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlrec
from rlrec.utils.io import write_json
from rlrec.utils.output_dirs import MANIFEST


@dataclass
class StageRun:
    """One run of a training stage: its output folder, the checkpoint it resumes, its clock and its arguments."""

    stage: str
    output_dir: Path
    resume: str | None
    arguments: dict[str, Any]  # the parsed argument groups by name, recorded under the manifest's `config`
    started: float  # the stage's clock, for the manifest's `seconds`

    @classmethod
    def open(cls, stage: str, training_args: Any, arguments: dict[str, Any]) -> StageRun:
        """Check (or, asked to, clear) the output folder and resolve `resume_from_checkpoint`."""
        from rlrec.utils.output_dirs import prepare_training_output

        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        started = time.perf_counter()
        resume = prepare_training_output(training_args, stage)
        return cls(stage, Path(training_args.output_dir), resume, arguments, started)

    def train(self, trainer: Any, ranking: Any = None, checkpoints: Any = None) -> tuple[Any, dict[str, Any] | None]:
        """Train (resuming when asked), choosing the checkpoint by `ranking` (a `ValidRanking`) when given, on
        TrainingArguments `settle_valid_selection` settled (it returned `checkpoints`); return the train result and
        the selection's manifest record."""
        from rlrec.training.model import gather_zero3_weights_on_save
        from rlrec.training.valid_selection import attach_valid_selection, end_valid_selection

        if ranking is not None:
            attach_valid_selection(trainer, ranking, checkpoints)
        if trainer.accelerator.is_main_process:
            (self.output_dir / MANIFEST).unlink(missing_ok=True)  # unfinished until the new one lands
        gather_zero3_weights_on_save(trainer)
        result = trainer.train(resume_from_checkpoint=self.resume)
        return result, end_valid_selection(trainer) if ranking is not None else None

    def manifest(self, trainer: Any, result: Any, base_model: str, dataset_dir: str, **fields: Any) -> dict[str, Any]:
        """The fields every stage's manifest starts with (`result`: what `train` returned); `fields` adds the
        stage's own, then `config` closes it."""
        return {
            "stage": self.stage,
            "rlrec_version": rlrec.__version__,
            "base_model": base_model,
            "dataset_dir": str(dataset_dir),
            "world_size": trainer.accelerator.num_processes,
            "distributed_type": str(trainer.accelerator.distributed_type.value),
            "global_step": trainer.state.global_step,
            "resumed_from": self.resume,
            "train": {key: value for key, value in result.metrics.items() if isinstance(value, int | float)},
            **fields,
            "config": self.config(),
        }

    def config(self) -> dict[str, Any]:
        return {name: args.to_dict() if hasattr(args, "to_dict") else dataclasses.asdict(args)
                for name, args in self.arguments.items()}

    def end_training(self, trainer: Any) -> bool:
        """After the model is saved: end the distributed run (the other processes exit), free the training copy of
        the model and return whether this is the main process, which alone evaluates and writes the manifest.
        The caller drops its own references to the model first, so the evaluation does not hold the training
        copy beside the one it reloads."""
        from rlrec.training.model import collect_memory, release_training

        if hasattr(trainer, "ref_model"):
            trainer.ref_model = None
        is_main = release_training(trainer)
        collect_memory()
        return is_main

    def write_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The stage's last write (main process): `manifest.json` with the stage's time, which marks the folder
        finished."""
        manifest = {**manifest, "seconds": round(time.perf_counter() - self.started, 1)}
        write_json(self.output_dir / MANIFEST, manifest)
        return manifest
