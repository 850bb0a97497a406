"""`rlrec rewards`: compare reward designs on the same rollouts, without training.

    rlrec rewards --config recipes/ml-100k/rewards.yaml [--rewards '["exact_match", "ranking"]']

Generates the GRPO groups of a checkpoint once (constrained beam search or sampling, as `rlrec grpo`
would), saves them to `rollouts.jsonl`, and scores them with every reward of the list; or re-scores
saved rollouts (`rollouts_file`) with another list. For each reward it reports what decides whether
GRPO can learn from it:

- `mean`: the average reward;
- `group_std`: the mean within-group standard deviation (GRPO's advantage is reward minus group mean,
  scaled by this std, so a reward flat within groups teaches nothing);
- `zero_variance_groups`: the share of groups where every candidate scores the same;
- `invalid`: completions the reward could not score (given the penalty);

and the Pearson correlation between every pair of rewards over all candidates (two rewards that
correlate at 0.99 are one reward). A table is printed; `report.json` holds it all.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from trl import TrlParser

import rlrec
from rlrec.data.schema import PreparedDataset
from rlrec.sid.index import SIDIndex
from rlrec.utils.defaults import DEFAULT_ROLLOUT_BATCH_SIZE, DEFAULT_SEED
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import atomic_output_dir, read_jsonl, write_json, write_jsonl
from rlrec.utils.output_dirs import check_output_dir
from rlrec.utils.ranges import AT_LEAST_ONE, NON_NEGATIVE, Range
from rlrec.utils.stage_fields import ModelDataArguments

logger = logging.getLogger(__name__)

ROLLOUTS_FILE = "rollouts.jsonl"


@dataclass
class RewardsConfig(ModelDataArguments):
    """Which rollouts to score (generated from a checkpoint, or saved ones) and with which rewards."""

    field_ranges: ClassVar[dict[str, Range]] = {"max_history": AT_LEAST_ONE, "rollout_batch_size": AT_LEAST_ONE,
                                                "add_rated": NON_NEGATIVE}

    output_dir: str = field(default="runs/ml-100k/rewards", metadata={"help": "Receives rollouts.jsonl + report."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an output_dir that already holds something (refused otherwise)."}
    )
    rewards: list[Any] | str | None = field(
        default=None,
        metadata={"help": "Rewards to compare, as in `rlrec grpo` (names, {name, **params}, package.module:fn)."},
    )
    rollouts_file: str | None = field(
        default=None, metadata={"help": "Score these saved rollouts (a rollouts.jsonl) instead of generating."}
    )
    model_path: str | None = field(default=None, metadata={"help": "Checkpoint that generates the rollouts."})
    split: str = field(default="valid", metadata={"help": "Split whose examples become prompts."})
    max_examples: int | None = field(default=200, metadata={"help": "Prompts (a fixed random subset); None: all."})
    num_generations: int = field(default=8, metadata={"help": "Candidates per prompt (the GRPO group)."})
    rollout: str = field(default="beam", metadata={"help": "beam (MiniOneRec) or sample."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (rollout: sample)."})
    rollout_top_k: int | None = field(default=None, metadata={"help": "Top-k within the trie (rollout: sample)."})
    rollout_batch_size: int = field(default=DEFAULT_ROLLOUT_BATCH_SIZE,
                                    metadata={"help": "Prompts decoded together."})
    add_target: bool = field(
        default=False,
        metadata={"help": "Put the target into every group that missed it (as `rlrec grpo --rollout_add_target`)."},
    )
    add_rated: int = field(
        default=0,
        metadata={"help": "Put the items of the user's next N rated train events after the target into every group "
                  "(as `rlrec grpo --rollout_add_rated`); needs `split: train` and the `rating` reward."},
    )
    max_history: int | None = field(
        default=None, metadata={"help": "History items per prompt; None: what the model was trained with."}
    )
    invalid_penalty: float = field(default=0.0, metadata={"help": "Reward of a completion that is not an item."})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda."})
    seed: int = field(default=DEFAULT_SEED, metadata={"help": "Seed of the prompt subset and of sampling."})

    def __post_init__(self) -> None:
        from rlrec.rewards.registry import DEFAULT_REWARDS, parse_rewards_field

        self.rewards = parse_rewards_field(self.rewards) or list(DEFAULT_REWARDS) + ["token_semantic"]
        if self.rollouts_file is None and self.model_path is None:
            raise ConfigError("rewards: set `model_path` (to generate rollouts) or `rollouts_file` (to re-score)")
        if self.rollout not in ("beam", "sample"):
            raise ConfigError(f"`rollout` must be 'beam' or 'sample', got {self.rollout!r}")
        if self.num_generations < 2:
            raise ConfigError(f"`num_generations` must be at least 2, got {self.num_generations}")
        if self.add_rated and self.split != "train":
            raise ConfigError(f"`add_rated` looks up the user's train events after the prompt's target, which a "
                              f"{self.split} target has none of; set `split: train`")

    def resolved_sid_dir(self) -> Path:
        if self.sid_dir:
            return Path(self.sid_dir)
        if self.model_path:
            return Path(self.model_path) / "sid"
        raise ConfigError("rewards: set `sid_dir` (the SID index the rollouts' items come from)")


def make_parser() -> TrlParser:
    return TrlParser((RewardsConfig,))


def generate_groups(config: RewardsConfig, dataset: PreparedDataset, index: SIDIndex,
                    recipe: Any = None) -> list[dict[str, Any]]:
    """Decode the groups of `config.max_examples` prompts of `config.split` with the checkpoint.

    The prompts are GRPO's rows (`prompt_rows`: `rlrec grpo`'s prompter and history cut) and the candidates come
    from GRPO's rollout (`SIDRollout.generate`, `pack`), so these are the groups `rlrec grpo` would score. A group
    is its prompt row plus `candidates`: per candidate the rollout's fields (item id, beam rank), its text as TRL
    decodes it, its SID token ids and its summed log-probability.
    """
    from tqdm.auto import tqdm

    from rlrec.evaluation.run import select_examples, trained_max_history
    from rlrec.generation.rollout import SIDRollout
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.tasks.reward_batch import USER_ID, completion_texts, prompt_rows, rollout_fields
    from rlrec.utils.devices import resolve_device

    examples = [ex for ex in dataset.split(config.split) if ex.target in index]
    examples = select_examples(examples, config.max_examples, config.seed)
    if not examples:
        raise DataError(f"{config.dataset_dir}: no {config.split} example has a target in the SID index")
    max_history = config.max_history or trained_max_history(config.model_path)
    model, tokenizer = load_checkpoint(config.model_path, device=resolve_device(config.device))
    model.eval()
    size = config.num_generations
    rated_items = None
    if config.add_rated:
        from rlrec.rewards.feedback import rated_items_lookup

        rated_items = rated_items_lookup(config.add_rated, recipe, dataset.train, dataset.feedback(), size,
                                         config.add_target)
    rollout = SIDRollout(index, tokenizer, size, mode=config.rollout, top_k=config.rollout_top_k,
                         batch_size=config.rollout_batch_size, seed=config.seed, add_target=config.add_target,
                         rated_items=rated_items)
    rows = prompt_rows(examples, index, tokenizer, max_history)
    groups = []
    bar = tqdm(total=len(rows), desc="rollouts", unit="prompt")
    for start in range(0, len(rows), config.rollout_batch_size):
        chunk = rows[start: start + config.rollout_batch_size]
        prompt_ids, items, sequences, logprobs = rollout.generate(
            model, [row["prompt"] for row in chunk], [row["target"] for row in chunk],
            temperature=config.temperature, stream=(start,), users=[row[USER_ID] for row in chunk])
        out = rollout.pack(prompt_ids, items, sequences, logprobs)
        fields = rollout_fields(out)
        texts = completion_texts(tokenizer, out["completion_ids"])
        for p, row in enumerate(chunk):
            candidates = []
            for g in range(size):
                k = p * size + g
                candidates.append({**{key: values[k] for key, values in fields.items()}, "text": texts[k],
                                   "completion_ids": out["completion_ids"][k],
                                   "logprob": round(float(logprobs[p, g].sum()), 5)})
            groups.append({**row, "candidates": candidates})
        bar.update(len(chunk))
    bar.close()
    return groups


def load_groups(path: str | Path) -> list[dict[str, Any]]:
    groups = []
    for line, row in read_jsonl(path):
        if not isinstance(row.get("candidates"), list) or "target" not in row or not row["candidates"]:
            raise DataError(f"{path}: line {line}: expected a group with `target` and non-empty `candidates`")
        groups.append(row)
    if not groups:
        raise DataError(f"{path}: no rollout groups")
    sizes = {len(g["candidates"]) for g in groups}
    if len(sizes) != 1:
        raise DataError(f"{path}: groups of different sizes {sorted(sizes)}; GRPO groups all have num_generations")
    return groups


# Candidate keys of a saved group that are not rollout fields: the completion itself and what the report adds.
CANDIDATE_OWN_KEYS = ("text", "completion_ids", "logprob")


def completion_rows(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per candidate, as GRPOTrainer holds it when it scores: the group's prompt row (every key but
    `candidates`) with the candidate's rollout fields (every key but `CANDIDATE_OWN_KEYS`) merged in."""
    return [{**{key: value for key, value in group.items() if key != "candidates"},
             **{key: value for key, value in candidate.items() if key not in CANDIDATE_OWN_KEYS}}
            for group in groups for candidate in group["candidates"]]


def score_groups(groups: list[dict[str, Any]], rewards: list, names: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """`(num_rewards, num_groups, group_size)` scores, each reward called with the arguments GRPOTrainer gives it
    (`reward_kwargs`): chat prompts' completions as assistant messages, plain prompts' as text, every column of the
    group and of the candidate by name."""
    from rlrec.tasks.reward_batch import reward_kwargs

    size = len(groups[0]["candidates"])
    candidates = [c for g in groups for c in g["candidates"]]
    texts = [c.get("text") or "" for c in candidates]
    completion_ids = [c.get("completion_ids") or [] for c in candidates]
    kwargs = reward_kwargs(completion_rows(groups), texts, completion_ids)
    scores = np.zeros((len(rewards), len(groups), size))
    invalid: dict[str, int] = {}
    for r, (fn, name) in enumerate(zip(rewards, names, strict=True)):
        counts: list[float] = []
        values = fn(**{**kwargs, "log_metric": lambda _key, value, counts=counts: counts.append(value)})
        scores[r] = np.asarray(values, dtype=float).reshape(len(groups), size)
        invalid[name] = int(sum(counts))
    return scores, invalid


def reward_statistics(scores: np.ndarray, names: list[str], invalid: dict[str, int]) -> dict[str, Any]:
    """Per reward: mean, mean within-group std, share of zero-variance groups; and the correlation matrix."""
    per_reward = {}
    for r, name in enumerate(names):
        group_std = scores[r].std(axis=1)
        per_reward[name] = {
            "mean": round(float(scores[r].mean()), 6),
            "group_std": round(float(group_std.mean()), 6),
            "zero_variance_groups": round(float((group_std < 1e-12).mean()), 6),
            "invalid": invalid.get(name, 0),
        }
    flat = scores.reshape(len(names), -1)
    correlation: dict[str, dict[str, float | None]] = {}
    for a, name_a in enumerate(names):
        correlation[name_a] = {}
        for b, name_b in enumerate(names):
            if flat[a].std() < 1e-12 or flat[b].std() < 1e-12:
                value = None  # a constant reward correlates with nothing
            else:
                value = round(float(np.corrcoef(flat[a], flat[b])[0, 1]), 4)
            correlation[name_a][name_b] = value
    return {"rewards": per_reward, "correlation": correlation}


def format_statistics(stats: dict[str, Any]) -> str:
    names = list(stats["rewards"])
    width = max(8, *(len(n) for n in names))
    lines = [f"{'reward':<{width}}  {'mean':>8}  {'group std':>9}  {'zero-var groups':>15}  {'invalid':>7}"]
    lines.append("-" * len(lines[0]))
    for name, row in stats["rewards"].items():
        lines.append(f"{name:<{width}}  {row['mean']:>8.4f}  {row['group_std']:>9.4f}  "
                     f"{row['zero_variance_groups']:>15.1%}  {row['invalid']:>7d}")
    if len(names) > 1:
        lines += ["", "correlation " + "  ".join(f"{n[:10]:>10}" for n in names)]
        for name in names:
            cells = [stats["correlation"][name][other] for other in names]
            lines.append(f"{name[:11]:<11} " + "  ".join(
                f"{'-' if c is None or math.isnan(c) else f'{c:.3f}':>10}" for c in cells))
    return "\n".join(lines)


def main(config: RewardsConfig) -> dict[str, Any]:
    from rlrec.rewards import load_rewards, parse_reward_recipe
    from rlrec.rewards.registry import NEEDS_POPULARITY, NEEDS_RATINGS, recipe_context

    start = time.perf_counter()
    check_output_dir(config.output_dir, overwrite=config.overwrite_output_dir, stage="rewards")
    recipe = parse_reward_recipe(config.rewards)
    index = SIDIndex.load(config.resolved_sid_dir())
    needs_train = config.rollouts_file is None or bool((NEEDS_POPULARITY | NEEDS_RATINGS) & set(recipe.specs))
    dataset = PreparedDataset.load(config.dataset_dir) if needs_train else None
    if config.rollouts_file:
        groups = load_groups(config.rollouts_file)
    else:
        groups = generate_groups(config, dataset, index, recipe)
    size = len(groups[0]["candidates"])
    context = recipe_context(recipe.specs, index, train=dataset.train if dataset is not None else None,
                             invalid_penalty=config.invalid_penalty, num_generations=size,
                             feedback=dataset.feedback() if dataset is not None else None)
    rewards = load_rewards(recipe.specs, context, recipe.params)
    names = [fn.__name__ for fn in rewards]
    scores, invalid = score_groups(groups, rewards, names)
    stats = reward_statistics(scores, names, invalid)
    report = {
        "stage": "rewards",
        "rlrec_version": rlrec.__version__,
        "groups": len(groups),
        "group_size": size,
        "source": config.rollouts_file or config.model_path,
        **stats,
        "config": dataclasses.asdict(config),
        "seconds": round(time.perf_counter() - start, 1),
    }
    with atomic_output_dir(config.output_dir) as tmp:
        write_jsonl(tmp / ROLLOUTS_FILE, groups)
        write_json(tmp / "report.json", report)
    print(format_statistics(stats))
    print(f"rlrec rewards: {len(groups)} groups of {size} scored by {len(names)} rewards; "
          f"report in {config.output_dir}", flush=True)
    return report
