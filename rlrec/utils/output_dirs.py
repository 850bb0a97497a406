"""Where a stage may write: never over a finished run unless asked, and resume only from a real checkpoint.

Every stage calls `check_output_dir` before it does any work, so a typo in `output_dir` cannot replace a
model that took hours, and the refusal comes in the first second rather than after training. Training
stages (`sft`, `grpo`, `setrec`) keep `checkpoint-N` folders in their output folder; `resolve_resume`
turns `--resume_from_checkpoint last` into the newest of them and refuses a path that holds no checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from rlrec.utils.errors import ConfigError

MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.json"
RESUME_LAST = ("last", "latest", "true")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(folder: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders of a training output folder, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def check_output_dir(path: str | os.PathLike, *, overwrite: bool, stage: str, resuming: bool = False) -> None:
    """Refuse to write into a folder that already holds something, unless `overwrite` (or `resuming`).

    With `overwrite` nothing is deleted here: the atomic writers replace the folder when the new one is
    complete, and training stages call `clear_output_dir` (only on the main process).
    """
    folder = Path(path)
    if overwrite or resuming or not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"{stage}: output_dir {folder} is a file; expected a folder (or a path that does not exist)")
    if not any(folder.iterdir()):
        return
    if (folder / MANIFEST).is_file():
        what = "holds a finished run (manifest.json)"
    elif found := checkpoints(folder):
        what = (f"holds an unfinished run ({found[-1].name}); continue it with "
                "--resume_from_checkpoint last, or")
    else:
        what = "is not empty"
    raise ConfigError(f"{stage}: output_dir {folder} {what}; pass --overwrite_output_dir true to replace it, "
                      "or choose another output_dir")


def clear_output_dir(path: str | os.PathLike) -> None:
    """Remove what an earlier run left in `path` (checkpoints, manifest, model) before a fresh training run."""
    folder = Path(path)
    if folder.is_dir():
        shutil.rmtree(folder)


def resolve_resume(value: str | bool | None, output_dir: str | os.PathLike, stage: str) -> str | None:
    """The checkpoint folder to resume from: `last` (or `true`) is the newest complete `checkpoint-N`.

    A checkpoint is complete when it holds a whole `trainer_state.json` (the trainer writes it after the
    weights, optimizer and RNG states) and the optimizer's state; a run killed while saving leaves an incomplete
    newest one, and valid selection under `save_strategy: no` leaves weights-only ones: `last` passes over both.
    A path must be a checkpoint folder; anything else is a clear error before the model loads, rather than a
    traceback from inside the trainer.
    """
    if value is None or value is False or str(value).strip().lower() in ("", "false", "none", "no"):
        return None
    if value is True or str(value).strip().lower() in RESUME_LAST:
        found = [c for c in checkpoints(output_dir) if _parses(c / TRAINER_STATE) and _has_optimizer(c)]
        if not found:
            raise ConfigError(f"{stage}: resume_from_checkpoint={value}: {output_dir} holds no checkpoint-N folder "
                              "to resume from (set save_strategy: steps and save_steps in the first run)")
        return str(found[-1])
    folder = Path(str(value))
    if not folder.is_dir():
        raise ConfigError(f"{stage}: resume_from_checkpoint={value}: no such folder; expected a checkpoint-N "
                          f"folder, or `last` for the newest one in {output_dir}")
    if not (folder / TRAINER_STATE).is_file():
        raise ConfigError(f"{stage}: resume_from_checkpoint={value}: {folder} is not a checkpoint "
                          "(no trainer_state.json); expected a checkpoint-N folder written by this stage")
    return str(folder)


def _parses(path: Path) -> bool:
    """Whether `path` holds whole JSON: a run killed while the trainer wrote it leaves it empty or cut short."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def _has_optimizer(checkpoint: Path) -> bool:
    """Whether a checkpoint can continue training: the optimizer's state (`optimizer.pt`, or DeepSpeed's
    `global_step*` folder) is there, not the weights alone."""
    return (checkpoint / "optimizer.pt").is_file() or any(checkpoint.glob("global_step*"))


def prepare_training_output(training_args, stage: str) -> str | None:
    """Check (and on `overwrite_output_dir`, clear) a trainer's output folder; return the checkpoint to resume.

    `training_args` is a `TrainingArguments` with rlrec's `overwrite_output_dir` field. Every process checks;
    only the main one deletes, and the others wait for it, so no rank sees a half-deleted folder.
    """
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir, stage)
    overwrite = bool(getattr(training_args, "overwrite_output_dir", False))
    if resume is not None and overwrite:
        raise ConfigError(f"{stage}: resume_from_checkpoint and overwrite_output_dir together would delete the "
                          "checkpoint being resumed; choose one")
    check_output_dir(training_args.output_dir, overwrite=overwrite, stage=stage, resuming=resume is not None)
    if overwrite:
        with training_args.main_process_first(desc=f"{stage}: clear output_dir"):
            if training_args.process_index == 0:
                clear_output_dir(training_args.output_dir)
    training_args.resume_from_checkpoint = resume
    return resume
