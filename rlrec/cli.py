"""The `rlrec` command: `rlrec STAGE --config recipes/NAME/STAGE.yaml [--field value ...]`.

Every stage lives in `rlrec/scripts/<stage>.py` and exposes two things, in TRL's style:
`make_parser()` (a `TrlParser` over the stage's config dataclasses) and `main(*configs)`.
The stage module is imported only when it is asked for, so `rlrec --help` stays fast.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import re
import sys
from typing import Any, NoReturn

import rlrec
from rlrec.utils.errors import ConfigError, RlrecError, UsageError
from rlrec.utils.ranges import annotate_help, check_ranges
from rlrec.utils.recipe_file import check_config_fields, read_config_file
from rlrec.utils.renamed_fields import rename_flags, rename_recipe_fields

# Offline first: a hub lookup otherwise costs ~26 s to fail on a machine without network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STAGES: dict[str, tuple[str, str]] = {
    "prepare": ("rlrec.scripts.prepare", "read raw interactions, filter, split into train/valid/test"),
    "sid": ("rlrec.scripts.sid", "embed item texts and quantise them into Semantic IDs"),
    "sft": ("rlrec.scripts.sft", "fine-tune an LLM to write the next item's SID (SA-Init, task mixture)"),
    "grpo": ("rlrec.scripts.grpo", "refine an SFT model with GRPO over constrained beam-search rollouts"),
    "dpo": ("rlrec.scripts.dpo", "refine an SFT model with DPO against its own beam-search negatives"),
    "rewards": ("rlrec.scripts.rewards", "compare rewards on one set of rollouts: mean, group variance, correlation"),
    "evaluate": ("rlrec.scripts.evaluate", "HR@K / NDCG@K with constrained beam search, beside baselines"),
    "export": ("rlrec.scripts.export", "write a Hub-ready model folder (model, SID index, catalog, card) and push it"),
    "recommend": ("rlrec.scripts.recommend", "top-k items after one history, from an exported or trained model"),
    "cache": ("rlrec.scripts.cache", "precompute every user's top-K (build, resumable) or some users' (refresh)"),
    "setrec": ("rlrec.scripts.setrec", "train and evaluate SETRec: order-agnostic set identifiers, one-pass decoding"),
    "demo": ("rlrec.scripts.demo", "run every stage on the embedded MovieLens-100k default"),
}


def _usage() -> str:
    width = max(len(name) for name in STAGES)
    lines = ["usage: rlrec STAGE --config recipes/NAME/STAGE.yaml [--field value ...]", "", "stages:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in STAGES.items()]
    lines += ["", "`rlrec STAGE --help` lists every field of a stage; `rlrec --version` prints the version."]
    return "\n".join(lines)


def run_stage(stage: str, argv: list[str]) -> object:
    """Parse `argv` for `stage` (`parse_stage`) and run the stage."""
    module, configs = parse_stage(stage, argv)
    return module.main(*configs)


def parse_stage(stage: str, argv: list[str]) -> tuple[Any, tuple[Any, ...]]:
    """The stage's module and its configs from `argv` (YAML from `--config`, flags override it).

    Fields a release renamed are read under their new names, with a warning (`rlrec.utils.renamed_fields`).
    Every mistake in the configuration (a missing or unreadable file, YAML that does not parse, an unknown
    field, a value of the wrong type, a bad flag) raises UsageError naming the file and line or the flag,
    before the stage starts: TrlParser would otherwise let a YAML value of the wrong type through as an
    argparse default and the stage would fail later, or argparse would print its usage and exit.
    """
    if stage not in STAGES:
        close = difflib.get_close_matches(stage, STAGES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown stage {stage!r}{hint}; expected one of: {', '.join(STAGES)}")
    argv = _split_config_flag(argv)
    config_path = _config_path(argv)
    # The file and its YAML first: a typo in the path fails at once, not after the stage's imports (seconds).
    recipe = read_config_file(config_path) if config_path is not None else None
    module = importlib.import_module(STAGES[stage][0])
    parser = module.make_parser()
    annotate_help(parser)
    argv = rename_flags(parser, argv, stage)
    if recipe is not None:
        config, file, lines = recipe
        config = rename_recipe_fields(parser, config, file, lines, stage)
        check_config_fields(parser, config, file, lines)
        argv = _apply_recipe(parser, config, argv)
    _check_flags(parser, stage, argv)

    def error(message: str) -> NoReturn:  # argparse's own errors: a bad flag value, a missing value
        raise UsageError(f"{stage}: command line: {message.rstrip('.')}; see `rlrec {stage} --help`")

    parser.prog = f"rlrec {stage}"
    parser.error = error  # type: ignore[method-assign]
    try:
        configs = parser.parse_args_and_config(argv)
    except (ValueError, TypeError) as err:  # TrlParser and the configs' __post_init__ checks
        message = str(err)
        if message.startswith(_UNUSED_ARGS):
            raise UsageError(f"{stage}: unexpected command-line argument(s) {message[len(_UNUSED_ARGS):].strip()}; "
                             f"expected --field value pairs and --config FILE") from err
        where = f" in {config_path}" if config_path else ""
        raise UsageError(f"{stage}: invalid configuration{where}: {message}") from err
    try:
        check_ranges(configs)
    except ConfigError as err:
        where = f" in {config_path}" if config_path else ""
        raise UsageError(f"{stage}: invalid configuration{where}: {err}") from err
    return module, tuple(configs)


# The start of HfArgumentParser's message for command-line words no field takes.
_UNUSED_ARGS = "Some specified arguments are not used by the HfArgumentParser:"


def _split_config_flag(argv: list[str]) -> list[str]:
    """`--config=FILE` as `--config FILE`, the only form TrlParser reads."""
    out: list[str] = []
    for arg in argv:
        if arg.startswith("--config="):
            out += ["--config", arg.split("=", 1)[1]]
        else:
            out.append(arg)
    return out


def _apply_recipe(parser: argparse.ArgumentParser, config: dict[str, object], argv: list[str]) -> list[str]:
    """The recipe's values as the parser's defaults (its `env` into the environment), as TrlParser does with
    `--config`, but from the checked and renamed mapping; returns `argv` without `--config FILE`."""
    env = config.pop("env", None) or {}
    for key, value in env.items():  # type: ignore[attr-defined]
        os.environ[key] = str(value)
    parser.set_defaults_with_config(**config)
    at = argv.index("--config")
    return argv[:at] + argv[at + 2:]


def _config_path(argv: list[str]) -> str | None:
    """The file after `--config` (in `_split_config_flag`'s form), or None."""
    for i, arg in enumerate(argv):
        if arg == "--config":
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise UsageError("--config needs a file: --config recipes/NAME/STAGE.yaml")
            return argv[i + 1]
    return None


def _check_flags(parser: argparse.ArgumentParser, stage: str, argv: list[str]) -> None:
    """Unknown `--flags` fail naming the closest field (argparse would only list them all in its usage)."""
    known = set(parser._option_string_actions) | {"--config"}
    for i, arg in enumerate(argv):
        if not arg.startswith("--") or (i > 0 and argv[i - 1] == "--config"):
            continue
        flag = arg.split("=", 1)[0]
        if flag not in known:
            close = difflib.get_close_matches(flag, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"{stage}: unknown command-line option {flag}{hint}; see `rlrec {stage} --help`")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    if argv[0] in ("-V", "--version"):
        print(f"rlrec {rlrec.__version__}")
        return
    try:
        run_stage(argv[0], argv[1:])
    except (UsageError, RlrecError) as err:
        # One line, whatever the message holds (a library's multi-line text passed through).
        print("rlrec: error: " + re.sub(r"\s*\n\s*", " ", str(err).strip()), file=sys.stderr)
        sys.exit(2)
    finally:
        _close_process_group()


def run_script(stage: str) -> None:
    """A stage file run as a script (`python rlrec/scripts/STAGE.py ...`) as `rlrec STAGE ...`: through the range
    checks, the renamed fields and the one-line errors, instead of around them."""
    main([stage, *sys.argv[1:]])


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
