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
from rlrec.data.feedback import FeedbackRule
from rlrec.data.schema import Example, PreparedDataset
from rlrec.data.split import cold_items
from rlrec.evaluation import (
    build_report,
    evaluate_ranker,
    format_table,
    head_items,
    item_popularity,
    write_report,
)
from rlrec.evaluation.beyond import BeyondAccuracyAccumulator, ItemSpace
from rlrec.evaluation.report import format_beyond_table, format_feedback_table, main_k
from rlrec.evaluation.settings import EvalSettings
from rlrec.ranking import PopularityRanker, Ranker, RankingSpec, ScoreRanker, load_ranker, load_sid_index
from rlrec.sid.index import INDEX_FILE, SIDIndex
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.stage_fields import ModelDataArguments

logger = logging.getLogger(__name__)

MODEL_NAME = "model"  # the report entry of the evaluated checkpoint


@dataclass
class EvaluateConfig(ModelDataArguments, EvalSettings):
    """Settings of the `rlrec evaluate` stage: which checkpoint, on which data, written where."""

    model_path: str = field(
        default="runs/ml-100k/sft",
        metadata={"help": "Checkpoint folder: a full model with its tokenizer, or a LoRA adapter with its tokenizer."},
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

    rerank: list[str] = field(
        default_factory=list,
        metadata={"help": "Re-ranking baselines of the evaluated model, as OBJECTIVE=WEIGHT: novelty=0.3 (score + "
                  "0.3 x scaled novelty), tail=0.5 (score + 0.5 for a tail item), mmr=0.2 (maximal marginal "
                  "relevance in the SID index's text-embedding space), rating=0.5 (score + 0.5 x the item's scaled, "
                  "shrunk mean train rating; rated data), each over the model's top rerank_top_n; "
                  "reported as `<model_name>+novelty0.3` beside the model (rlrec/ranking/rerank.py)."},
    )
    rerank_top_n: int = field(default=50, metadata={"help": "Candidates a re-ranking baseline re-orders."})

    def __post_init__(self) -> None:
        super().__post_init__()
        from rlrec.ranking.rerank import parse_rerank

        if self.rerank_top_n < 1:
            raise ConfigError(f"rerank_top_n={self.rerank_top_n}; expected a positive integer")
        if self.rerank_top_n < self.k_values[-1]:
            raise ConfigError(f"rerank_top_n={self.rerank_top_n} is below the largest K ({self.k_values[-1]}): a "
                              "re-ranker re-orders at least the K items it shows")
        self.rerank = [entry for value in self.rerank for entry in str(value).split(",") if entry.strip()]
        for entry in self.rerank:
            parse_rerank(entry)

    def reranked_names(self) -> dict[str, tuple[str, float]]:
        """`{report name: (objective, weight)}` of the re-ranking baselines."""
        from rlrec.ranking.rerank import parse_rerank

        out = {}
        for entry in self.rerank:
            objective, weight = parse_rerank(entry)
            out[f"{self.model_name}+{objective}{weight:g}"] = (objective, weight)
        return out

    def reranked_objectives(self) -> set[str]:
        return {objective for objective, _ in self.reranked_names().values()}

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


def evaluate_timed(name: str, ranker: Ranker, examples: Sequence[Example], settings: EvalSettings,
                   batch_size: int, head: set[str] | None, show_progress: bool,
                   seconds: dict[str, float], cold_pool: Sequence[str] | None = None,
                   ranks_out: list[int | None] | None = None,
                   beyond: BeyondAccuracyAccumulator | None = None,
                   feedback: FeedbackRule | None = None) -> dict[str, Any]:
    """`evaluate_ranker` under a progress bar named after the model; its wall time goes to `seconds`.

    With `cold_pool` (the cold items), the users whose target is cold are ranked again among those items only,
    as group `cold_pool` (items the ranker cannot rank are left out of its pool: popularity ranks none).
    """
    start = time.perf_counter()
    cold = [ex for ex in examples if ex.cold] if cold_pool else []
    with _progress_bar(len(examples) + len(cold), f"evaluate {name}", show_progress) as bar:
        metrics = evaluate_ranker(ranker, examples, settings.k_values, batch_size=batch_size, head=head,
                                  on_batch=bar.update, ranks_out=ranks_out, beyond=beyond, feedback=feedback)
        if cold:
            pooled = evaluate_ranker(ranker, cold, settings.k_values, batch_size=batch_size, on_batch=bar.update,
                                     pool=cold_pool)
            metrics["cold_pool"] = pooled["all"]
            metrics["counts"]["cold_pool"] = len(cold)
    seconds[name] = round(time.perf_counter() - start, 2)
    return metrics


def cold_pool_items(dataset: PreparedDataset, settings: EvalSettings) -> list[str] | None:
    """The candidates of the `cold_pool` group (items no train example holds); None when off or there are none."""
    if not settings.cold_pool:
        return None
    return cold_items(dataset.items, dataset.train) or None


def baseline_rankers(dataset: PreparedDataset, settings: EvalSettings, device: str = "auto",
                     show_progress: bool = True) -> dict[str, Ranker]:
    """The baselines named in `settings.baselines`, fitted on the train split."""
    rankers: dict[str, Ranker] = {}
    for name in settings.baselines:
        if name == "popularity":
            rankers[name] = PopularityRanker.from_examples(dataset.train)
        elif name in ("sasrec", "sasrec_liked"):
            from rlrec.baselines.sasrec import SASRecConfig, train_sasrec

            config = SASRecConfig(epochs=settings.sasrec_epochs, max_len=settings.sasrec_max_len,
                                  hidden_size=settings.sasrec_hidden_size, seed=settings.seed, device=device,
                                  valid_patience=settings.sasrec_valid_patience,
                                  liked_targets_only=name == "sasrec_liked")
            model = train_sasrec(dataset, config, show_progress=show_progress)
            rankers[name] = ScoreRanker(model.score, model.item_ids, model=model)
    return rankers


def baseline_training(baselines: Mapping[str, Ranker]) -> dict[str, Any]:
    """What the report says of how a trained baseline was fitted: SASRec's epochs and the one chosen on valid."""
    out = {}
    for name in ("sasrec", "sasrec_liked"):
        sasrec = getattr(baselines.get(name), "model", None)
        if sasrec is not None and hasattr(sasrec, "train_losses"):
            out[f"{name}_training"] = {"epochs_trained": len(sasrec.train_losses), "best_epoch": sasrec.best_epoch,
                                       "valid_ndcg@10": sasrec.valid_ndcg}
    return out


def evaluate_model(model: Any, tokenizer: Any, index: SIDIndex, dataset: PreparedDataset,
                   settings: EvalSettings | None = None, *, output_dir: str | Path | None = None,
                   metadata: dict[str, Any] | None = None, device: str = "auto",
                   model_name: str = MODEL_NAME, show_progress: bool = True,
                   others: Mapping[str, Callable[[SIDIndex, EvalSettings], Ranker]] | None = None,
                   ) -> dict[str, Any]:
    """Evaluate a SID `model` and the baselines on one split; return the report (`evaluate_rankers`)."""
    from rlrec.ranking import SIDRanker

    settings = settings or EvalSettings()
    ranker = SIDRanker(model, tokenizer, index, num_beams=settings.num_beams, batch_size=settings.batch_size,
                       max_history=settings.max_history)
    examples = select_examples(dataset.split(settings.split), settings.max_examples, settings.seed)
    check_index_covers(index, examples, settings.split)
    loaders = {name: functools.partial(load, index, settings) for name, load in (others or {}).items()}
    return evaluate_rankers(model_name, ranker, dataset, settings, output_dir=output_dir,
                            metadata={"num_items_in_index": len(index), **(metadata or {})}, device=device,
                            show_progress=show_progress, others=loaders, item_vectors=index_vectors(index))


def evaluate_rankers(model_name: str, ranker: Ranker, dataset: PreparedDataset, settings: EvalSettings, *,
                     output_dir: str | Path | None = None, metadata: dict[str, Any] | None = None,
                     device: str = "auto", show_progress: bool = True,
                     others: Mapping[str, Callable[[], Ranker]] | None = None,
                     baselines: Mapping[str, Ranker] | None = None,
                     item_vectors: ItemVectors | None = None) -> dict[str, Any]:
    """Rank one split with `ranker`, the `others` (loaded one at a time, then freed) and the baselines (fitted
    here unless given) on the same examples; return the report, with every model paired against the main one.

    With `output_dir`, `report.json` (and `metrics.png`) are written there; `device` is SASRec's. Every model's
    lists are also described by the beyond-accuracy metrics (`rlrec.evaluation.beyond`), diversity in the space
    of `item_vectors` (ids, matrix, what they are) when given.
    """
    examples = select_examples(dataset.split(settings.split), settings.max_examples, settings.seed)
    if not examples:
        raise DataError(f"the {settings.split} split has no examples to evaluate")
    if model_name in settings.baselines:
        raise ConfigError(f"model name {model_name!r} is also the name of a baseline")
    popularity = item_popularity(dataset.train)
    head = head_items(popularity, settings.head_fraction) if settings.head_fraction is not None else None
    pool = cold_pool_items(dataset, settings)
    feedback = dataset.feedback()
    seconds: dict[str, float] = {}
    ranks: dict[str, list[int | None]] = {}
    space = item_space(dataset, settings.head_fraction, item_vectors, popularity) if settings.beyond_accuracy \
        else None
    beyond: dict[str, BeyondAccuracyAccumulator] = {}

    def run(name: str, ranker: Ranker, batch_size: int) -> dict[str, Any]:
        ranks[name] = []
        if space is not None:
            beyond[name] = BeyondAccuracyAccumulator(space, settings.k_values)
        return evaluate_timed(name, ranker, examples, settings, batch_size, head, show_progress, seconds, pool,
                              ranks[name], beyond.get(name), feedback)

    # The rankers batch (and group by length) themselves; 256 users a call keeps the progress bar moving.
    models = {model_name: run(model_name, ranker, 256)}
    for name, load in (others or {}).items():
        other = load()
        models[name] = run(name, other, 256)
        del other
    if baselines is None:
        baselines = baseline_rankers(dataset, settings, device, show_progress)
    for name, baseline in baselines.items():
        models[name] = run(name, baseline, 1024)
    sections = paired_sections(examples, ranks, model_name, settings, beyond, feedback)
    meta = {
        "rlrec_version": rlrec.__version__,
        "settings": dataclasses.asdict(settings),
        "num_examples": len(examples),
        "split_examples": len(dataset.split(settings.split)),
        "device": str(ranker.device),
        "seconds": seconds,
        "diversity_space": space.vector_source if space is not None else None,
        **baseline_training(baselines),
        **(metadata or {}),
    }
    if output_dir is not None:
        return write_report(output_dir, settings.split, models, settings.k_values, meta, plot=settings.plot,
                            sections=sections)
    return build_report(settings.split, models, settings.k_values, meta, sections)


def paired_sections(examples: Sequence[Example], ranks: dict[str, list[int | None]], main: str,
                    settings: EvalSettings,
                    beyond: Mapping[str, BeyondAccuracyAccumulator] | None = None,
                    feedback: FeedbackRule | None = None) -> dict[str, Any]:
    """`per_user` (every model's target rank per user, in split order, and its beyond-accuracy values at the main
    K), `paired` (each other model against `main`: per-user difference of NDCG, HR and the beyond-accuracy
    metrics at the main K, each with a bootstrap 95% interval; on rated data also within the liked and disliked
    targets and of the liked - disliked gap) and, on rated data, `feedback` (the rule and each model's gap)."""
    from rlrec.evaluation.paired import paired_comparison, paired_values

    k = main_k(settings.k_values)
    against = paired_comparison(ranks, main, k, seed=settings.seed)
    per_user: dict[str, Any] = {"user_ids": [ex.user_id for ex in examples], "ranks": ranks}
    if beyond:
        values = {}
        for name, acc in beyond.items():
            columns = acc.per_user(k)
            values[name] = {f"{metric}@{k}": columns[metric] for metric in acc.metrics()}
        for name, intervals in paired_values(values, main, seed=settings.seed).items():
            against[name].update(intervals)
        per_user["beyond"] = values
    sections = {"paired": {"main": main, "k": k, "against": against}, "per_user": per_user}
    if feedback is not None:
        per_user["target_ratings"] = [ex.rating for ex in examples]
        section, intervals = feedback_sections(examples, ranks, main, k, feedback, settings.seed)
        for name, by_metric in intervals.items():
            against[name].update(by_metric)
        if section is not None:
            sections["feedback"] = section
    return sections


def feedback_sections(examples: Sequence[Example], ranks: Mapping[str, Sequence[int | None]], main: str, k: int,
                      feedback: FeedbackRule, seed: int) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """The report's `feedback` entry (the rule, the group sizes, each model's liked - disliked gap at `k` with
    its interval) and the paired intervals within the liked / disliked targets; `(None, {})` when no target is
    liked or disliked."""
    from rlrec.evaluation.paired import PAIRED_METRICS, bootstrap_gap_interval, paired_feedback, per_user_metric

    members: dict[str, list[int]] = {"liked": [], "disliked": []}
    for position, ex in enumerate(examples):
        label = feedback.label(ex.rating)
        if label in members:
            members[label].append(position)
    members = {label: positions for label, positions in members.items() if positions}
    if not members:
        return None, {}
    section: dict[str, Any] = {**feedback.to_json(), "k": k,
                               "counts": {label: len(members.get(label, ())) for label in ("liked", "disliked")}}
    if len(members) == 2:
        section["gap"] = {}
        for name, model_ranks in ranks.items():
            section["gap"][name] = {}
            for metric in PAIRED_METRICS:
                scores = per_user_metric(model_ranks, metric, k)
                section["gap"][name][f"{metric}@{k}"] = bootstrap_gap_interval(
                    scores[members["liked"]], scores[members["disliked"]], seed=seed)
    return section, paired_feedback(ranks, main, k, members, seed=seed)


ItemVectors = tuple[Sequence[str], Any, str]  # (item ids, (n, d) matrix, what the vectors are)


def item_space(dataset: PreparedDataset, head_fraction: float | None, vectors: ItemVectors | None,
               popularity: Mapping[str, int] | None = None) -> ItemSpace:
    """The beyond-accuracy metrics' view of the items: train popularity (counted here unless given), the head,
    the catalog, the vectors."""
    ids, matrix, source = vectors if vectors is not None else (None, None, None)
    popularity = item_popularity(dataset.train) if popularity is None else popularity
    return ItemSpace.build(popularity, len(dataset.items), head_fraction, vectors=matrix, vector_ids=ids,
                           vector_source=source)


def index_vectors(index: SIDIndex | None) -> ItemVectors | None:
    """The SID index's item text embeddings (what its SIDs were quantised from) as the diversity space."""
    if index is None or index.embeddings is None:
        return None
    return index.item_ids, index.embeddings, f"item text embeddings of the SID index ({index.source or 'index'})"


def load_compared(path: str | Path, index: SIDIndex, settings: EvalSettings, *, device: Any,
                  dtype: str, max_history: int | None = None) -> Ranker:
    """The ranker of a compared model folder (`load_ranker`): a SETRec folder ranks by its own grounding, so
    the two identifier families compare directly; a SID checkpoint is decoded with its own index (`<path>/sid`,
    the one it was trained with; `index` only for a folder without one) and asked with its own history cap,
    unless the run set one for all models."""
    own = Path(path) / "sid"
    return load_ranker(path, index=None if (own / INDEX_FILE).is_file() else index, device=device,
                       dtype=dtype, num_beams=settings.num_beams, batch_size=settings.batch_size,
                       max_history=max_history)


def reranked_baselines(config: EvaluateConfig, ranker: Ranker, dataset: PreparedDataset,
                       index: SIDIndex | None) -> dict[str, Callable[[], Ranker]]:
    """The `rerank` baselines around the evaluated model's ranker, by report name."""
    from rlrec.ranking.rerank import make_reranker

    if not config.rerank:
        return {}
    from rlrec.data.feedback import item_mean_ratings

    vectors = index_vectors(index)
    popularity = item_popularity(dataset.train)
    mean_ratings = item_mean_ratings(dataset.train) if "rating" in config.reranked_objectives() else None
    out = {}
    for name, (objective, weight) in config.reranked_names().items():
        if objective == "mmr" and vectors is None:
            raise ConfigError(f"rerank {objective}={weight:g}: the SID index has no item embeddings to measure "
                              "redundancy with (item_embeddings.npy beside index.json)")
        ids, matrix = (vectors[0], vectors[1]) if vectors is not None else ((), None)
        out[name] = functools.partial(
            make_reranker, ranker, objective, weight, popularity=popularity,
            head_fraction=config.head_fraction or 0.2, vectors=matrix,
            vector_rows={item: row for row, item in enumerate(ids)}, top_n=config.rerank_top_n,
            mean_ratings=mean_ratings)
    return out


def load_index(config: EvaluateConfig) -> SIDIndex:
    hint = "" if config.sid_dir else " (the default `<model_path>/sid`; set sid_dir to the `rlrec sid` output)"
    return load_sid_index(config.resolved_sid_dir(), hint)


def trained_max_history(model_path: str | Path) -> int | None:
    """The history cap the model's prompts were trained with (its `RankingSpec`), so evaluation asks the same way."""
    value = RankingSpec.load(model_path).max_history
    if value is not None:
        logger.info("prompts keep the last %d history items, as in training (%s)", value, model_path)
    return value


def evaluate_checkpoint(config: EvaluateConfig) -> dict[str, Any]:
    """Evaluate `config.model_path` (and `compare`d models) on `config.split`; write and return the report."""
    from rlrec.utils.devices import resolve_device

    device = resolve_device(config.device)
    spec = RankingSpec.load(config.model_path)
    dataset = PreparedDataset.load(config.dataset_dir)
    dataset.require_examples(config.split)
    index = None
    if spec.decoding == "constrained_beam_search":
        # Cheap checks first: a wrong index or data should fail before the model is loaded.
        index = load_index(config)
        check_index_covers(index, dataset.split(config.split), config.split,
                           f"SID index {config.resolved_sid_dir()}")
    compared = config.compared_models()
    settings = EvalSettings(**{f.name: getattr(config, f.name) for f in dataclasses.fields(EvalSettings)})
    if settings.max_history is None:
        settings.max_history = trained_max_history(config.model_path)
    ranker = load_ranker(config.model_path, index=index, device=device, dtype=config.dtype,
                         num_beams=settings.num_beams, batch_size=settings.batch_size,
                         max_history=settings.max_history)
    others = {name: functools.partial(load_compared, path, index, settings, device=device, dtype=config.dtype,
                                      max_history=config.max_history)
              for name, path in compared.items()}
    others.update(reranked_baselines(config, ranker, dataset, index))
    return evaluate_rankers(
        config.model_name, ranker, dataset, settings, output_dir=config.resolved_output_dir(), device=str(device),
        others=others, item_vectors=index_vectors(index),
        metadata={"model_path": str(config.model_path), "dataset_dir": str(config.dataset_dir),
                  "sid_dir": str(config.resolved_sid_dir()) if index is not None else None,
                  "num_items_in_index": len(index) if index is not None else None,
                  "dtype": str(getattr(ranker.model, "dtype", config.dtype))},
    )


def run_evaluation(config: EvaluateConfig) -> dict[str, Any]:
    """`rlrec evaluate`: the report of `evaluate_checkpoint`, with its summary printed. The training stages'
    end-of-training evaluation is this call too, on the folder they saved."""
    import time

    start = time.perf_counter()
    report = evaluate_checkpoint(config)
    print_summary(report, config, time.perf_counter() - start)
    return report


def print_summary(report: dict[str, Any], config: EvaluateConfig, seconds: float) -> None:
    """The table, the paired intervals and where the report went, as `rlrec evaluate` prints them."""
    print(format_table(report["models"], k=main_k(report["k_values"])))
    for table in (format_feedback_table(report), format_beyond_table(report["models"], k=main_k(report["k_values"]))):
        if table:
            print(table)
    if report.get("paired", {}).get("against"):
        from rlrec.evaluation.paired import format_paired

        print(format_paired(report["paired"]["against"], config.model_name))
    print(f"rlrec evaluate: {report['counts']['all']} {config.split} users in {seconds:.1f}s; "
          f"report written to {config.resolved_output_dir()}", flush=True)
