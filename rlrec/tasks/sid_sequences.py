"""Next-item examples for a from-scratch SID model, as token ids: `<bos>`, history SIDs, then target SIDs.

A pretrained LLM learns from chat prompts rendered by TRL; a scratch model's vocabulary is the SID
tokens, so its examples are built straight from the index as token ids (no text, no tokenizer pass:
a hundred thousand examples in a second) with a `labels` column that puts the loss on the targets.

`stride` sets how many consecutive targets of a user one example teaches. With stride 1 every train
window is its own example (the history's last `max_history` items, then the target): the exact prompt
evaluation asks. With stride s, one example holds s consecutive targets after a history cut to
`max_history - s + 1` items, so each target is still predicted from at most `max_history` items (from
`max_history - s + 1` to `max_history`) while the shared history is read once instead of s times: the
same targets in about s times fewer tokens, at the price of some shorter contexts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from rlrec.data.schema import Example
from rlrec.models.sid_vocab import BOS
from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import ConfigError

IGNORE_INDEX = -100


def consecutive_runs(train: Sequence[Example]) -> Iterator[list[Example]]:
    """Each user's train windows split into runs where every window extends the one before by its target.

    Leave-one-out windows of one user form a single run; windows whose history does not end with the previous
    target (held-out items removed, rebuilt splits) start a new run, so no example joins unrelated windows.
    """
    run: list[Example] = []
    for example in train:
        if run and (example.user_id != run[-1].user_id or not example.history
                    or example.history[-1] != run[-1].target):
            yield run
            run = []
        run.append(example)
    if run:
        yield run


def sid_sequence_rows(train: Sequence[Example], index: SIDIndex, token_ids: dict[str, int],
                      max_history: int, stride: int = 1, start_token: str = BOS,
                      target_weight: Callable[[Example], float] | None = None) -> list[dict[str, list]]:
    """`{"input_ids", "labels"}` rows teaching every train target once (see the module docstring).

    `token_ids` maps each SID token (and `start_token`, the prompt's first token: `<bos>` for a scratch model,
    an LLM's own bos for SID-only LLM prompts) to its id; items without a SID are skipped in histories, and a
    target without one ends the example there. `target_weight(example)` weighs each target's loss (SFT on liked
    targets, rating-weighted SFT): a target of weight 0 stays in the sequence as history but is no label, and
    other weights than 1 add a `label_weights` column (one weight per token, 0 off the labels) that
    `PlainLossSFTTrainer` multiplies the token losses by.
    """
    if max_history < 1:
        raise ConfigError(f"max_history={max_history}; expected a positive integer")
    if not 1 <= stride <= max_history:
        raise ConfigError(f"sequence_stride={stride}; expected 1..max_history ({max_history})")
    bos = token_ids[start_token]
    sid_ids = {item: [token_ids[t] for t in index.tokens(item)] for item in index.item_ids}
    rows = []
    for run in consecutive_runs(train):
        for start in range(0, len(run), stride):
            chunk = run[start: start + stride]
            history = chunk[0].history[-(max_history - stride + 1):]
            input_ids = [bos]
            for item in history:
                input_ids += sid_ids.get(item, [])
            labels = [IGNORE_INDEX] * len(input_ids)
            weights = [0.0] * len(input_ids)
            for example in chunk:
                target = sid_ids.get(example.target)
                if target is None:
                    break
                weight = 1.0 if target_weight is None else float(target_weight(example))
                input_ids += target
                labels += target if weight > 0 else [IGNORE_INDEX] * len(target)
                weights += [weight] * len(target)
            if any(label != IGNORE_INDEX for label in labels):
                rows.append({"input_ids": input_ids, "labels": labels, "label_weights": weights})
    if all(w in (0.0, 1.0) for row in rows for w in row["label_weights"]):
        for row in rows:  # zeros and ones are all in the labels already
            del row["label_weights"]
    return rows
