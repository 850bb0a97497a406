"""Settings of a SETRec model (identifier shape, grounding) and of its training loop."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlrec.utils.errors import ConfigError

DEFAULT_PROMPT = "A user interacted with these items, oldest first. Recommend the next item."


@dataclass
class SETRecModelConfig:
    """The shape of a SETRec identifier and how generated tokens are grounded to items."""

    num_semantic_tokens: int = field(
        default=4,
        metadata={"help": "N: semantic tokens per item, equal slices of the autoencoder's code (must divide "
                  "the last of `ae_hidden`)."},
    )
    ae_hidden: list[int] = field(
        default_factory=lambda: [512, 256, 128],
        metadata={"help": "Widths of the semantic autoencoder's encoder (ReLU between layers); the decoder mirrors "
                  "them back to the text-embedding width."},
    )
    alpha: float = field(default=0.1, metadata={"help": "Weight α of the autoencoder's reconstruction loss."})
    beta: float = field(
        default=0.5,
        metadata={"help": "Grounding weight β: item score = (1-β)·s_CF + β·Σ_k s_k (cold items: β·Σ_k s_k)."},
    )
    logit_scale: float = field(
        default=10.0,
        metadata={"help": "Initial scale of the cosine scores (a learned softmax inverse temperature)."},
    )
    max_history: int = field(default=10, metadata={"help": "Most recent history items read per user."})
    prompt: str = field(
        default=DEFAULT_PROMPT,
        metadata={"help": "Text placed before the history's item tokens (empty: none)."},
    )

    def __post_init__(self) -> None:
        if self.num_semantic_tokens < 1:
            raise ConfigError(f"num_semantic_tokens={self.num_semantic_tokens}; expected a positive integer")
        if not self.ae_hidden or any(int(w) < 1 for w in self.ae_hidden):
            raise ConfigError(f"ae_hidden={self.ae_hidden}; expected a non-empty list of positive widths")
        self.ae_hidden = [int(w) for w in self.ae_hidden]
        if self.ae_hidden[-1] % self.num_semantic_tokens:
            raise ConfigError(
                f"ae_hidden ends with {self.ae_hidden[-1]}, not divisible by num_semantic_tokens="
                f"{self.num_semantic_tokens}: the code is split into equal semantic tokens"
            )
        if self.alpha < 0:
            raise ConfigError(f"alpha={self.alpha}; expected a number >= 0")
        if not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"beta={self.beta}; expected a number in [0, 1]")
        if self.logit_scale <= 0:
            raise ConfigError(f"logit_scale={self.logit_scale}; expected a number > 0")
        if self.max_history < 1:
            raise ConfigError(f"max_history={self.max_history}; expected a positive integer")


@dataclass
class SETRecTrainConfig:
    """The training loop: steps, batch, learning rates, full fine-tuning or LoRA of the LLM."""

    max_steps: int = field(default=100, metadata={"help": "Optimizer steps (batches per process)."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Train examples per step and process."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate of the LLM (or its LoRA)."})
    head_learning_rate: float = field(
        default=1e-3,
        metadata={"help": "AdamW learning rate of the SETRec parts: projections, autoencoder, queries."},
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear learning-rate warm-up steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0: none)."})
    ae_pretrain_steps: int = field(
        default=200,
        metadata={"help": "Full-batch steps that pretrain the autoencoder on reconstruction alone before the "
                  "LLM trains, so the first semantic tokens already carry meaning (0: none)."},
    )
    use_lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of the whole LLM."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules that get LoRA adapters (peft names; `all-linear`: every linear layer)."},
    )
    logging_steps: int = field(default=10, metadata={"help": "Log the losses every this many steps."})
    seed: int = field(default=42, metadata={"help": "Seed of initialisation and example order."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even when a GPU is present."})

    def __post_init__(self) -> None:
        for name in ("max_steps", "per_device_train_batch_size", "logging_steps", "lora_r"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; expected a positive integer")
        for name in ("warmup_steps", "ae_pretrain_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}; expected an integer >= 0")
        if self.learning_rate <= 0 or self.head_learning_rate <= 0:
            raise ConfigError("learning_rate and head_learning_rate must be > 0")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("weight_decay and max_grad_norm must be >= 0")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora_dropout={self.lora_dropout}; expected a number in [0, 1)")
