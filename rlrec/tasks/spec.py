"""`TaskSpec`: a named SFT task as a numbered set of examples, and the row format SFTTrainer reads.

A task has a natural size (one example per train window, per item, per SID token, ...) and renders
its example number `i` with a `random.Random` (which phrasing, which negatives). Addressing examples by
position lets a mixture draw any number of them without first materialising millions of rows, and
makes a seed reproduce the same rows.

Rows are TRL's conversational prompt-completion format: `prompt` is the user turn, `completion` the
assistant turn, so SFTTrainer computes the loss on the answer only, with no `{% generation %}` markers
needed in the chat template. `task` names the task (for `mixture_summary` and per-task logging).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rlrec.tasks.context import TaskContext
from rlrec.tasks.prompts import Messages, assistant_message, user_message

Row = dict[str, Any]
Render = Callable[[TaskContext, int, random.Random], tuple[Messages, str]]


def chat_row(prompt: Messages | str, answer: str, task: str) -> Row:
    """One SFT row: the user turn (messages or plain text), the assistant's answer and the task name."""
    messages = [user_message(prompt)] if isinstance(prompt, str) else list(prompt)
    return {"prompt": messages, "completion": [assistant_message(answer)], "task": task}


def phrase(rng: random.Random, phrasings: tuple[str, ...], **fields: str) -> str:
    """One of `phrasings`, drawn by `rng`, filled with `fields`: varied wording, same answer."""
    return phrasings[rng.randrange(len(phrasings))].format(**fields)


@dataclass(frozen=True)
class TaskSpec:
    """A task: `size(context)` examples, the `i`-th rendered by `render(context, i, rng)`."""

    name: str
    description: str
    size: Callable[[TaskContext], int]
    render: Render

    def example(self, context: TaskContext, i: int, rng: random.Random) -> Row:
        prompt, answer = self.render(context, i, rng)
        return chat_row(prompt, answer, self.name)

    def examples(self, context: TaskContext, rng: random.Random, positions: Iterable[int] | None = None) -> list[Row]:
        """The examples at `positions` (default: all of them, in natural order), rendered with `rng`."""
        if positions is None:
            positions = range(self.size(context))
        return [self.example(context, i, rng) for i in positions]
