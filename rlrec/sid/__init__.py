"""Semantic IDs: item-text embeddings → residual codes → unique SID tokens such as `<a_12><b_3><c_200>`.

- `config`: `SIDConfig`, the settings of the `rlrec sid` stage.
- `kmeans`, `rqvae`, `quantizers`: embeddings → codes (`get_quantizer(name, config).fit_encode(x)`,
  and `CascadeQuantizer` for behavioural + text codebooks).
- `collisions`: make every item's codes unique (`resolve_collisions`).
- `index`, `trie`: `SIDIndex` (item ↔ codes ↔ tokens, `index.json`) and its `PrefixTrie`.
- `metrics`: collision rate, codebook utilisation and perplexity, items per leaf.

Only the light, numpy-only parts are imported here, so reading an index does not import torch.
"""

from rlrec.sid.config import SIDConfig
from rlrec.sid.index import SIDIndex
from rlrec.sid.trie import PrefixTrie

__all__ = ["PrefixTrie", "SIDConfig", "SIDIndex"]
