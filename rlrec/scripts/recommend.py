"""`rlrec recommend`: the top-k items after one history, printed as a table.

    rlrec recommend --model_path runs/ml-100k/export --history '["50", "Star Wars (1977)"]' --k 10

`model_path` is an exported folder or a training output folder (`Recommender.from_pretrained`).
History entries are item ids or titles; entries that name no item are listed under the table (or
fail the command with `on_unknown: error`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

from trl import TrlParser

from rlrec.utils.errors import ConfigError
from rlrec.utils.ranges import AT_LEAST_ONE, Range


@dataclass
class RecommendConfig:
    """Settings of `rlrec recommend`."""

    field_ranges: ClassVar[dict[str, Range]] = {"max_history": AT_LEAST_ONE}  # checked by rlrec/utils/ranges.py

    model_path: str = field(
        default="runs/ml-100k/export",
        metadata={"help": "Exported folder (`rlrec export`) or `rlrec sft` / `rlrec grpo` output folder."},
    )
    history: str = field(
        default="[]",
        metadata={"help": "The user's items, oldest first: a JSON list of item ids or titles "
                  "('[\"50\", \"Star Wars (1977)\"]'), or ids separated by commas."},
    )
    k: int = field(default=10, metadata={"help": "How many items to recommend."})
    candidates: str | None = field(
        default=None,
        metadata={"help": "Rank only these items (new arrivals, a category): a JSON list of item ids or titles, or "
                  "ids separated by commas; None: the whole catalog."},
    )
    num_beams: int | None = field(default=None, metadata={"help": "Beam width; None: the folder's (at least k)."})
    max_history: int | None = field(default=None, metadata={"help": "History cap; None: as in training."})
    exclude_history: bool = field(default=False, metadata={"help": "Leave items of the history out."})
    on_unknown: str = field(default="warn", metadata={"help": "History entries naming no item: `warn` or `error`."})
    dataset_dir: str | None = field(
        default=None, metadata={"help": "Prepared dataset for item titles when the folder has no catalog.jsonl."}
    )
    device: str = field(default="auto", metadata={"help": "`auto`, `cpu` or `cuda`."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: `auto` (as saved), `float32`, `bfloat16`."})
    output_json: bool = field(default=False, metadata={"help": "Print the result as JSON instead of a table."})

    def parsed_history(self) -> list[str]:
        return parse_item_list(self.history, "history")

    def parsed_candidates(self) -> list[str] | None:
        return None if self.candidates is None else parse_item_list(self.candidates, "candidates")


def parse_item_list(text: str, name: str) -> list[str]:
    """A JSON list of item ids or titles, or ids separated by commas."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{name}: invalid JSON list ({err.msg}): {text!r}") from err
        if not all(isinstance(v, str | int) for v in value):
            raise ConfigError(f"{name}: expected a JSON list of item ids or titles (strings)")
        return [str(v) for v in value]
    return [part.strip() for part in text.split(",") if part.strip()]


def make_parser() -> TrlParser:
    return TrlParser((RecommendConfig,))


def format_recommendations(result, width: int = 60) -> str:
    """A plain table: rank, item id, score, title; then the unknown entries and warnings."""
    id_width = max([len("item_id"), *(len(r.item_id) for r in result.items)])
    lines = [f"{'rank':>4}  {'item_id':<{id_width}}  {'score':>9}  title"]
    for rank, item in enumerate(result.items, start=1):
        title = item.title if len(item.title) <= width else item.title[:width - 3] + "..."
        lines.append(f"{rank:>4}  {item.item_id:<{id_width}}  {item.score:>9.4f}  {title}")
    if result.unknown:
        lines.append(f"unknown history entries (not used): {', '.join(map(repr, result.unknown))}")
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def main(config: RecommendConfig):
    from rlrec.inference.recommender import ON_UNKNOWN, Recommender

    if config.on_unknown not in ON_UNKNOWN:
        raise ConfigError(f"on_unknown={config.on_unknown!r}; expected one of {', '.join(ON_UNKNOWN)}")
    if config.k < 1:
        raise ConfigError(f"k={config.k}; expected a positive integer")
    history = config.parsed_history()
    recommender = Recommender.from_pretrained(
        config.model_path, dataset_dir=config.dataset_dir, device=config.device, dtype=config.dtype,
        num_beams=config.num_beams, max_history=config.max_history, on_unknown=config.on_unknown)
    result = recommender.recommend(history, config.k, exclude_history=config.exclude_history,
                                   candidates=config.parsed_candidates())
    print(json.dumps(result.to_json(), ensure_ascii=False, indent=2) if config.output_json
          else format_recommendations(result), flush=True)
    return result


if __name__ == "__main__":  # `python rlrec/scripts/recommend.py ...` runs as `rlrec recommend ...`: the same checks
    from rlrec.cli import run_script

    run_script("recommend")
