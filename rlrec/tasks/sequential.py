"""Sequential-recommendation tasks: one example per train window (a user's history and the item after it).

- `next_item`: SID history -> target SID, asked with `next_item_prompt` (the evaluation prompt, phrasings
  rotated), so the model is trained on the question it will be asked.
- `next_item_title`: title history -> target SID (MiniOneRec): ties the SIDs to what the items are.
- `negative_yes_no`: would the user choose this item next? The target ("Yes") or an item outside the
  history ("No"), half and half (Semantic Convergence's negative sampling): teaches what not to pick.
- `pick_positive`: the target among `num_candidates - 1` sampled negatives, shuffled -> the target's SID.
"""

from __future__ import annotations

import random

from rlrec.tasks.context import TaskContext
from rlrec.tasks.prompts import NEXT_ITEM_PHRASINGS, Messages, next_item_prompt
from rlrec.tasks.spec import TaskSpec, phrase

TITLE_PHRASINGS = (
    "A user interacted with these items, oldest first: {history}. Which item comes next? Answer with its SID.",
    "Items the user chose, in order: {history}. Give the SID of the next one.",
)
YES_NO_PHRASINGS = (
    "A user interacted with these items, oldest first: {history}. Will they choose {candidate} next? "
    "Answer Yes or No.",
    "History: {history}. Is {candidate} this user's next item? Answer Yes or No.",
)
PICK_PHRASINGS = (
    "A user interacted with these items, oldest first: {history}. Which of these will they choose next: "
    "{candidates}?",
    "History: {history}. Candidates: {candidates}. Which candidate comes next?",
)
YES, NO = "Yes", "No"


def _train_size(context: TaskContext) -> int:
    return len(context.dataset.train)


def render_next_item(context: TaskContext, i: int, rng: random.Random) -> tuple[Messages, str]:
    example = context.dataset.train[i]
    prompt = next_item_prompt(context.history_sids(example), rng.randrange(len(NEXT_ITEM_PHRASINGS)))
    return prompt, context.index.sid(example.target)


def render_next_item_title(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
    example = context.dataset.train[i]
    titles = [f'"{context.title(item)}"' for item in example.history[-context.max_title_history :]]
    return phrase(rng, TITLE_PHRASINGS, history="; ".join(titles)), context.index.sid(example.target)


def render_negative_yes_no(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
    """Example `i` asks about train window `i // 2`: the target when `i` is even, a negative when odd."""
    example = context.dataset.train[i // 2]
    candidate, answer = example.target, YES
    if i % 2:
        negatives = context.negatives(rng, [*example.history, example.target], 1)
        if negatives:
            candidate, answer = negatives[0], NO
    history = ", ".join(context.history_sids(example))
    return phrase(rng, YES_NO_PHRASINGS, history=history, candidate=context.index.sid(candidate)), answer


def render_pick_positive(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
    example = context.dataset.train[i]
    candidates = [example.target, *context.negatives(rng, [*example.history, example.target],
                                                     context.num_candidates - 1)]
    rng.shuffle(candidates)
    prompt = phrase(rng, PICK_PHRASINGS, history=", ".join(context.history_sids(example)),
                    candidates=", ".join(context.index.sid(c) for c in candidates))
    return prompt, context.index.sid(example.target)


SEQUENTIAL_TASKS = (
    TaskSpec("next_item", "SID history -> next item's SID (the evaluation prompt)", _train_size, render_next_item),
    TaskSpec("next_item_title", "title history -> next item's SID", _train_size, render_next_item_title),
    TaskSpec("negative_yes_no", "would the user choose this item next? Yes (target) / No (sampled negative)",
             lambda context: 2 * _train_size(context), render_negative_yes_no),
    TaskSpec("pick_positive", "the next item among shuffled candidates (target + sampled negatives)",
             _train_size, render_pick_positive),
)
