"""The lifecycle every training stage shares: `rlrec sft`, `grpo`, `dpo` and `setrec` each open a `StageRun`.

A stage (1) checks its output folder and finds the checkpoint it resumes (`StageRun.open`: a finished folder is
never replaced unless asked), (2) trains under the Trainer, with valid selection when asked and the folder marked
unfinished until the end (`StageRun.train`), (3) saves an ordinary model folder with what the next stages read,
(4) lets the other processes go and evaluates the saved model on the main one, and (5) writes `manifest.json`
last, so a folder holding one is finished (`StageRun.finish`). What differs between stages is only what they
train and what their manifest adds, which each stage passes in.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
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

    def train(self, trainer: Any, ranking: Any = None) -> tuple[Any, dict[str, Any] | None]:
        """Train (resuming when asked), choosing the checkpoint by `ranking` (a `ValidRanking`) when given; return
        the train result and the selection's manifest record."""
        from rlrec.training.model import gather_zero3_weights_on_save
        from rlrec.training.valid_selection import attach_valid_selection, end_valid_selection

        if ranking is not None:
            attach_valid_selection(trainer, ranking)
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

    def finish(self, trainer: Any, save: Callable[[], str], write_beside: Callable[[], None],
               manifest: dict[str, Any], evaluate: Callable[[str], dict[str, Any] | None] | None = None
               ) -> dict[str, Any]:
        """Save the model (`save` returns how: "full", "merged" or "adapter"), let the main process write what goes
        beside it (tokenizer, SID index, ...), end the distributed run, evaluate the saved model on the main
        process and write the manifest. The caller drops its own references to the model first: the trainer's
        are released here, so the evaluation does not hold the training copy beside the one it reloads."""
        from rlrec.training.model import collect_memory, release_training

        saved_as = save()
        if trainer.accelerator.is_main_process:
            write_beside()
            manifest = {**manifest, "saved_as": saved_as}
        else:
            manifest = {}
        if hasattr(trainer, "ref_model"):
            trainer.ref_model = None
        is_main = release_training(trainer)  # the other ranks are done; what follows is the main process's
        collect_memory()
        if is_main:
            if evaluate is not None:
                report = evaluate(saved_as)
                if report is not None:
                    manifest["eval"] = report
            manifest["seconds"] = round(time.perf_counter() - self.started, 1)
            write_json(self.output_dir / MANIFEST, manifest)
        return manifest
