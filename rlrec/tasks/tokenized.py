"""Chat examples (prompt / completion messages) as token-id rows with the loss on the completion only.

TRL tokenizes a prompt-completion dataset itself, but a dataset whose next-item rows are already token ids
(SID-only prompts, `rlrec.tasks.sid_sequences`) must hold its text tasks (TS-Align, item/SID alignment) in the
same `{"input_ids", "labels"}` form. The rendering is TRL's: the prompt through the chat template with the
generation prompt, then the whole conversation; the completion's tokens are those past the prompt's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rlrec.tasks.sid_sequences import IGNORE_INDEX
from rlrec.utils.errors import DataError


def chat_token_rows(tokenizer: Any, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, list[int]]]:
    """`{"input_ids", "labels"}` of each `{"prompt", "completion"}` chat row; labels are -100 on the prompt."""
    out = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(list(row["prompt"]), add_generation_prompt=True, tokenize=False)
        whole = tokenizer.apply_chat_template(list(row["prompt"]) + list(row["completion"]), tokenize=False)
        if not whole.startswith(prompt):
            raise DataError("the chat template renders a prompt differently inside the whole conversation; "
                            "cannot put the loss on the completion only")
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(whole[len(prompt):], add_special_tokens=False)["input_ids"]
        out.append({"input_ids": prompt_ids + completion_ids,
                    "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids})
    return out
