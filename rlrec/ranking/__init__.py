"""One ranking protocol for every recommender rlrec builds or compares against.

`Ranker.rank(histories, k, exclude_history=..., pool=...)` returns, per history, the top `k` items as
`(item_id, score)` pairs, best first. Evaluation, `Recommender` (and so the top-K cache and `rlrec
recommend`), valid selection and the reports all ask through it, so the history cap, the prompt, the
exclusion of seen items and the candidate pool mean the same thing everywhere:

- `SIDRanker`: a SID model's constrained beam search over the trie of real items (`rlrec.generation`).
- `ScoreRanker`: any model that scores the whole catalog at once (SASRec; SETRec's `SETRecRanker`).
- `PopularityRanker`: the most popular train items.

`load_ranker(folder)` reads a trained or exported model folder (SID or SETRec) with its saved
`RankingSpec`; `baseline_ranker(name, dataset)` fits a baseline.
"""

from rlrec.ranking.base import Ranked, Ranker, ranked_ids
from rlrec.ranking.load import load_ranker, load_sid_index
from rlrec.ranking.popularity import PopularityRanker
from rlrec.ranking.scores import ScoreRanker
from rlrec.ranking.sid import SIDRanker, check_index_matches_tokenizer, encode_prompts
from rlrec.ranking.spec import SPEC_FILE, RankingSpec

__all__ = [
    "PopularityRanker",
    "Ranked",
    "Ranker",
    "RankingSpec",
    "SPEC_FILE",
    "SIDRanker",
    "ScoreRanker",
    "check_index_matches_tokenizer",
    "encode_prompts",
    "load_ranker",
    "load_sid_index",
    "ranked_ids",
]
