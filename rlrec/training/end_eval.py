"""The evaluation a training stage runs at its end, on the model it saved (reloaded from disk)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rlrec.training.config import EndEvalArguments


def end_eval_config(eval_args: EndEvalArguments, training_args: Any, output_dir: Path, dataset_dir: str,
                    max_history: int | None):
    """The `rlrec evaluate` config for the saved model, or None; built (and so checked) before training starts."""
    if not eval_args.eval_at_end:
        return None
    from rlrec.evaluation.run import EvaluateConfig

    settings = eval_args.settings(max_history=max_history, seed=training_args.seed)
    return EvaluateConfig(
        model_path=str(output_dir),
        dataset_dir=dataset_dir,
        sid_dir=str(output_dir / "sid"),
        output_dir=str(output_dir / "eval"),
        device="cpu" if training_args.use_cpu else "auto",
        **dataclasses.asdict(settings),
    )


def run_end_eval(config) -> dict[str, Any]:
    """Evaluate the saved model as every later stage will see it: reloaded from its folder, by `rlrec evaluate`'s
    own code (`run_evaluation`)."""
    from rlrec.evaluation.run import run_evaluation

    return run_evaluation(config)
