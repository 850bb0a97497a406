"""SA-Init (TS-Rec): start each new SID token's embedding from the meaning of its cluster.

A freshly added token's row is random, so SFT spends its first steps just moving the SID rows to
somewhere meaningful. SA-Init puts them there at once: the row of `<a_12>` becomes the mean of the
pretrained embeddings of the sub-tokens of the keywords describing the items coded `a_12` (see
`rlrec.init.keywords`). Two knobs of the ablation:

- `levels`: which SID levels get SA-Init; tokens of the other levels get the vocabulary mean
  (`mean_vocab`), the usual "neutral" initialisation. Level 0 splits the catalog by broad topic,
  deeper levels by residual detail, so their keywords are less telling.
- `layer`: pool a transformer layer's hidden states over the keyword text instead of the input
  embeddings (the paper's "deeper SA-Init layer" read literally, see `_layer_states`).
- `match_norm` (TS-Rec's rule, on by default): a mean of many sub-token rows is much shorter than a real
  row (averaging cancels their directions; in the demo 1.75 against 3.20), so under tied embeddings the new
  tokens would start with small logits. Every row SA-Init writes is rescaled to the average norm of the
  pretrained rows (an untied `lm_head`'s to its own rows' average).

Modes: `"keywords"` (SA-Init), `"mean_vocab"` (every SID row = mean of the original rows), `"none"`
(leave the rows as `add_sid_tokens` made them: the model's random init, the ablation's baseline).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlrec.init.vocab import add_sid_tokens
from rlrec.utils.errors import ConfigError

if TYPE_CHECKING:
    from rlrec.sid.index import SIDIndex

logger = logging.getLogger(__name__)

Mode = Literal["keywords", "mean_vocab", "none"]
MODES = ("keywords", "mean_vocab", "none")

# The layer variant reads the keywords as text after this prefix: the first position of a sequence
# collects huge "attention sink" activations in deep layers, so it must not be one of the pooled ones.
LAYER_PREFIX = "Keywords:"

_SID_TOKEN = re.compile(r"^<([a-z])_(\d+)>$")


def sid_token_level(token: str) -> int:
    """The SID level of a token with the default prefixes: `<a_12>` -> 0, `<b_3>` -> 1, ...

    An index with other `token_prefixes` must pass `token_levels` (`init_sid_embeddings` does).
    """
    match = _SID_TOKEN.match(token)
    if match is None:
        raise ConfigError(f"{token!r} is not a SID token like <a_12>; pass token_levels explicitly")
    return ord(match.group(1)) - ord("a")


def init_sid_embeddings(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    index: SIDIndex,
    mode: Mode = "keywords",
    levels: Sequence[int] | None = None,
    layer: int | None = None,
    pad_to_multiple_of: int | None = None,
    match_norm: bool = True,
    center: bool = False,
) -> tuple[list[int], dict[str, Any]]:
    """Add the index's SID tokens and SA-Init them from `index.keywords`; return `(token ids, report)`.

    The ids are in `index.vocabulary()` order. Tokens without keywords (codes no item uses, or an index
    whose keywords were never filled, see `rlrec.init.keywords.index_keywords`) get the vocabulary mean.
    """
    vocabulary = index.vocabulary()
    ids = add_sid_tokens(tokenizer, model, vocabulary, pad_to_multiple_of=pad_to_multiple_of)
    if mode == "keywords" and not index.keywords:
        logger.warning("SA-Init: the SID index has no keywords; every SID token gets the vocabulary mean")
    keywords = [index.keywords.get(token, []) for token in vocabulary]
    token_levels = [level for level in range(index.num_levels) for _ in index.level_tokens(level)]
    report = sa_init(model, tokenizer, ids, keywords, mode=mode, levels=levels, layer=layer, token_levels=token_levels,
                     match_norm=match_norm, center=center)
    return ids, report


@torch.no_grad()
def sa_init(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sid_token_ids: Sequence[int],
    keywords_per_token: Sequence[Sequence[str]] | None = None,
    mode: Mode = "keywords",
    levels: Sequence[int] | None = None,
    layer: int | None = None,
    token_levels: Sequence[int] | None = None,
    batch_size: int = 32,
    match_norm: bool = True,
    center: bool = False,
) -> dict[str, Any]:
    """Set the embedding rows of the SID tokens in place; return a report of what was done.

    `keywords_per_token[i]` describes `sid_token_ids[i]`. `levels` lists the SID levels that get SA-Init
    (None: all); their tokens without usable keywords, and every token of the other levels, get the
    vocabulary mean and are counted in the report. Levels come from the token strings (`<b_3>` is
    level 1) unless `token_levels` gives them.

    Keywords are tokenized alone with the current tokenizer and only ids below the first SID id (the
    original vocabulary) that are not special tokens are pooled, with one flat mean over all sub-tokens
    of all keywords. With untied input and output embeddings, the output row is pooled from the
    `lm_head` rows of the same sub-tokens rather than copied from the input value: the two matrices
    live in different spaces (an output row is scored against the last hidden state), and pooling
    `lm_head` rows makes the new token's first logits the mean of its keywords' logits. In `layer`
    mode the output row is pooled the same way (layer states are not output-space vectors either).

    With `match_norm` (keywords mode), every SID row written is rescaled to the mean norm of the original
    rows (output rows to the mean norm of the original `lm_head` rows), the keyword-less fallback rows too;
    `mean_vocab` mode rows stay the plain mean, the ablation's neutral baseline. (Leaving the fallback rows
    unscaled was tried on the CPU ablation: the validation losses of its first 50 steps moved by at most 0.005,
    so the high start of matched c-TF-IDF rows comes from the keyword rows' own length.) The report gives the
    mean norm of all SID rows and of the keyword rows alone.

    With `center` (keywords mode, with `match_norm`), the mean of a SID level's keyword rows is subtracted from
    each of them before the rescaling. A flat mean over many sub-tokens keeps mostly what all English words
    share: with TS-Rec's Industrial keyword lists (about 39 sub-tokens a token) the rows of a level start at a
    mean pairwise cosine of 0.93-0.95, nearly the one shared vector of `mean_vocab`. Centring keeps what sets a
    cluster's keywords apart from its level's other clusters. A row that centring empties (its level's rows
    all alike) keeps its uncentred value, counted in the report. The report's `keyword_row_cosine` is the mean
    pairwise cosine of the keyword rows within a level, averaged over the levels, as written (SID tokens with
    the default prefixes, or `token_levels` given); with `center`, `keyword_row_cosine_pooled` gives it before
    the centring.
    """
    if mode not in MODES:
        raise ConfigError(f"sa_init: mode must be one of {MODES}, got {mode!r}")
    ids = [int(i) for i in sid_token_ids]
    if not ids:
        raise ConfigError("sa_init: no SID token ids")
    if len(set(ids)) != len(ids):
        raise ConfigError("sa_init: duplicate SID token ids")
    embed = model.get_input_embeddings().weight
    if max(ids) >= embed.shape[0]:
        raise ConfigError(f"sa_init: SID id {max(ids)} >= {embed.shape[0]} embedding rows; run add_sid_tokens first")
    first_sid = min(ids)
    output = model.get_output_embeddings()
    untied = output is not None and output.weight.data_ptr() != embed.data_ptr()
    match_norm = bool(match_norm) and mode == "keywords"
    center = bool(center) and mode == "keywords"
    if center and not match_norm:
        raise ConfigError("sa_init: center needs match_norm (centred rows are differences, far shorter than a row)")
    report: dict[str, Any] = {
        "mode": mode, "levels": list(levels) if levels is not None else None, "layer": layer, "tied": not untied,
        "tokens": len(ids), "keywords": 0, "mean_vocab": 0, "no_keywords_fallback": 0, "untouched": 0,
        "norm_matched": match_norm, "centered": False,
    }
    if mode == "none":
        report["untouched"] = len(ids)
        return report

    mean_in = embed[:first_sid].float().mean(0)
    mean_out = output.weight[:first_sid].float().mean(0) if untied else None
    use_keywords = [False] * len(ids)
    subtokens: list[list[int]] = [[] for _ in ids]
    if mode == "keywords":
        if keywords_per_token is None or len(keywords_per_token) != len(ids):
            got = None if keywords_per_token is None else len(keywords_per_token)
            raise ConfigError(f"sa_init: keywords_per_token must have one list per SID token ({len(ids)}), got {got}")
        if token_levels is None:
            tokens = tokenizer.convert_ids_to_tokens(ids)
            if levels is not None or center or all(map(_SID_TOKEN.match, tokens)):
                token_levels = [sid_token_level(t) for t in tokens]  # a clear error where levels are needed
        if token_levels is not None and len(token_levels) != len(ids):
            raise ConfigError(f"sa_init: token_levels has {len(token_levels)} entries for {len(ids)} tokens")
        if levels is not None:
            unknown = sorted(set(levels) - set(token_levels))
            if unknown:
                raise ConfigError(
                    f"sa_init_levels {unknown} name SID levels with no tokens "
                    f"(levels here: {sorted(set(token_levels))})"
                )
        wanted = set(levels) if levels is not None else None
        special = set(tokenizer.all_special_ids)
        for i, keywords in enumerate(keywords_per_token):
            if wanted is not None and token_levels[i] not in wanted:
                continue
            subtokens[i] = _subtoken_ids(tokenizer, keywords, first_sid, special)
            use_keywords[i] = bool(subtokens[i])
            report["no_keywords_fallback"] += not subtokens[i]

    new_in = mean_in.expand(len(ids), -1).clone()
    new_out = mean_out.expand(len(ids), -1).clone() if untied else None
    chosen = [i for i, use in enumerate(use_keywords) if use]
    groups = _level_groups(chosen, token_levels) if token_levels is not None else None
    if chosen:
        if layer is None:
            for i in chosen:
                new_in[i] = embed[subtokens[i]].float().mean(0)
        else:
            texts = [" " + ", ".join(k.strip() for k in keywords_per_token[i] if k.strip()) for i in chosen]
            new_in[chosen] = _layer_states(model, tokenizer, texts, layer, first_sid, batch_size).to(new_in)
        if untied:
            for i in chosen:
                new_out[i] = output.weight[subtokens[i]].float().mean(0)
        if center:
            report["keyword_row_cosine_pooled"] = _mean_level_cosine(new_in, groups)
            matrices = (new_in, new_out) if untied else (new_in,)
            kept = [_center_by_level(rows, groups) for rows in matrices]
            report["centered"] = bool(groups)
            report["center_kept_uncentred"] = max(kept)
            if max(kept):
                logger.warning("SA-Init: centring emptied %d keyword rows (their level's rows alike); they keep "
                               "their uncentred value", max(kept))

    if match_norm:
        new_in = _rescale_rows(new_in, embed[:first_sid].float().norm(dim=1).mean())
        if untied:
            new_out = _rescale_rows(new_out, output.weight[:first_sid].float().norm(dim=1).mean())
    embed[ids] = new_in.to(embed.dtype)
    if untied:
        output.weight[ids] = new_out.to(output.weight.dtype)
    report["keywords"] = len(chosen)
    report["mean_vocab"] = len(ids) - len(chosen)
    report["subtokens_per_token"] = round(sum(len(subtokens[i]) for i in chosen) / max(len(chosen), 1), 2)
    report["vocab_row_norm"] = round(embed[:first_sid].float().norm(dim=1).mean().item(), 4)
    report["sid_row_norm"] = round(embed[ids].float().norm(dim=1).mean().item(), 4)
    if chosen:
        keyword_ids = [ids[i] for i in chosen]
        report["keyword_row_norm"] = round(embed[keyword_ids].float().norm(dim=1).mean().item(), 4)
        if groups is not None:  # None: other token prefixes and no token_levels given
            report["keyword_row_cosine"] = _mean_level_cosine(embed[ids].detach().float(), groups)
    if untied:
        report["vocab_output_row_norm"] = round(output.weight[:first_sid].float().norm(dim=1).mean().item(), 4)
        report["sid_output_row_norm"] = round(output.weight[ids].float().norm(dim=1).mean().item(), 4)
    if report["no_keywords_fallback"]:
        logger.warning("SA-Init: %d SID tokens had no usable keywords and got the vocabulary mean",
                       report["no_keywords_fallback"])
    logger.info("SA-Init: %s", report)
    return report


def _level_groups(chosen: Sequence[int], token_levels: Sequence[int]) -> list[list[int]]:
    """The chosen row positions, grouped by SID level (levels with at least two rows)."""
    groups: dict[int, list[int]] = {}
    for i in chosen:
        groups.setdefault(int(token_levels[i]), []).append(i)
    return [group for _, group in sorted(groups.items()) if len(group) > 1]


def _center_by_level(rows: torch.Tensor, groups: list[list[int]]) -> int:
    """Subtract, in place, each level group's mean (`_level_groups`: levels with one row are left alone). A row the
    centring leaves (near) empty keeps its uncentred value; returns how many did."""
    kept = 0
    for group in groups:
        before = rows[group]
        centred = before - before.mean(0)
        empty = centred.norm(dim=1) <= 1e-6 * before.norm(dim=1)
        centred[empty] = before[empty]
        rows[group] = centred
        kept += int(empty.sum())
    return kept


def _mean_level_cosine(rows: torch.Tensor, groups: list[list[int]]) -> float | None:
    """Mean pairwise cosine of the rows of each level group (`_level_groups`: positions in `rows`), averaged over the
    levels (None: no level has two rows)."""
    values = []
    for group in groups:
        unit = torch.nn.functional.normalize(rows[group].float(), dim=1)
        n = len(group)
        gram = unit @ unit.T
        values.append((gram.sum() - gram.diagonal().sum()).item() / (n * (n - 1)))
    return round(sum(values) / len(values), 4) if values else None


def _rescale_rows(rows: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """Each row scaled to length `norm` (direction kept)."""
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12) * norm


def _subtoken_ids(
    tokenizer: PreTrainedTokenizerBase, keywords: Sequence[str], first_sid: int, special: set[int]
) -> list[int]:
    """All original-vocabulary sub-token ids of `keywords`, each keyword tokenized alone."""
    keywords = [k.strip() for k in keywords if k and k.strip()]
    if not keywords:
        return []
    encoded = tokenizer(keywords, add_special_tokens=False)["input_ids"]
    return [t for ids in encoded for t in ids if t < first_sid and t not in special]


def _layer_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    layer: int,
    first_sid: int,
    batch_size: int,
) -> torch.Tensor:
    """Layer-`layer` hidden states pooled over each keyword text, mapped into the input-embedding space.

    Each text (`" kw1, kw2, ..."`) is read after `LAYER_PREFIX`, and the states of the text's own
    positions are averaged. `hidden_states[0]` is the embedding output, `hidden_states[k]` the output
    of block k (the last one after the final norm). A block's output lives in the residual stream, not
    in the input-embedding space: its scale grows with depth and a few dimensions carry outsized
    values, so used raw as an input row it would look like no token the model has seen. The states are
    therefore standardised per dimension (mean and std over all pooled positions of all texts) and
    given the per-dimension mean and std of the original embedding rows. The map is affine, so it is
    applied to the pooled means directly. The direction within the space is what the layer computed.
    """
    n_layers = model.config.num_hidden_layers
    if not 0 <= layer <= n_layers:
        raise ConfigError(f"sa_init_layer must be in 0..{n_layers} (the model's layers), got {layer}")
    special = set(tokenizer.all_special_ids)

    def encode(text: str) -> list[int]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return [t for t in ids if t < first_sid and t not in special]

    prefix = encode(LAYER_PREFIX)
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "add_bos_token", False) and tokenizer.bos_token_id else []
    prefix = bos + prefix
    device = model.get_input_embeddings().weight.device
    pooled, total, total_sq, count = [], None, None, 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(texts), batch_size):
            encoded = [encode(t) for t in texts[start : start + batch_size]]
            width = len(prefix) + max(len(e) for e in encoded)
            input_ids = torch.full((len(encoded), width), tokenizer.pad_token_id or 0, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            pool = torch.zeros(input_ids.shape, dtype=torch.float32)
            for row, ids in enumerate(encoded):  # right padding: real positions are unaffected by the pads
                input_ids[row, : len(prefix) + len(ids)] = torch.tensor(prefix + ids)
                attention[row, : len(prefix) + len(ids)] = 1
                pool[row, len(prefix) : len(prefix) + len(ids)] = 1
            states = hidden_state(model, input_ids.to(device), attention.to(device), layer).float().cpu()
            weights = pool.unsqueeze(-1)
            pooled.append((states * weights).sum(1) / weights.sum(1).clamp_min(1))
            picked = states[pool.bool()]
            total = picked.sum(0) if total is None else total + picked.sum(0)
            total_sq = (picked**2).sum(0) if total_sq is None else total_sq + (picked**2).sum(0)
            count += picked.shape[0]
    finally:
        model.train(was_training)
    means = torch.cat(pooled)
    embed = model.get_input_embeddings().weight[:first_sid].float().cpu()
    mu_h = total / count
    sd_h = (total_sq / count - mu_h**2).clamp_min(0).sqrt()
    if count < 2 or float(sd_h.max()) == 0.0:  # too few positions for per-dimension statistics: match the norm
        target = embed.norm(dim=1).mean()
        return means / means.norm(dim=1, keepdim=True).clamp_min(1e-8) * target
    return (means - mu_h) / sd_h.clamp_min(1e-6) * embed.std(0) + embed.mean(0)


class _StopForward(Exception):
    """Raised by a forward hook to end the forward pass once the wanted layer has run."""


def hidden_state(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int
) -> torch.Tensor:
    """`hidden_states[layer]` of the model's forward pass, without running the blocks above `layer`.

    Blocks above the wanted layer would only be thrown away (half the cost for a middle layer), so a
    hook on block `layer - 1` captures its output and stops the pass. `hidden_states[0]` (the embedding
    output) and the last entry (after the final norm) come from a full pass, as does any model whose
    decoder has no `layers` list.
    """
    blocks = None
    with contextlib.suppress(AttributeError, NotImplementedError):
        blocks = getattr(model.get_decoder(), "layers", None)
    n_layers = model.config.num_hidden_layers
    if blocks is None or len(blocks) != n_layers or not 0 < layer < n_layers:
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
        return out.hidden_states[layer]
    captured: list[torch.Tensor] = []

    def hook(module, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _StopForward

    handle = blocks[layer - 1].register_forward_hook(hook)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"block {layer - 1} of the model did not run")
    return captured[0]
