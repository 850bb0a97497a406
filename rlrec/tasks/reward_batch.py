"""The GRPO reward batch contract: what every reward is called with, and the names of the columns it reads.

A GRPO batch starts as dataset rows (`prompt_rows`: the prompt and the columns `PROMPT_COLUMNS`), the rollout
adds one value per completion (`ROLLOUT_COLUMNS`, merged into the rows by TRL: `rollout_fields`), and TRL calls
each reward with the keyword arguments `reward_kwargs` states. `rlrec grpo` lets TRL assemble them;
`rlrec rewards` scores its groups through `reward_kwargs`, so a reward sees the same arguments in both
(`tests/test_grpo.py` checks them against a real GRPO step). The rollout (`rlrec.generation.rollout`), the
trainer (`rlrec.training.grpo_trainer`) and the rewards (`rlrec.rewards`) all take the names from here.

A rollout that puts a prompt's target into its group needs the targets of the batch it decodes, which TRL does
not hand a `rollout_func`; `BatchTargets` is the one object the trainer fills and the rollout reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rlrec.data.schema import Example
from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import ConfigError

# Columns of a GRPO dataset row (`prompt_rows`), one value per prompt.
PROMPT = "prompt"
TARGET = "target"          # the next item's id
TARGET_SID = "target_sid"  # its SID string
USER_ID = "user_id"
PROMPT_COLUMNS = (PROMPT, TARGET, TARGET_SID, USER_ID)
# Columns the SID rollout adds, one value per completion.
ITEM_ID = "item_id"        # the candidate's item id
BEAM_RANK = "beam_rank"    # its rank in the beam search (None for sampled candidates)
ROLLOUT_COLUMNS = (ITEM_ID, BEAM_RANK)
# What TRL takes from a `rollout_func`'s output for itself; every other field is merged into the batch's rows
# and so reaches the rewards (`env_mask` becomes the tool mask).
ROLLOUT_OWN_FIELDS = ("prompt_ids", "completion_ids", "logprobs", "env_mask")
# Row columns TRL hands a reward as its own arguments (`prompts=`, `completions=`, `completion_ids=`), not by name.
ROW_OWN_COLUMNS = (PROMPT, "completion", "completion_ids")


def prompt_rows(examples: Sequence[Example], index: SIDIndex, tokenizer: Any,
                max_history: int | None) -> list[dict[str, Any]]:
    """GRPO's dataset rows, one per example: the next-item prompt, the target item, its SID and the user.

    The prompt is `next_item_prompter`'s (the one the SFT model learned, the last `max_history` history items);
    `rlrec grpo` trains on these rows and `rlrec rewards` rolls them out, so both ask the model the same question
    and hand the rewards the same columns.
    """
    from rlrec.tasks.prompts import next_item_prompter

    prompter = next_item_prompter(tokenizer, index, max_history=max_history)
    return [{PROMPT: prompter(ex.history), TARGET: ex.target, TARGET_SID: index.sid(ex.target),
             USER_ID: ex.user_id} for ex in examples]


def rollout_fields(output: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a `rollout_func`'s output that TRL merges into the rows of the batch (so the rewards get them
    by name): everything but what TRL keeps for itself (`ROLLOUT_OWN_FIELDS`). The SID rollout's: `ROLLOUT_COLUMNS`.
    """
    return {key: values for key, values in output.items() if key not in ROLLOUT_OWN_FIELDS}


def completion_texts(tokenizer: Any, completion_ids: Sequence[Sequence[int]]) -> list[str]:
    """Each completion's text as GRPOTrainer decodes it for the rewards (special tokens dropped; SID tokens are
    ordinary added tokens, `rlrec.init.vocab`, so they stay)."""
    return tokenizer.batch_decode([list(ids) for ids in completion_ids], skip_special_tokens=True)


def _discard(*_args: Any, **_kwargs: Any) -> None:
    """`log_metric` / `log_extra` where nothing collects them (no trainer)."""


def reward_kwargs(rows: Sequence[Mapping[str, Any]], texts: Sequence[str],
                  completion_ids: Sequence[Sequence[int]], trainer_state: Any = None,
                  log_metric: Callable[[str, float], None] | None = None,
                  log_extra: Callable[[str, list], None] | None = None) -> dict[str, Any]:
    """Every keyword argument GRPOTrainer passes a reward function for one batch of completions, as a dict.

    `rows[i]` is completion i's row as the trainer holds it: its prompt's dataset row (`prompt_rows`) with the
    rollout's fields for that completion merged in (`rollout_fields`), groups consecutive. `texts` are the decoded
    completions (`completion_texts`). The reward gets `prompts`, `completions` (assistant messages after a chat
    prompt, the plain text after a plain-string prompt), `completion_ids`, every other column by name (one value
    per completion; a column some rows lack is None there), and the trainer's hooks: `trainer_state` (None
    without training), `log_metric(name, value)` and `log_extra(column, values)`.
    """
    if not len(rows) == len(texts) == len(completion_ids):
        raise ValueError(f"{len(rows)} rows, {len(texts)} completions and {len(completion_ids)} completion ids")
    prompts = [row.get(PROMPT) for row in rows]
    columns = list(dict.fromkeys(key for row in rows for key in row if key not in ROW_OWN_COLUMNS))
    kwargs: dict[str, Any] = {
        "prompts": prompts,
        # a chat prompt (a list of messages, as TRL's is_conversational reads it) gets message completions
        "completions": [[{"role": "assistant", "content": text}] if isinstance(prompt, list) else text
                        for prompt, text in zip(prompts, texts, strict=True)],
        "completion_ids": [list(ids) for ids in completion_ids],
    }
    kwargs.update({key: [row.get(key) for row in rows] for key in columns})
    kwargs.update(trainer_state=trainer_state, log_extra=log_extra or _discard, log_metric=log_metric or _discard)
    return kwargs


class BatchTargets:
    """The `TARGET` and `USER_ID` columns of the batch being rolled out, in prompt order: the trainer holds them
    while it generates (`hold`), the rollout reads them (`for_prompts`, `users_for_prompts`). One object, handed to
    both, instead of an attribute the rollout would read off the trainer by name."""

    def __init__(self) -> None:
        self._targets: list[Any] | None = None
        self._users: list[Any] | None = None

    @contextmanager
    def hold(self, rows: Sequence[Mapping[str, Any]]) -> Iterator[list[Any]]:
        """The targets (and users) of `rows` for the rollouts and scoring inside the block."""
        self._targets = [row.get(TARGET) for row in rows]
        self._users = [row.get(USER_ID) for row in rows]
        try:
            yield self._targets
        finally:
            self._targets = self._users = None

    def users_for_prompts(self, num_prompts: int) -> list[Any]:
        """The users of the `num_prompts` prompts being rolled out (held with their targets)."""
        self.for_prompts(num_prompts)
        assert self._users is not None
        return self._users

    def for_prompts(self, num_prompts: int) -> list[Any]:
        """The targets of the `num_prompts` prompts being rolled out; a clear error when none are held."""
        if self._targets is None or len(self._targets) != num_prompts:
            held = "none" if self._targets is None else len(self._targets)
            raise ConfigError(f"rollout: needs the targets of its {num_prompts} prompts (add_target, divergence "
                              f"credit), {held} held: train with RecGRPOTrainer(batch_targets=rollout.targets)")
        return self._targets
