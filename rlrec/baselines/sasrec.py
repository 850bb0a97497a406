"""SASRec (Kang & McAuley, 2018): a small causal self-attention model of item sequences.

It plays two roles in rlrec: the classic sequential-recommendation baseline the generative model is
compared with (`SASRecModel.score` → `rlrec.ranking.ScoreRanker`), and a source of
behavioural item embeddings for CF-aware Semantic IDs (`SASRecModel.item_embeddings`, used by
`rlrec.sid.cf`).

    model = train_sasrec(dataset, SASRecConfig(epochs=10, device="cpu"))
    scores = model.score([["1", "50", "181"]])      # (1, num_items), columns in `model.item_ids` order
    model.save("runs/ml-100k/sasrec"); model = SASRecModel.load("runs/ml-100k/sasrec")

The network: item embedding (scaled by sqrt(hidden)) + learned position embedding, `num_layers`
pre-LayerNorm blocks of causal multi-head self-attention and a point-wise feed-forward layer, a
final LayerNorm; the score of item j after a sequence is the dot product of the last hidden state
with item j's embedding (shared input/output table, as in the paper). Sequences are left-padded
to `max_len`, so the most recent item always sits at the last position.

Training rebuilds each user's training sequence from the train split (`train_sequences`), cuts it
into windows of `max_len` transitions and applies a full-softmax cross-entropy over the catalog at
every position: each train target is predicted once per epoch. The catalog of a recommendation
data set is small (thousands of items) so the full softmax costs little and needs no negative
sampling. On ML-100k (96k train examples, 1.3k items, 2 CPU cores) an epoch takes about 2 s; the
default 10 epochs at lr 5e-3 reach HR@10 ≈ 0.13 / NDCG@10 ≈ 0.06 on the leave-one-out test split
(popularity: 0.05 / 0.02), as 20 epochs at lr 3e-3 do (mean of 3 seeds each).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import rlrec
from rlrec.baselines.sequences import rated_train_sequences
from rlrec.data.schema import Example, PreparedDataset
from rlrec.utils.defaults import DEFAULT_SEED
from rlrec.utils.devices import resolve_device
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import atomic_output_dir, read_json, write_json

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.pt"
META_FILE = "sasrec.json"
PAD = 0  # index of the padding item; catalog item i (0-based in `item_ids`) has index i + 1


@dataclass
class SASRecConfig:
    """Settings of the SASRec baseline: the paper's small model; epochs and lr chosen on ML-100k."""

    hidden_size: int = field(default=64, metadata={"help": "Width of item embeddings and hidden states."})
    num_layers: int = field(default=2, metadata={"help": "Number of self-attention blocks."})
    num_heads: int = field(default=2, metadata={"help": "Attention heads per block (divides hidden_size)."})
    max_len: int = field(default=50, metadata={"help": "Most recent items the model reads per history."})
    dropout: float = field(default=0.2, metadata={"help": "Dropout on embeddings and block outputs."})
    epochs: int = field(default=10, metadata={"help": "Passes over the training sequences (the most, with "
                                                      "`valid_patience`)."})
    batch_size: int = field(default=128, metadata={"help": "Windows of `max_len` transitions per step."})
    lr: float = field(default=5e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    seed: int = field(default=DEFAULT_SEED, metadata={"help": "Seed of initialisation, shuffling and dropout."})
    device: str = field(default="auto", metadata={"help": "`auto` (CUDA if available, else CPU), `cpu`, ..."})
    liked_targets_only: bool = field(
        default=False,
        metadata={"help": "Learn only the transitions into items the user liked (the dataset's liked rule): every "
                  "item stays in the inputs, disliked and neutral ones are never a target (PNFRec's strong "
                  "baseline)."},
    )
    valid_patience: int = field(
        default=0,
        metadata={"help": "Choose the epoch on the valid split: after each epoch rank every valid user, keep the "
                  "weights of the best NDCG@10 and stop after this many epochs without a gain (0: train all "
                  "`epochs`, no valid split read)."},
    )

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "max_len", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sasrec: {name}={getattr(self, name)}; expected a positive integer")
        if self.valid_patience < 0:
            raise ConfigError(f"sasrec: valid_patience={self.valid_patience}; expected an integer >= 0")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"sasrec: hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"sasrec: dropout={self.dropout}; expected a number in [0, 1)")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"sasrec: lr={self.lr}, weight_decay={self.weight_decay}; expected lr > 0, "
                              "weight_decay >= 0")


class _Block(nn.Module):
    """Pre-LayerNorm transformer block: causal multi-head self-attention, then a point-wise feed-forward."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        # The paper's point-wise feed-forward keeps the hidden width.
        self.ff = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(hidden, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # No dropout on the attention weights: on CPU drawing a (batch, heads, n, n) mask per block
        # took a quarter of the training time, and dropout on the residual branches regularises enough.
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ff(self.ln2(x)))


class SASRecModel(nn.Module):
    """SASRec over a fixed item-id vocabulary: `score` ranks the catalog, `item_embeddings` exports it."""

    def __init__(self, item_ids: Sequence[str], config: SASRecConfig) -> None:
        super().__init__()
        self.item_ids: list[str] = [str(i) for i in item_ids]
        if not self.item_ids:
            raise DataError("sasrec: the item vocabulary is empty")
        if len(set(self.item_ids)) != len(self.item_ids):
            raise DataError("sasrec: the item vocabulary has duplicate ids")
        self.index: dict[str, int] = {item: i + 1 for i, item in enumerate(self.item_ids)}
        self.config = config
        self.train_losses: list[float] = []  # mean loss of each training epoch
        self.valid_ndcg: list[float] = []  # valid NDCG@10 after each epoch (`valid_patience` > 0)
        self.best_epoch: int | None = None  # the epoch whose weights the model holds, when chosen on valid
        d = config.hidden_size
        self.item_emb = nn.Embedding(len(self.item_ids) + 1, d, padding_idx=PAD)
        self.pos_emb = nn.Embedding(config.max_len, d)
        self.emb_drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_Block(d, config.num_heads, config.dropout)
                                    for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(d)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def device(self) -> torch.device:
        return self.item_emb.weight.device

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """Hidden states `(batch, max_len, hidden)` of left-padded index sequences `(batch, max_len)`."""
        n = seqs.shape[1]
        real = (seqs != PAD).unsqueeze(-1)
        x = self.item_emb(seqs) * math.sqrt(self.config.hidden_size) + self.pos_emb.weight[-n:]
        x = self.emb_drop(x) * real
        # Query i sees keys j <= i that are real items; a padding query sees itself, so that no row of
        # the softmax is empty (an all-masked row would turn into NaN and leak through later layers).
        causal = torch.ones(n, n, dtype=torch.bool, device=seqs.device).tril()
        mask = (causal & (seqs != PAD).unsqueeze(1)) | torch.eye(n, dtype=torch.bool, device=seqs.device)
        mask = mask.unsqueeze(1)  # (batch, 1, n, n), broadcast over heads
        for block in self.blocks:
            x = block(x, mask) * real
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the catalog (padding excluded): column j is `item_ids[j]`."""
        return hidden @ self.item_emb.weight[1:].T

    def encode(self, histories: Sequence[Sequence[str]]) -> torch.Tensor:
        """Histories → left-padded index tensor `(batch, max_len)`, most recent `max_len` known items.

        Ids outside the vocabulary are skipped: the model has nothing to say about them.
        """
        max_len = self.config.max_len
        out = torch.zeros(len(histories), max_len, dtype=torch.long)
        for row, history in enumerate(histories):
            known = [self.index[i] for i in history if i in self.index][-max_len:]
            if known:
                out[row, max_len - len(known):] = torch.tensor(known, dtype=torch.long)
        return out

    @torch.no_grad()
    def score(self, histories: Sequence[Sequence[str]], batch_size: int = 512) -> torch.Tensor:
        """Scores `(len(histories), num_items)` on the CPU, columns in `item_ids` order (higher is better).

        Runs in eval mode (no dropout), so the same model gives the same scores every time. A history
        with no known item gets a row of zeros (no preference).
        """
        was_training = self.training
        self.eval()
        try:
            rows = []
            for start in range(0, len(histories), batch_size):
                seqs = self.encode(histories[start:start + batch_size]).to(self.device)
                hidden = self(seqs)[:, -1] * (seqs[:, -1:] != PAD)  # an empty history scores 0 everywhere
                rows.append(self.logits(hidden).float().cpu())
            if not rows:
                return torch.zeros(0, self.num_items)
            return torch.cat(rows)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def item_embeddings(self, item_ids: Sequence[str] | None = None) -> np.ndarray:
        """The item embedding table `(len(item_ids), hidden)` as float32, rows in the given order.

        None: the model's own `item_ids` order. An id outside the vocabulary raises DataError.
        """
        ids = self.item_ids if item_ids is None else list(item_ids)
        unknown = [i for i in ids if i not in self.index]
        if unknown:
            raise DataError(f"sasrec: {len(unknown)} item ids are not in the model's vocabulary, e.g. "
                            f"{unknown[0]!r}")
        rows = torch.tensor([self.index[i] for i in ids], dtype=torch.long, device=self.device)
        return self.item_emb.weight[rows].float().cpu().numpy()

    def save(self, folder: str | os.PathLike) -> None:
        """Write `model.pt` (state dict) and `sasrec.json` (config, item ids, losses) atomically."""
        with atomic_output_dir(folder) as tmp:
            torch.save({k: v.cpu() for k, v in self.state_dict().items()}, tmp / WEIGHTS_FILE)
            write_json(tmp / META_FILE, {
                "model": "sasrec",
                "rlrec_version": rlrec.__version__,
                "config": dataclasses.asdict(self.config),
                "item_ids": self.item_ids,
                "train_losses": self.train_losses,
                "valid_ndcg": self.valid_ndcg,
                "best_epoch": self.best_epoch,
            })

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | None = "auto") -> SASRecModel:
        """Read a folder written by `save`, onto `device` (`auto`: CUDA when available), in eval mode."""
        folder = Path(folder)
        for name in (META_FILE, WEIGHTS_FILE):
            if not (folder / name).is_file():
                raise DataError(f"{folder}: not a saved SASRec model, missing {name}")
        meta = read_json(folder / META_FILE)
        known = {f.name for f in dataclasses.fields(SASRecConfig)}
        try:
            config_fields = dict(meta["config"])
            item_ids = list(meta["item_ids"])
        except (KeyError, TypeError) as err:
            raise DataError(f"{folder / META_FILE}: expected keys config and item_ids ({err})") from err
        unknown = sorted(set(config_fields) - known)
        if unknown:
            raise DataError(f"{folder / META_FILE}: unknown config fields {', '.join(unknown)}")
        model = cls(item_ids, SASRecConfig(**config_fields))
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise DataError(f"{folder / WEIGHTS_FILE}: weights do not match {META_FILE} ({err})") from err
        model.train_losses = list(meta.get("train_losses", []))
        model.valid_ndcg = list(meta.get("valid_ndcg", []))
        model.best_epoch = meta.get("best_epoch")
        return model.to(resolve_device(device, "sasrec")).eval()


def training_windows(sequences: Sequence[Sequence[int]], max_len: int,
                     target_sequences: Sequence[Sequence[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut index sequences into left-padded `(inputs, targets)` windows of `max_len` transitions.

    Windows are taken from the end of each sequence backwards, so the most recent transitions get
    full windows and only a sequence's oldest window is short. Target PAD marks positions without loss.
    `target_sequences` (same lengths) give the targets instead, e.g. with PAD at items never to be learned.
    """
    inputs, targets = [], []
    for n_seq, seq in enumerate(sequences):
        goal = seq if target_sequences is None else target_sequences[n_seq]
        end = len(seq) - 1  # transitions seq[t] -> seq[t + 1] for t < end
        while end > 0:
            start = max(0, end - max_len)
            x, y = [PAD] * max_len, [PAD] * max_len
            n = end - start
            x[max_len - n:] = seq[start:end]
            y[max_len - n:] = goal[start + 1:end + 1]
            inputs.append(x)
            targets.append(y)
            end = start
    if not inputs:
        return torch.zeros(0, max_len, dtype=torch.long), torch.zeros(0, max_len, dtype=torch.long)
    return torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


CACHE_DIR = "baselines"  # inside a prepared dataset folder: trained SASRec models, one folder per setting


def cache_folder(dataset: PreparedDataset, config: SASRecConfig, device: torch.device) -> Path | None:
    """Where the SASRec of these settings on this dataset is kept: `<dataset>/baselines/sasrec-<key>`, the key a
    hash of the settings, the device type and the bytes of the train split and the catalog (and of the valid split
    when it chooses the epoch); None in memory."""
    if dataset.folder is None:
        return None
    digest = hashlib.sha256()
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "device"}
    digest.update(json.dumps({"settings": settings, "device": device.type, "version": 1}, sort_keys=True).encode())
    for name in ("train.jsonl", "items.jsonl") + (("valid.jsonl",) if config.valid_patience else ()):
        path = Path(dataset.folder) / name
        if not path.is_file():
            return None
        digest.update(path.read_bytes())
    return Path(dataset.folder) / CACHE_DIR / f"sasrec-{digest.hexdigest()[:16]}"


def train_sasrec(dataset: PreparedDataset, config: SASRecConfig | None = None,
                 show_progress: bool = True, cache: bool = True) -> SASRecModel:
    """Train SASRec on `dataset.train`; the vocabulary is the whole catalog (`dataset.items` order).

    Items that never occur in train keep (nearly) their random initial embedding and are pushed
    down by the softmax, as any untrained item would be. The run is a pure function of
    `config.seed` on a given device (global random state is left untouched), so with `cache` a
    dataset loaded from a folder keeps the trained model there (`cache_folder`) and the next stage
    of the pipeline (the SFT and GRPO end evaluations, `rlrec evaluate`, SETRec, CF SIDs) loads it
    instead of training the same model again.
    """
    config = config or SASRecConfig()
    device = resolve_device(config.device, "sasrec")
    folder = cache_folder(dataset, config, device) if cache else None
    if folder is not None and folder.is_dir():
        try:
            model = SASRecModel.load(folder, device=str(device))
            logger.info("sasrec: loaded the model trained with these settings from %s", folder)
            return model
        except DataError as err:
            logger.warning("sasrec: ignoring the unreadable cached model (%s); training again", err)
    model = _train(dataset, config, device, show_progress)
    if folder is not None:
        try:
            model.save(folder)
        except OSError as err:  # a read-only dataset folder, or another process saving the same model
            logger.info("sasrec: not cached in %s (%s)", folder, err)
    return model


def _train(dataset: PreparedDataset, config: SASRecConfig, device: torch.device,
           show_progress: bool) -> SASRecModel:
    from tqdm.auto import tqdm

    item_ids = list(dataset.items)
    index = {item: i + 1 for i, item in enumerate(item_ids)}
    sequences, goals = [], []
    rule = dataset.feedback() if config.liked_targets_only else None
    if config.liked_targets_only and rule is None:
        raise DataError(f"{dataset.split_path('train')}: sasrec: liked_targets_only needs rated data (the manifest "
                        "has no `ratings`)")
    for seq, ratings in rated_train_sequences(dataset.train):
        try:
            sequences.append([index[i] for i in seq])
        except KeyError as err:
            raise DataError(f"{dataset.split_path('train')}: sasrec: train item {err.args[0]!r} is not in the "
                            "catalog") from err
        if rule is not None:
            goals.append([i if rule.label(r) == "liked" else PAD for i, r in zip(sequences[-1], ratings, strict=True)])
    inputs, targets = training_windows(sequences, config.max_len, goals if rule is not None else None)
    if not len(inputs):
        raise DataError(f"{dataset.split_path('train')}: sasrec: the train split has no transition to learn from "
                        "(every history is empty); expected examples with a history")
    n_targets = int((targets != PAD).sum())
    logger.info("sasrec: %d items, %d train sequences -> %d windows, %d targets, on %s", len(item_ids),
                len(sequences), len(inputs), n_targets, device)

    chooser = None
    if config.valid_patience:
        if dataset.valid:
            chooser = _ValidChooser(dataset.valid, config.valid_patience)
        else:
            logger.warning("sasrec: valid_patience=%d but the valid split is empty; training all %d epochs",
                           config.valid_patience, config.epochs)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        model = SASRecModel(item_ids, config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98),
                                      weight_decay=config.weight_decay)
        shuffle = torch.Generator().manual_seed(config.seed)
        steps = math.ceil(len(inputs) / config.batch_size)
        model.train()
        with tqdm(total=config.epochs * steps, desc="sasrec", unit="step", mininterval=1.0,
                  disable=not show_progress) as bar:
            for epoch in range(config.epochs):
                order = torch.randperm(len(inputs), generator=shuffle)
                total, count = 0.0, 0
                for start in range(0, len(order), config.batch_size):
                    rows = order[start:start + config.batch_size]
                    x, y = inputs[rows].to(device), targets[rows].to(device)
                    keep = y != PAD
                    hidden = model(x)[keep]
                    loss = F.cross_entropy(model.logits(hidden), y[keep] - 1)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * int(keep.sum())
                    count += int(keep.sum())
                    bar.update(1)
                model.train_losses.append(total / count)
                bar.set_postfix(epoch=epoch + 1, loss=f"{total / count:.4f}")
                if chooser is not None and chooser.after_epoch(model, epoch + 1):
                    break
    if chooser is not None:
        chooser.restore(model)
    model.eval()
    return model


class _ValidChooser:
    """Early stopping on valid NDCG@10: SASRec is small (a few MB), so the best weights are kept in memory."""

    def __init__(self, examples: Sequence[Example], patience: int, k: int = 10) -> None:
        self.histories = [ex.history for ex in examples]
        self.targets = [ex.target for ex in examples]
        self.patience, self.k = patience, k
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_score = -1.0
        self.best_epoch = 0

    def after_epoch(self, model: SASRecModel, epoch: int) -> bool:
        """Score the epoch's weights on valid; True when training should stop."""
        score = valid_ndcg(model, self.histories, self.targets, self.k)
        model.valid_ndcg.append(score)
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return epoch - self.best_epoch >= self.patience

    def restore(self, model: SASRecModel) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        model.best_epoch = self.best_epoch
        logger.info("sasrec: epoch %d chosen on valid (NDCG@%d %.4f) of %d trained", self.best_epoch, self.k,
                    self.best_score, len(model.valid_ndcg))


def valid_ndcg(model: SASRecModel, histories: Sequence[Sequence[str]], targets: Sequence[str], k: int = 10) -> float:
    """Mean NDCG@k of the targets among the whole catalog (the evaluation's protocol: no item excluded; a target
    outside the vocabulary counts 0; ties rank the target below the items scored equal)."""
    if not targets:
        return 0.0
    scores = model.score(histories)
    total = 0.0
    for row, target in enumerate(targets):
        column = model.index.get(target)
        if column is None:
            continue
        rank = int((scores[row] >= scores[row, column - 1]).sum()) - 1  # items scored at least as high, minus itself
        if rank < k:
            total += 1.0 / math.log2(rank + 2)
    return total / len(targets)
