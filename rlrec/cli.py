"""The `rlrec` command: `rlrec STAGE --config recipes/NAME/STAGE.yaml [--field value ...]`.

Every stage lives in `rlrec/scripts/<stage>.py` and exposes two things, in TRL's style:
`make_parser()` (a `TrlParser` over the stage's config dataclasses) and `main(*configs)`.
The stage module is imported only when it is asked for, so `rlrec --help` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

# Offline first: a hub lookup otherwise costs ~26 s to fail on a machine without network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STAGES: dict[str, tuple[str, str]] = {
    "prepare": ("rlrec.scripts.prepare", "read raw interactions, filter, split into train/valid/test"),
    "sid": ("rlrec.scripts.sid", "embed item texts and quantise them into Semantic IDs"),
    "sft": ("rlrec.scripts.sft", "fine-tune an LLM to write the next item's SID (SA-Init, task mixture)"),
    "grpo": ("rlrec.scripts.grpo", "refine an SFT model with GRPO over constrained beam-search rollouts"),
    "rewards": ("rlrec.scripts.rewards", "compare rewards on one set of rollouts: mean, group variance, correlation"),
    "evaluate": ("rlrec.scripts.evaluate", "HR@K / NDCG@K with constrained beam search, beside baselines"),
    "export": ("rlrec.scripts.export", "write a Hub-ready model folder (model, SID index, catalog, card) and push it"),
    "recommend": ("rlrec.scripts.recommend", "top-k items after one history, from an exported or trained model"),
    "cache": ("rlrec.scripts.cache", "precompute every user's top-K (build, resumable) or some users' (refresh)"),
    "setrec": ("rlrec.scripts.setrec", "train and evaluate SETRec: order-agnostic set identifiers, one-pass decoding"),
    "demo": ("rlrec.scripts.demo", "run every stage on the embedded MovieLens-100k default"),
}


class UsageError(Exception):
    """A mistake in what the user asked for: printed as one clear line, without a traceback."""


def _usage() -> str:
    width = max(len(name) for name in STAGES)
    lines = ["usage: rlrec STAGE --config recipes/NAME/STAGE.yaml [--field value ...]", "", "stages:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in STAGES.items()]
    lines += ["", "`rlrec STAGE --help` lists every field of a stage."]
    return "\n".join(lines)


def run_stage(stage: str, argv: list[str]) -> object:
    """Parse `argv` for `stage` (YAML from `--config`, flags override it) and run the stage."""
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}; expected one of: {', '.join(STAGES)}")
    module = importlib.import_module(STAGES[stage][0])
    parser = module.make_parser()
    try:
        configs = parser.parse_args_and_config(argv)
    except ValueError as err:  # TrlParser reports unknown YAML keys as ValueError
        config_path = _config_path(argv)
        where = f" in {config_path}" if config_path else ""
        raise UsageError(f"{stage}: invalid configuration{where}: {err}") from err
    return module.main(*configs)


def _config_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    from rlrec.utils.errors import RlrecError

    try:
        run_stage(argv[0], argv[1:])
    except (UsageError, RlrecError) as err:
        print(f"rlrec: error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        _close_process_group()


def _close_process_group() -> None:
    """Tear down torch.distributed before the interpreter does.

    Left to interpreter shutdown, a gloo process group (DeepSpeed on CPU) is sometimes destroyed while its
    worker threads still run, and the process aborts with "terminate called without an active exception"
    after the model was saved: the launch then fails although the stage finished.
    """
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
