"""Constrained decoding over the SID trie: every generated SID is a real item.

- `constraint`: `SIDConstraint`, the trie as per-level tensors (`from_index(index, tokenizer)`).
- `beam_search`: `constrained_beam_search(...) -> BeamSearchOutput` (top items per prompt, best first).
- `sampling`: `constrained_sample(...) -> SampleOutput` (independent draws, for RL rollouts).
- `kv_cache`: `PromptCache`, one prefill per prompt (the batch's common prefix once) then batched steps over a
  shared KV cache.
"""

from rlrec.generation.beam_search import BeamSearchOutput, constrained_beam_search
from rlrec.generation.constraint import SIDConstraint
from rlrec.generation.kv_cache import PromptCache
from rlrec.generation.sampling import SampleOutput, constrained_sample

__all__ = [
    "BeamSearchOutput",
    "PromptCache",
    "SIDConstraint",
    "SampleOutput",
    "constrained_beam_search",
    "constrained_sample",
]
