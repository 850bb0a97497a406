"""Evaluate a trained checkpoint on a split: the settings, the examples, the baselines and compared models
on the same examples, the report (HR@K and NDCG@K overall, warm/cold, head/tail, paired intervals).

`rlrec evaluate` (`rlrec/scripts/evaluate.py`) is a thin command over `evaluate_checkpoint`; the training
stages' end-of-training evaluation (`rlrec.training.end_eval`), `rlrec setrec`, `rlrec rewards` and valid
selection use the same functions, so every number in a manifest is computed the way `rlrec evaluate` computes it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlrec
from rlrec.data.schema import Example, PreparedDataset
from rlrec.data.split import cold_items
from rlrec.evaluation import (
    BASELINES,
    DEFAULT_K_VALUES,
    EVAL_SPLITS,
    PopularityRecommender,
    Recommender,
    ScorerRecommender,
    build_report,
    evaluate_recommender,
    format_table,
    head_items,
    item_popularity,
    write_report,
)
from rlrec.evaluation.report import main_k
from rlrec.sid.index import INDEX_FILE, SIDIndex
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import read_json

logger = logging.getLogger(__name__)

MODEL_NAME = "model"  # the report entry of the evaluated checkpoint


@dataclass
class EvalSettings:
    """How a model is evaluated: split, cut-offs, beam search, subset, baselines (shared with the SFT stage)."""

    split: str = field(default="test", metadata={"help": "Split to evaluate: `valid` or `test`."})
    k_values: list[int] = field(
        default_factory=lambda: list(DEFAULT_K_VALUES),
        metadata={"help": "Cut-offs K of HR@K and NDCG@K; the largest must not exceed `num_beams`."},
    )
    num_beams: int = field(
        default=20, metadata={"help": "Beams of the constrained beam search: the most items ranked per user."}
    )
    batch_size: int = field(default=32, metadata={"help": "Users decoded together (prompts per forward pass)."})
    max_history: int | None = field(
        default=None,
        metadata={"help": "Keep only the most recent items of each history in the prompt; None: as prepared."},
    )
    max_examples: int | None = field(
        default=None,
        metadata={
            "help": "Evaluate a fixed random subset of this many users (drawn with `seed`, same for every "
            "model); None: the whole split."
        },
    )
    baselines: list[str] = field(
        default_factory=lambda: list(BASELINES),
        metadata={"help": "Baselines ranked on the same examples: `popularity`, `sasrec` (none: an empty list)."},
    )
    head_fraction: float | None = field(
        default=0.2,
        metadata={"help": "Most popular fraction of train items that counts as `head` (the rest `tail`); "
                  "None: no head/tail breakdown."},
    )
    cold_pool: bool = field(
        default=True,
        metadata={"help": "Also rank each user whose target is cold among the cold items only (items in no train "
                  "example), the cold-start protocol of SETRec and similar papers: group `cold_pool`. The `cold` "
                  "group ranks the same users among all items."},
    )
    sasrec_epochs: int = field(default=10, metadata={"help": "Training epochs of the SASRec baseline."})
    sasrec_max_len: int = field(default=50, metadata={"help": "Most recent items SASRec reads per history."})
    sasrec_hidden_size: int = field(default=64, metadata={"help": "Embedding / hidden width of SASRec."})
    seed: int = field(default=42, metadata={"help": "Seed of the example subset and of SASRec's training."})
    plot: bool = field(default=True, metadata={"help": "Also write `metrics.png` next to `report.json`."})

    def __post_init__(self) -> None:
        if self.split not in EVAL_SPLITS:
            raise ConfigError(f"split={self.split!r}; expected one of {', '.join(EVAL_SPLITS)}")
        if not self.k_values or any(int(k) < 1 for k in self.k_values):
            raise ConfigError(f"k_values={self.k_values}; expected positive integers")
        self.k_values = sorted({int(k) for k in self.k_values})
        for name in ("num_beams", "batch_size", "sasrec_epochs", "sasrec_max_len", "sasrec_hidden_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; expected a positive integer")
        if self.k_values[-1] > self.num_beams:
            raise ConfigError(
                f"k_values go up to {self.k_values[-1]} but num_beams={self.num_beams}: beam search ranks at most "
                "num_beams items; raise num_beams or lower the largest K"
            )
        for name in ("max_history", "max_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value}; expected a positive integer or None")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ConfigError(f"baselines: unknown {unknown}; expected any of {', '.join(BASELINES)}")
        if self.head_fraction is not None and not 0.0 < self.head_fraction < 1.0:
            raise ConfigError(f"head_fraction={self.head_fraction}; expected a number in (0, 1) or None")


@dataclass
class EvaluateConfig(EvalSettings):
    """Settings of the `rlrec evaluate` stage: which checkpoint, on which data, written where."""

    model_path: str = field(
        default="runs/ml-100k/sft",
        metadata={"help": "Checkpoint folder: a full model with its tokenizer, or a LoRA adapter with its tokenizer."},
    )
    dataset_dir: str = field(
        default="runs/ml-100k/data", metadata={"help": "Prepared dataset folder written by `rlrec prepare`."}
    )
    sid_dir: str | None = field(
        default=None,
        metadata={"help": "Folder with the SID index the model was trained with; None: `<model_path>/sid`."},
    )
    output_dir: str | None = field(
        default=None,
        metadata={"help": "Folder for report.json and metrics.png; None: `<model_path>/eval/<split>`."},
    )
    device: str = field(default="auto", metadata={"help": "`auto` (CUDA if available, else CPU), `cpu`, `cuda`."})
    dtype: str = field(
        default="auto", metadata={"help": "Model weights dtype: `auto` (as saved), `float32`, `bfloat16`, ..."}
    )
    model_name: str = field(default=MODEL_NAME, metadata={"help": "Name of the checkpoint in the report."})
    compare: list[str] = field(
        default_factory=list,
        metadata={"help": "Other checkpoints ranked on the same examples, as NAME=PATH (e.g. sft=runs/x/sft), "
                  "shown side by side; SID checkpoints must use the same SID index, and a SETRec folder (`rlrec "
                  "setrec`) is ranked by its own grounding, so the two identifier families compare directly."},
    )

    def compared_models(self) -> dict[str, str]:
        """`compare` as {name: path}; a bare path is named after its folder."""
        out: dict[str, str] = {}
        for entry in self.compare:
            name, _, path = entry.partition("=") if "=" in entry else (Path(entry).name, "", entry)
            if not name or not path:
                raise ConfigError(f"compare: expected NAME=PATH, got {entry!r}")
            if name in out or name == self.model_name or name in self.baselines:
                raise ConfigError(f"compare: the name {name!r} is used twice in the report")
            out[name] = path
        return out

    def resolved_sid_dir(self) -> Path:
        return Path(self.sid_dir) if self.sid_dir else Path(self.model_path) / "sid"

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path(self.model_path) / "eval" / self.split


def select_examples(examples: Sequence[Example], max_examples: int | None, seed: int) -> list[Example]:
    """All examples, or a seeded random subset of `max_examples` kept in split order (same for every model)."""
    if max_examples is None or max_examples >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), max_examples))
    return [examples[i] for i in keep]


def check_index_covers(index: SIDIndex, examples: Sequence[Example], split: str, source: str = "SID index") -> None:
    """Raise DataError when a target of `examples` has no SID: the model could never generate it."""
    missing = [ex.target for ex in examples if ex.target not in index]
    if missing:
        raise DataError(
            f"{source} does not match the dataset: {len(missing)} of {len(examples)} {split} targets have no SID "
            f"(first: {missing[0]!r}); use the SID index built from this dataset"
        )


def _progress_bar(total: int, desc: str, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="user", disable=not show, mininterval=1.0, dynamic_ncols=True)


def evaluate_timed(name: str, recommender: Recommender, examples: Sequence[Example], settings: EvalSettings,
                   batch_size: int, head: set[str] | None, show_progress: bool,
                   seconds: dict[str, float], cold_pool: Sequence[str] | None = None,
                   ranks_out: list[int | None] | None = None) -> dict[str, Any]:
    """`evaluate_recommender` under a progress bar named after the model; its wall time goes to `seconds`.

    With `cold_pool` (the cold items), the users whose target is cold are ranked again among those items only,
    as group `cold_pool`, by recommenders that can rank within a pool (`restricted_to`); others are skipped
    with a log line.
    """
    start = time.perf_counter()
    cold = [ex for ex in examples if ex.cold] if cold_pool else []
    restrict = getattr(recommender, "restricted_to", None)
    if cold and restrict is None:
        logger.info("%s cannot rank within a candidate pool: no cold_pool group", name)
        cold = []
    with _progress_bar(len(examples) + len(cold), f"evaluate {name}", show_progress) as bar:
        metrics = evaluate_recommender(recommender, examples, settings.k_values, batch_size=batch_size, head=head,
                                       on_batch=bar.update, ranks_out=ranks_out)
        if cold:
            pooled = evaluate_recommender(restrict(cold_pool), cold, settings.k_values, batch_size=batch_size,
                                          on_batch=bar.update)
            metrics["cold_pool"] = pooled["all"]
            metrics["counts"]["cold_pool"] = len(cold)
    seconds[name] = round(time.perf_counter() - start, 2)
    return metrics


def cold_pool_items(dataset: PreparedDataset, settings: EvalSettings) -> list[str] | None:
    """The candidates of the `cold_pool` group (items no train example holds); None when off or there are none."""
    if not settings.cold_pool:
        return None
    return cold_items(dataset.items, dataset.train) or None


def baseline_recommenders(dataset: PreparedDataset, settings: EvalSettings, device: str = "auto",
                          show_progress: bool = True) -> dict[str, Recommender]:
    """The baselines named in `settings.baselines`, fitted on the train split."""
    recommenders: dict[str, Recommender] = {}
    for name in settings.baselines:
        if name == "popularity":
            recommenders[name] = PopularityRecommender.from_examples(dataset.train)
        elif name == "sasrec":
            from rlrec.baselines.sasrec import SASRecConfig, train_sasrec

            config = SASRecConfig(epochs=settings.sasrec_epochs, max_len=settings.sasrec_max_len,
                                  hidden_size=settings.sasrec_hidden_size, seed=settings.seed, device=device)
            model = train_sasrec(dataset, config, show_progress=show_progress)
            recommenders[name] = ScorerRecommender(model.score, model.item_ids)
    return recommenders


def evaluate_model(model: Any, tokenizer: Any, index: SIDIndex, dataset: PreparedDataset,
                   settings: EvalSettings | None = None, *, output_dir: str | Path | None = None,
                   metadata: dict[str, Any] | None = None, device: str = "auto",
                   model_name: str = MODEL_NAME, show_progress: bool = True,
                   others: Mapping[str, Callable[[SIDIndex, EvalSettings], Any]] | None = None,
                   ) -> dict[str, Any]:
    """Evaluate `model` (constrained beam search) and the baselines on one split; return the report.

    The model is evaluated where it is (its device and dtype) and left in the training mode it was
    in, so the SFT stage can call this on its final model. Every recommender ranks the same examples.
    With `output_dir`, `report.json` (and `metrics.png`) are written there; `device` is SASRec's;
    `model_name` is the model's entry in the report (`model`; the SFT stage may say `sft`). `others` maps
    more names to loaders of recommenders (`load_compared` reads SID checkpoints and SETRec folders): each
    is loaded, ranks the same examples, and is freed.
    """
    from rlrec.evaluation.sid_recommender import SIDRecommender

    settings = settings or EvalSettings()
    examples = select_examples(dataset.split(settings.split), settings.max_examples, settings.seed)
    if not examples:
        raise DataError(f"the {settings.split} split has no examples to evaluate")
    check_index_covers(index, examples, settings.split)
    head = None
    if settings.head_fraction is not None:
        head = head_items(item_popularity(dataset.train), settings.head_fraction)

    # Decoding a batch costs its longest prompt: evaluate the model on examples sorted by history length.
    # The metrics are averages over examples, so the order does not change them.
    by_length = sorted(examples, key=lambda ex: len(ex.history))
    recommender = SIDRecommender(model, tokenizer, index, num_beams=settings.num_beams,
                                 batch_size=settings.batch_size, max_history=settings.max_history)
    seconds: dict[str, float] = {}
    if model_name in settings.baselines:
        raise ConfigError(f"model_name={model_name!r} is also the name of a baseline")
    pool = cold_pool_items(dataset, settings)
    ranks: dict[str, list[int | None]] = {name: [] for name in [model_name, *(others or {}), *settings.baselines]}
    models = {model_name: evaluate_timed(model_name, recommender, by_length, settings, settings.batch_size, head,
                                         show_progress, seconds, pool, ranks[model_name])}
    for name, load in (others or {}).items():
        other_recommender = load(index, settings)
        models[name] = evaluate_timed(name, other_recommender, by_length, settings, settings.batch_size, head,
                                      show_progress, seconds, pool, ranks[name])
        del other_recommender
    for name, baseline in baseline_recommenders(dataset, settings, device, show_progress).items():
        models[name] = evaluate_timed(name, baseline, examples, settings, 1024, head, show_progress, seconds, pool,
                                      ranks[name])
    sections = paired_sections(examples, by_length, ranks, model_name, list(others or {}), settings)

    meta = {
        "rlrec_version": rlrec.__version__,
        "settings": dataclasses.asdict(settings),
        "num_examples": len(examples),
        "split_examples": len(dataset.split(settings.split)),
        "num_items_in_index": len(index),
        "device": str(recommender.device),
        "seconds": seconds,
        **(metadata or {}),
    }
    if output_dir is not None:
        return write_report(output_dir, settings.split, models, settings.k_values, meta, plot=settings.plot,
                            sections=sections)
    return build_report(settings.split, models, settings.k_values, meta, sections)


def paired_sections(examples: Sequence[Example], by_length: Sequence[Example], ranks: dict[str, list[int | None]],
                    main: str, compared: Sequence[str], settings: EvalSettings) -> dict[str, Any]:
    """`per_user` (every model's target rank per user, in split order) and `paired` (each compared model and
    baseline against `main`: per-user difference of NDCG and HR at the main K with a bootstrap 95% interval).

    The models were evaluated in two orders (SID models sorted by history length, baselines in split order);
    both are put back into split order before anything is paired.
    """
    from rlrec.evaluation.paired import paired_comparison

    position = {id(ex): i for i, ex in enumerate(examples)}
    aligned: dict[str, list[int | None]] = {}
    for name, values in ranks.items():
        if name in (main, *compared):
            row: list[int | None] = [None] * len(examples)
            for ex, rank in zip(by_length, values, strict=True):
                row[position[id(ex)]] = rank
            aligned[name] = row
        else:
            aligned[name] = list(values)
    k = main_k(settings.k_values)
    return {"paired": {"main": main, "k": k, "against": paired_comparison(aligned, main, k, seed=settings.seed)},
            "per_user": {"user_ids": [ex.user_id for ex in examples], "ranks": aligned}}


def load_compared(path: str | Path, index: SIDIndex, settings: EvalSettings, *, device: Any,
                  dtype: str, max_history: int | None = None) -> Any:
    """The recommender of a compared model: a SETRec folder (`rlrec setrec`), else a SID checkpoint.

    SETRec models need no SID index (they score items directly), so `rlrec evaluate` can set the two
    identifier families side by side on the same examples. A SID checkpoint is decoded with its own index
    (`<path>/sid`, the one it was trained with), which may differ from the main model's (other quantizers);
    `index` is used only for a folder without one.
    """
    from rlrec.evaluation.sid_recommender import SIDRecommender
    from rlrec.models.checkpoint import load_checkpoint

    manifest = Path(path) / "manifest.json"
    if manifest.is_file() and read_json(manifest).get("stage") == "setrec":
        from rlrec.setrec import SETRecRecommender, load_setrec

        return SETRecRecommender(load_setrec(path, device=device, dtype=dtype), batch_size=settings.batch_size)
    own = Path(path) / "sid"
    if (own / INDEX_FILE).is_file():
        index = SIDIndex.load(own)
    model, tokenizer = load_checkpoint(path, device=device, dtype=dtype)
    # Each checkpoint is asked the way it was trained, unless the run set a history cap for all of them.
    max_history = max_history if max_history is not None else trained_max_history(path)
    return SIDRecommender(model, tokenizer, index, num_beams=settings.num_beams, batch_size=settings.batch_size,
                          max_history=max_history)


def load_index(config: EvaluateConfig) -> SIDIndex:
    folder = config.resolved_sid_dir()
    if not (folder / INDEX_FILE).is_file() and not folder.is_file():
        hint = "" if config.sid_dir else " (the default `<model_path>/sid`; set sid_dir to the `rlrec sid` output)"
        raise ConfigError(f"{folder}: no SID index ({INDEX_FILE}) found{hint}")
    return SIDIndex.load(folder)


def trained_max_history(model_path: str | Path) -> int | None:
    """The history cap the model's prompts were trained with (SFT manifest), so evaluation asks the same way."""
    manifest = Path(model_path) / "manifest.json"
    if not manifest.is_file():
        return None
    value = read_json(manifest).get("prompt_max_history")
    if value is not None:
        logger.info("prompts keep the last %d history items, as in training (%s)", value, manifest)
    return value


def evaluate_checkpoint(config: EvaluateConfig) -> dict[str, Any]:
    """Evaluate `config.model_path` (and `compare`d models) on `config.split`; write and return the report."""
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.utils.devices import resolve_device

    device = resolve_device(config.device)
    index = load_index(config)
    dataset = PreparedDataset.load(config.dataset_dir)
    dataset.require_examples(config.split)
    # Cheap checks first: a wrong index or data should fail before the model is loaded.
    check_index_covers(index, dataset.split(config.split), config.split, f"SID index {config.resolved_sid_dir()}")
    compared = config.compared_models()
    model, tokenizer = load_checkpoint(config.model_path, device=device, dtype=config.dtype)
    settings = EvalSettings(**{f.name: getattr(config, f.name) for f in dataclasses.fields(EvalSettings)})
    if settings.max_history is None:
        settings.max_history = trained_max_history(config.model_path)
    others = {name: functools.partial(load_compared, path, device=device, dtype=config.dtype,
                                      max_history=config.max_history)
              for name, path in compared.items()}
    return evaluate_model(
        model, tokenizer, index, dataset, settings, output_dir=config.resolved_output_dir(), device=str(device),
        model_name=config.model_name, others=others,
        metadata={"model_path": str(config.model_path), "dataset_dir": str(config.dataset_dir),
                  "sid_dir": str(config.resolved_sid_dir()), "dtype": str(model.dtype)},
    )


def print_summary(report: dict[str, Any], config: EvaluateConfig, seconds: float) -> None:
    """The table, the paired intervals and where the report went, as `rlrec evaluate` prints them."""
    print(format_table(report["models"], k=main_k(report["k_values"])))
    if report.get("paired", {}).get("against"):
        from rlrec.evaluation.paired import format_paired

        print(format_paired(report["paired"]["against"], config.model_name))
    print(f"rlrec evaluate: {report['counts']['all']} {config.split} users in {seconds:.1f}s; "
          f"report written to {config.resolved_output_dir()}", flush=True)
