"""Config fields a release renamed: a recipe or a flag with the old name still parses, with a warning.

One name per idea: the prompt's history cap is `max_history` in every stage that builds prompts (SFT called
it `max_history_items`), and prepare's cut of the stored histories is `history_cut` (it was `max_history`,
the name of the other idea). A user's recipe written before the rename keeps working: `rlrec.cli` renames
the old field before TrlParser reads it and says so once, naming the file and line or the flag.

An old name is renamed only in a stage that has the new field and lacks the old one, so `max_history` is
prepare's old name for `history_cut` and, in every other stage, the current name of the prompt cap.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from rlrec.utils.errors import UsageError

# old name -> new name (since 0.1.0; the old names go in a later release).
RENAMED_FIELDS: dict[str, str] = {
    "max_history_items": "max_history",
    "max_history": "history_cut",
}
# Renames that hold in the named stages only: `rlrec rewards` took GRPO's rollout settings under other names.
STAGE_RENAMES: dict[str, dict[str, str]] = {
    "rewards": {"top_k": "rollout_top_k", "batch_size": "rollout_batch_size"},
}

logger = logging.getLogger(__name__)


def renames_for(parser: argparse.ArgumentParser, stage: str | None = None) -> dict[str, str]:
    """The renames that apply to this stage: its parser has the new field and not the old one."""
    fields = {action.dest for action in parser._actions}
    candidates = {**RENAMED_FIELDS, **STAGE_RENAMES.get(stage or "", {})}
    return {old: new for old, new in candidates.items() if new in fields and old not in fields}


def rename_recipe_fields(parser: argparse.ArgumentParser, config: dict[str, Any], file: Path,
                         lines: dict[str, int], stage: str | None = None) -> dict[str, Any]:
    """`config` with each old field under its new name (`lines` follows); UsageError when both are set."""
    renames = renames_for(parser, stage)
    out: dict[str, Any] = {}
    for key, value in config.items():
        new = renames.get(key)
        if new is None:
            out[key] = value
            continue
        if new in config:
            raise UsageError(f"{file}: line {lines.get(key, '?')}: `{key}` is the old name of `{new}` (line "
                             f"{lines.get(new, '?')}); keep only `{new}`")
        logger.warning("%s: line %s: field `%s` is now called `%s`; the old name still works but will be removed",
                       file, lines.get(key, "?"), key, new)
        out[new] = value
        lines[new] = lines.get(key, 0)
    return out


def rename_flags(parser: argparse.ArgumentParser, argv: list[str], stage: str) -> list[str]:
    """`argv` with each `--old` (or `--old=value`) flag as `--new`; UsageError when both are given."""
    renames = renames_for(parser, stage)
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    out: list[str] = []
    for arg in argv:
        flag, sep, value = arg.partition("=")
        new = renames.get(flag[2:]) if flag.startswith("--") else None
        if new is None:
            out.append(arg)
            continue
        if f"--{new}" in given:
            raise UsageError(f"{stage}: command line: {flag} is the old name of --{new}; give only --{new}")
        logger.warning("%s: command line: %s is now called --%s; the old name still works but will be removed",
                       stage, flag, new)
        out.append(f"--{new}{sep}{value}")
    return out
