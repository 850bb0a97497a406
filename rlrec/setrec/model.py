"""`SETRecModel`: an LLM that reads a history of item token sets and writes the next item's set in one pass.

    model = SETRecModel(backbone, item_ids, cf_embeddings, warm, text_embeddings, config, prompt_ids)
    generated = model.generate(histories)            # (batch, N+1, hidden): CF token + N semantic tokens
    scores = model.score(histories)                  # (batch, num_items), grounded, columns in item_ids order
    losses = model(history_index, targets)           # training: {"loss", "rec", "recon"}

The sequence fed to the LLM is the embedded text prompt, then N+1 token vectors per history item, then
N+1 learned query vectors, under the sparse mask of `rlrec.setrec.mask`. The hidden states at the query
positions (after the backbone's final norm) are the generated tokens. `backbone` is the transformer
without its language-model head (`AutoModelForCausalLM(...).get_decoder()`, optionally wrapped by peft):
SETRec never scores the word vocabulary, so computing those logits would be wasted work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlrec.generation.kv_cache import KeyValues, broadcast_cache, cache_keyword, layer_key_values, returned_cache
from rlrec.setrec.config import SETRecModelConfig
from rlrec.setrec.grounding import dimension_scores, ground
from rlrec.setrec.item_tokens import CFTokenizer, SemanticTokenizer
from rlrec.setrec.mask import set_layout
from rlrec.utils.errors import DataError

PAD_ITEM = -1  # padding in history-index tensors
PromptKV = KeyValues  # the text prompt's, batch 1


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x.detach().float() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, np.float32))


class SETRecModel(nn.Module):
    """Backbone LLM + CF and semantic item tokenizers + one query vector per identifier dimension."""

    def __init__(self, backbone: nn.Module, item_ids: Sequence[str], cf_embeddings: np.ndarray | torch.Tensor,
                 warm: np.ndarray | torch.Tensor | Sequence[bool], text_embeddings: np.ndarray | torch.Tensor,
                 config: SETRecModelConfig, prompt_ids: Sequence[int] = ()) -> None:
        super().__init__()
        self.item_ids = [str(i) for i in item_ids]
        if len(set(self.item_ids)) != len(self.item_ids):
            raise DataError("setrec: the item ids have duplicates")
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        cf, text = _as_tensor(cf_embeddings), _as_tensor(text_embeddings)
        warm_t = torch.as_tensor(np.asarray(warm, dtype=bool))
        for name, table in (("cf_embeddings", cf), ("text_embeddings", text), ("warm", warm_t)):
            if table.shape[0] != len(self.item_ids):
                raise DataError(f"setrec: {name} has {table.shape[0]} rows for {len(self.item_ids)} items")
        self.config = config
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        embed = backbone.get_input_embeddings().weight
        # New vectors start at the scale of the LLM's own input embeddings.
        rms = float(embed.detach().float().pow(2).mean().sqrt())
        self.cf = CFTokenizer(cf, warm_t, hidden, out_rms=rms)
        self.semantic = SemanticTokenizer(text, config.ae_hidden, config.num_semantic_tokens, hidden, out_rms=rms)
        self.queries = nn.Parameter(torch.randn(self.num_dims, hidden) * rms)
        # Learned in log space so it stays positive (see `rlrec.setrec.grounding` for why cosine).
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale)))
        self.register_buffer("prompt_ids", torch.tensor(list(prompt_ids), dtype=torch.long))

    @property
    def num_dims(self) -> int:
        """N+1: the CF token plus the semantic tokens of an identifier."""
        return 1 + self.config.num_semantic_tokens

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.exp()

    @property
    def warm(self) -> torch.Tensor:
        return self.cf.warm

    @property
    def device(self) -> torch.device:
        return self.queries.device

    def corpus(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every item's tokens `(N+1, num_items, hidden)` and the autoencoder's reconstruction loss."""
        codes = self.semantic.codes()
        tokens = torch.cat([self.cf().unsqueeze(0), self.semantic.tokens(codes)])
        return tokens, self.semantic.reconstruction_loss(codes)

    def history_index(self, histories: Sequence[Sequence[str]]) -> torch.Tensor:
        """Histories → `(batch, max_history)` item indices of the most recent items, padded with -1 on the right."""
        width = self.config.max_history
        out = torch.full((len(histories), width), PAD_ITEM, dtype=torch.long)
        for row, history in enumerate(histories):
            recent = list(history)[-width:]
            try:
                idx = [self.index[str(item)] for item in recent]
            except KeyError as err:
                raise DataError(f"setrec: history item {err.args[0]!r} is not in the model's catalog") from err
            out[row, :len(idx)] = torch.tensor(idx, dtype=torch.long)
        return out

    def prompt_key_values(self) -> PromptKV | None:
        """The text prompt's keys and values, one `(key, value)` pair per layer at batch 1; None without a prompt.

        The prompt is the same for every user and, under the causal rule, attends only to itself, so its keys
        and values depend on the LLM's weights alone. Training recomputes them every step (the weights move and
        the gradient flows through them); inference computes them once and reuses them for every batch
        (`SETRecRanker`), which matters most at small batches: at batch 1 the prompt is a third of the
        positions.
        """
        if not len(self.prompt_ids):
            return None
        embed = self.backbone.get_input_embeddings()
        prefix = embed(self.prompt_ids.to(embed.weight.device)).unsqueeze(0)
        cache = returned_cache(self.backbone(inputs_embeds=prefix, use_cache=True))
        return layer_key_values(cache)

    def generate_from(self, history_index: torch.Tensor, corpus: torch.Tensor,
                      prompt_kv: PromptKV | None = None) -> torch.Tensor:
        """The N+1 generated vectors `(batch, N+1, hidden)` of a history-index batch, in one forward pass.

        The text prompt's keys and values (`prompt_kv`, computed here when not given) reach every row through
        the KV cache, so each row runs only its item tokens and the queries: with a 30-token prompt and 10
        items of 5 tokens that is 55 positions a row instead of 85, for the same result (`tests/test_setrec.py`).
        """
        dims = self.num_dims
        dtype = self.backbone.get_input_embeddings().weight.dtype
        history_index = history_index.to(corpus.device)
        lengths = (history_index != PAD_ITEM).sum(dim=1).tolist()
        batch, prefix_len = len(lengths), len(self.prompt_ids)
        layout = set_layout(0, lengths, dims, dims, device=corpus.device)
        width = layout.blocks.shape[1]
        rows = []
        queries = self.queries.to(dtype)
        for row, t in enumerate(lengths):
            items = corpus[:, history_index[row, :t]].transpose(0, 1).reshape(t * dims, corpus.shape[-1]).to(dtype)
            seq = torch.cat([items, queries])
            rows.append(F.pad(seq, (0, 0, width - seq.shape[0], 0)))
        inputs = torch.stack(rows)
        cache = None
        if prefix_len:
            prompt_kv = prompt_kv if prompt_kv is not None else self.prompt_key_values()
            cache = broadcast_cache(prompt_kv, batch, self.backbone.config)
        out = self.backbone(inputs_embeds=inputs, attention_mask=layout.attention_mask(dtype, prefix_len),
                            position_ids=layout.position_ids + prefix_len * layout.real,
                            use_cache=cache is not None, **{cache_keyword(self.backbone): cache})
        return out.last_hidden_state[:, -dims:].float()

    def forward(self, history_index: torch.Tensor, targets: torch.Tensor,
                warm_only: bool = False) -> dict[str, torch.Tensor]:
        """Training losses: per dimension, a softmax over that dimension's corpus against the target item.

        `rec` is the mean of the N+1 dimensions' cross-entropies (the paper's average, so α weighs the
        reconstruction against one dimension's loss). The CF softmax runs over warm items only (a cold item's
        CF token is not a real identifier), and a cold target (possible only outside train) adds no CF term.
        `warm_only` also keeps cold items out of the semantic softmaxes: held-out items are then never
        pushed down as negatives before they are ever asked for. `loss = rec + α·recon`.
        """
        corpus, recon = self.corpus()
        generated = self.generate_from(history_index, corpus)
        logits = dimension_scores(generated, corpus, self.logit_scale)  # (batch, dims, items)
        targets = targets.to(logits.device)
        warm = self.warm.to(logits.device)
        cf_logits = logits[:, 0].masked_fill(~warm, float("-inf"))
        cf_targets = torch.where(warm[targets], targets, torch.full_like(targets, -100))
        semantic = logits[:, 1:]
        if warm_only:
            semantic = semantic.masked_fill(~warm, float("-inf"))
        n_sem = self.num_dims - 1
        rec = F.cross_entropy(semantic.reshape(-1, logits.shape[-1]), targets.repeat_interleave(n_sem)) * n_sem
        dims = n_sem
        if (cf_targets != -100).any():
            rec = rec + F.cross_entropy(cf_logits, cf_targets, ignore_index=-100)
            dims += 1
        rec = rec / dims
        return {"loss": rec + self.config.alpha * recon, "rec": rec.detach(), "recon": recon.detach()}

    @torch.no_grad()
    def generate(self, histories: Sequence[Sequence[str]]) -> torch.Tensor:
        corpus, _ = self.corpus()
        return self.generate_from(self.history_index(histories), corpus)

    @torch.no_grad()
    def score(self, histories: Sequence[Sequence[str]], corpus: torch.Tensor | None = None,
              prompt_kv: PromptKV | None = None) -> torch.Tensor:
        """Grounded scores `(batch, num_items)` on the CPU, columns in `item_ids` order.

        `corpus` and `prompt_kv` (from `corpus()` and `prompt_key_values()`) may be passed in when scoring many
        batches with the same weights; they are computed here otherwise.
        """
        if corpus is None:
            corpus, _ = self.corpus()
        generated = self.generate_from(self.history_index(histories), corpus, prompt_kv)
        return ground(generated, corpus, self.warm, self.config.beta, self.logit_scale).cpu()
