"""SETRec (SIGIR'25): order-agnostic set identifiers and simultaneous generation for LLM recommendation.

Each item is a set of continuous tokens, one CF token and N semantic tokens (`item_tokens`); a history
is read under a sparse mask where an item's tokens do not see each other (`mask`); N+1 learned queries
generate the next item's tokens in one forward pass (`model`); the generated tokens are grounded to
items by `(1-β)·s_CF + β·Σ_k s_k`, semantic only for cold items (`grounding`).
"""

from rlrec.ranking.load import register_folder_ranker
from rlrec.setrec.build import backbone_of, build_setrec, prompt_token_ids
from rlrec.setrec.config import SETRecModelConfig, SETRecTrainConfig
from rlrec.setrec.grounding import dimension_scores, ground
from rlrec.setrec.io import load_setrec, save_setrec
from rlrec.setrec.mask import SetLayout, set_layout
from rlrec.setrec.model import SETRecModel
from rlrec.setrec.ranker import SETRecRanker
from rlrec.setrec.train import apply_lora, merge_lora, train_setrec


def _folder_ranker(folder, *, device="auto", dtype="auto", batch_size: int = 32) -> SETRecRanker:
    return SETRecRanker(load_setrec(folder, device=device, dtype=dtype), batch_size=batch_size)


register_folder_ranker("setrec_grounding", _folder_ranker)  # `rlrec.ranking.load_ranker` opens SETRec folders

__all__ = [
    "SETRecModel",
    "SETRecModelConfig",
    "SETRecRanker",
    "SETRecTrainConfig",
    "SetLayout",
    "apply_lora",
    "backbone_of",
    "build_setrec",
    "dimension_scores",
    "ground",
    "load_setrec",
    "merge_lora",
    "prompt_token_ids",
    "save_setrec",
    "set_layout",
    "train_setrec",
]
