"""`SIDDPOTrainer`: TRL's `DPOTrainer` on preference pairs given as token ids, the completions bare SIDs.

TRL tokenizes text pairs itself and appends `<eos>` to every completion. A ranking model is scored on the
SID tokens alone (beam search stops at the SID's last level), and a compact model trained with several
targets per example (`sequence_stride`) never learned `<eos>` after one SID: on ML-100k it gives the token
log-probability about -11 against about -5 for the whole SID. With `<eos>` in the completions, DPO's
gradient is mostly "learn `<eos>` here", and even its plain SFT term lowered valid NDCG@10 by a third within
100 steps at lr 1e-5. So the stage tokenizes the pairs as the ranking reads them (the prompt as
`encode_prompts` renders it, the completion the SID's token ids) and this trainer takes them as they are.
"""

from __future__ import annotations

from typing import Any

from trl import DPOTrainer

from rlrec.training.valid_selection import ValidRankingMixin

TOKENIZED_COLUMNS = frozenset({"prompt_ids", "chosen_ids", "rejected_ids"})


class SIDDPOTrainer(ValidRankingMixin, DPOTrainer):
    """`DPOTrainer` that keeps an already tokenized dataset (`prompt_ids`, `chosen_ids`, `rejected_ids`) as it
    is; a text dataset goes through TRL's own preparation."""

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if TOKENIZED_COLUMNS <= set(dataset.column_names):
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
