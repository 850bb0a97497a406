"""Learning what users liked: RL and preference pairs on ratings against the simple baselines a reviewer asks for.

    # ML-100k, the compact model (runs/ml-100k/data prepared, runs/ml-100k-compact/sid built), two seeds:
    python benchmarks/feedback.py --dataset_dir runs/ml-100k/data --sid_dir runs/ml-100k-compact/sid \
        --seeds 42 7 --output_dir runs/feedback-ml-100k
    # the same path on tiny generated data and a tiny model, in seconds (what the test suite runs):
    python benchmarks/feedback.py --smoke --output_dir /tmp/feedback-smoke

Per seed, every model from the same recipes (`--sft_config`, `--grpo_config`, `--dpo_config`), each chosen on the
valid split as its recipe says:

- `sft`: next-item SFT, every target alike (the start of the refinements);
- `sft_liked`: SFT on liked targets only (disliked and neutral targets stay in the histories, never labels);
- `sft_weighted`: rating-weighted SFT, its target weights chosen on valid among `--weighted_grid` (liked 1; the
  neutral and disliked weights) like the re-ranking weight below;
- `sft+rating`: the SFT model's top 20 re-ranked by the item's shrunk mean train rating, its weight chosen on
  valid (NDCG@10 on liked targets, overall NDCG@10 kept at 95% of the SFT model's);
- `dpo_rating_gap+rating`, `grpo_rating_rated+rating`: the same re-ranking on top of `dpo_rating_gap` and
  `grpo_rating_rated`, each weight chosen on valid the same way (the model's per-user preference and the item's
  average act on different things);
- `sasrec_liked`: SASRec trained on liked targets only (and `sasrec`, plain, for reference);
- `grpo_rating`: GRPO from `sft` with the `rating` reward alone; `grpo_rating_exact`: with exact_match beside it;
- `dpo_rating`: DPO from `sft` on rating pairs (the target against the user's disliked items, a disliked target
  against their liked ones);
- `grpo_rating_gap`, `dpo_rating_gap`: the same two runs with the check chosen by the valid HR@10 gap (liked
  users' HR@10 minus disliked users'), the measure the rating signal is meant to move; the others choose by
  liked NDCG@10. Both keep 95% of the start's overall valid NDCG@10.
- `grpo_rating_rated`: `grpo_rating_gap` with the user's next `--future_window` rated train items put into every
  group (`rollout_add_rated`), so each group contrasts what the user went on to like and dislike.

Every model ranks every test user (the same users), through `rlrec evaluate`'s code: `eval-s<seed>/report.json`
holds HR/NDCG on liked and disliked targets with paired intervals against `sft`. `feedback.json` adds, over the
seeds (each user's difference averaged over seeds, then a bootstrap over users), each refinement against `sft`
and against the best simple baseline (the one with the highest test liked NDCG@10: the hardest comparison) on
liked NDCG@10, disliked HR@10 and overall NDCG@10; `feedback.md` is the table, `feedback.png` the trade-off
(liked NDCG@10 against disliked HR@10). A run whose folder holds a finished run is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "ml-100k-compact"
K = 10
LIKED_ONLY = {"neutral": 0.0, "disliked": 0.0}
# Rating-weighted SFT's grid (neutral, disliked weights; liked 1), chosen on valid like the re-ranking weight.
WEIGHTED_GRID = [(0.5, 0.25), (1.0, 0.5), (0.5, 0.0), (1.0, 0.0)]
RATING_WEIGHTS = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]  # re-ranking weights tried on valid (summed log-probs)
REFINEMENTS = ("grpo_rating", "grpo_rating_exact", "dpo_rating", "grpo_rating_gap", "dpo_rating_gap",
               "grpo_rating_rated", "dpo_rating_gap+rating", "grpo_rating_rated+rating")
# Models whose top 20 is also re-ranked by mean rating (`NAME+rating`, the weight chosen on valid for each).
RERANKED = ("sft", "dpo_rating_gap", "grpo_rating_rated")
# How a refinement's check is chosen on valid: liked NDCG@10, or the liked-minus-disliked HR@10 gap (`_gap` runs),
# both among checks that keep 95% of the start's overall valid NDCG@10.
BY_LIKED = ["--valid_metric", "NDCG@10:liked", "--valid_floor", "NDCG@10>=0.95"]
BY_GAP = ["--valid_metric", "HR@10:gap", "--valid_floor", "NDCG@10>=0.95"]
BASELINES = ("sft_liked", "sft_weighted", "sft+rating", "sasrec_liked")
SMOKE_SFT = ["--scratch_hidden_size", "32", "--scratch_num_heads", "2", "--scratch_num_layers", "1",
             "--num_train_epochs", "2", "--per_device_train_batch_size", "32", "--valid_every_epochs", "1",
             "--bf16", "false", "--max_history", "5", "--sequence_stride", "1"]
SMOKE_REFINE = ["--max_steps", "2", "--valid_every_steps", "1", "--per_device_train_batch_size", "16",
                "--rollout_batch_size", "8", "--num_train_prompts", "32"]


def smoke_inputs(folder: Path) -> tuple[Path, Path]:
    """A synthetic rated dataset and its SID index."""
    from rlrec.data.synthetic import synthetic_dataset
    from rlrec.sid.synthetic import synthetic_sid_index

    data, sid = folder / "data", folder / "sid"
    if not (sid / "index.json").is_file():
        dataset = synthetic_dataset(num_users=60, num_items=60, seed=1, history_cut=8)
        data.mkdir(parents=True, exist_ok=True)
        dataset.save(data)
        synthetic_sid_index(sorted(dataset.items)).save(sid)
    return data, sid


def weights_tag(neutral: float, disliked: float) -> str:
    return f"n{neutral}-d{disliked}"


def finished(folder: Path) -> bool:
    return (folder / "manifest.json").is_file()


def stage(name: str, config: Path, out: Path, *flags: str) -> Path:
    """`rlrec NAME --config CONFIG --output_dir OUT FLAGS`, skipped when OUT holds a finished run."""
    from rlrec.cli import run_stage

    if not finished(out):
        start = time.perf_counter()
        run_stage(name, ["--config", str(config), "--output_dir", str(out), "--eval_at_end", "false", *flags])
        print(f"[feedback] {name} -> {out} in {time.perf_counter() - start:.0f}s", flush=True)
    return out


def train_seed(args: argparse.Namespace, seed: int, data: Path, sid: Path) -> dict[str, Path]:
    """Every trained model of one seed, by report name."""
    out = args.output_dir
    common = ["--dataset_dir", str(data), "--seed", str(seed)]
    sft_flags = [*common, "--sid_dir", str(sid), *(SMOKE_SFT if args.smoke else [])]
    models = {"sft": stage("sft", args.sft_config, out / f"sft-s{seed}", *sft_flags)}
    models["sft_liked"] = stage("sft", args.sft_config, out / f"sft_liked-s{seed}", *sft_flags,
                                "--target_weights", json.dumps(LIKED_ONLY))
    for neutral, disliked in args.weighted_grid:
        weights = {"liked": 1.0, "neutral": neutral, "disliked": disliked}
        tag = weights_tag(neutral, disliked)
        models[f"sft_weighted:{tag}"] = stage("sft", args.sft_config, out / f"sft_weighted-{tag}-s{seed}",
                                              *sft_flags, "--target_weights", json.dumps(weights))
    refine = [*common, "--model_name_or_path", str(models["sft"]), *(SMOKE_REFINE if args.smoke else [])]
    smoke_grpo = ["--num_generations", "4"] if args.smoke else []
    rating = {"name": "rating", "weight": 1.0, "future_window": args.future_window}
    dpo = ["--negatives", "none", "--rating_pairs", str(args.rating_pairs)]
    dpo_gap = [] if args.smoke else ["--max_steps", str(args.dpo_gap_max_steps)]
    grpo_gap = [] if args.smoke else ["--learning_rate", str(args.grpo_gap_learning_rate),
                                      "--max_steps", str(args.grpo_gap_max_steps)]
    for suffix, chosen_by, lr, dpo_extra, grpo_extra in (
            ("", BY_LIKED, args.dpo_learning_rate, [], []),
            ("_gap", BY_GAP, args.dpo_gap_learning_rate, dpo_gap, grpo_gap)):
        models[f"grpo_rating{suffix}"] = stage("grpo", args.grpo_config, out / f"grpo_rating{suffix}-s{seed}",
                                               *refine, *smoke_grpo, "--rewards", json.dumps([rating]), *grpo_extra,
                                               *chosen_by)
        models[f"dpo_rating{suffix}"] = stage("dpo", args.dpo_config, out / f"dpo_rating{suffix}-s{seed}", *refine,
                                              *dpo, "--learning_rate", str(lr), *dpo_extra, *chosen_by)
    models["grpo_rating_exact"] = stage("grpo", args.grpo_config, out / f"grpo_rating_exact-s{seed}", *refine,
                                        *smoke_grpo, "--rewards", json.dumps(["exact_match", rating]), *BY_LIKED)
    rated = ["--rollout_add_rated", str(min(args.future_window, 2) if args.smoke else args.future_window)]
    rated_lr = [] if args.smoke else ["--learning_rate", str(args.grpo_rated_learning_rate),
                                      "--max_steps", str(args.grpo_rated_max_steps)]
    models["grpo_rating_rated"] = stage("grpo", args.grpo_config, out / f"grpo_rating_rated-s{seed}", *refine,
                                        *smoke_grpo, "--rewards", json.dumps([rating]), *rated, *rated_lr, *BY_GAP)
    return models


def valid_rankings(model: Path, dataset: Any, index: Any) -> list[list[tuple[str, float]]]:
    """The model's top 20 (item, score) for every valid user whose target has a SID."""
    from rlrec.ranking import load_ranker
    from rlrec.ranking.rerank import DEFAULT_TOP_N

    examples = [ex for ex in dataset.valid if ex.target in index]
    return load_ranker(model, index=index, device="cpu", num_beams=DEFAULT_TOP_N).rank(
        [ex.history for ex in examples], DEFAULT_TOP_N)


def valid_point(rankings: list[list[tuple[str, Any]]], dataset: Any, index: Any) -> dict[str, float]:
    """Valid NDCG@10 over every valid user and over those who liked their target."""
    from rlrec.evaluation.groups import example_groups
    from rlrec.evaluation.metrics import MetricAccumulator

    examples = [ex for ex in dataset.valid if ex.target in index]
    acc = MetricAccumulator([K])
    acc.add([[item for item, _ in row[:K]] for row in rankings], [ex.target for ex in examples],
            example_groups(examples, feedback=dataset.feedback()))
    result = acc.compute()
    return {f"NDCG@{K}": result["all"][f"NDCG@{K}"], f"NDCG@{K}:liked": result.get("liked", {}).get(f"NDCG@{K}", 0.0)}


def best_on_valid(curve: list[dict[str, Any]], floor: float,
                  fallback: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The point with the best valid NDCG@10 on liked targets among those keeping overall valid NDCG@10 at `floor`
    or more; when none does, the best of `fallback` (default: the first point, the unchanged model)."""
    eligible = [point for point in curve if point[f"NDCG@{K}"] >= floor] or (curve[:1] if fallback is None
                                                                              else fallback)
    return max(eligible, key=lambda point: point[f"NDCG@{K}:liked"])


def choose_rerank_weight(base: list[list[tuple[str, float]]], dataset: Any,
                         index: Any) -> tuple[float, list[dict[str, float]]]:
    """The rating re-ranking weight of a model's valid top 20 (`base`, `valid_rankings`) with the best valid NDCG@10
    on liked targets among the weights that keep valid NDCG@10 at 95% of the model's own (weight 0)."""
    from rlrec.data.feedback import item_mean_ratings
    from rlrec.ranking.rerank import reorderer

    means = item_mean_ratings(dataset.train)
    curve = [{"weight": weight, **valid_point([reorderer("rating", weight, popularity={}, mean_ratings=means)(row)
                                               for row in base], dataset, index)}
             for weight in RATING_WEIGHTS]
    return best_on_valid(curve, 0.95 * curve[0][f"NDCG@{K}"])["weight"], curve


def choose_weighted(valid: dict[str, list[list[tuple[str, float]]]], dataset: Any,
                    index: Any) -> tuple[str, list[dict[str, Any]]]:
    """The rating-weighted SFT model of the grid (`valid`: each model's valid top 20 by name) with the best valid
    NDCG@10 on liked targets among those keeping 95% of the plain SFT model's overall valid NDCG@10 (the best of
    the grid when none does)."""
    floor = 0.95 * valid_point(valid["sft"], dataset, index)[f"NDCG@{K}"]
    curve = [{"model": name, **valid_point(rankings, dataset, index)}
             for name, rankings in valid.items() if name.startswith("sft_weighted:")]
    return best_on_valid(curve, floor, fallback=curve)["model"], curve


def evaluate_seed(args: argparse.Namespace, seed: int, models: dict[str, Path], data: Path) -> dict[str, Any]:
    """Every model of the seed, the rating re-ranker and the SASRec baselines on every test user."""
    import functools

    from rlrec.data.feedback import item_mean_ratings
    from rlrec.data.schema import PreparedDataset
    from rlrec.evaluation.run import evaluate_rankers
    from rlrec.evaluation.settings import EvalSettings
    from rlrec.ranking import load_ranker
    from rlrec.ranking.rerank import make_reranker
    from rlrec.sid.index import SIDIndex

    report_dir = args.output_dir / f"eval-s{seed}"
    if (report_dir / "report.json").is_file():
        return json.loads((report_dir / "report.json").read_text())
    dataset = PreparedDataset.load(data)
    index = SIDIndex.load(models["sft"] / "sid")
    # each model's valid top 20 once: the grid's choice and the re-rankers' weights read the same rankings
    valid = {name: valid_rankings(path, dataset, index) for name, path in models.items()
             if name in RERANKED or name.startswith("sft_weighted:")}
    weighted, weighted_curve = choose_weighted(valid, dataset, index)
    models = {("sft_weighted" if name == weighted else name): path for name, path in models.items()
              if not name.startswith("sft_weighted:") or name == weighted}
    means = item_mean_ratings(dataset.train)
    sft = load_ranker(models["sft"], index=index, device="cpu", num_beams=20)
    others = {name: functools.partial(load_ranker, path, index=index, device="cpu", num_beams=20)
              for name, path in models.items() if name != "sft"}
    metadata: dict[str, Any] = {"weighted_targets": weighted.removeprefix("sft_weighted:"),
                                "weighted_valid_curve": weighted_curve}
    for base in RERANKED:
        name = f"{base}+rating"
        weight, curve = choose_rerank_weight(valid[base], dataset, index)
        ranker = sft if base == "sft" else load_ranker(models[base], index=index, device="cpu", num_beams=20)
        others[name] = functools.partial(make_reranker, ranker, "rating", weight, popularity={}, mean_ratings=means)
        metadata.update({f"rerank_rating_weight:{base}": weight, f"rerank_rating_valid_curve:{base}": curve})
    settings = EvalSettings(split="test", baselines=["popularity", "sasrec", "sasrec_liked"], seed=seed,
                            sasrec_epochs=2 if args.smoke else 50, sasrec_valid_patience=1 if args.smoke else 5,
                            beyond_accuracy=False, cold_pool=False)
    report = evaluate_rankers("sft", sft, dataset, settings, output_dir=report_dir, device="cpu",
                              show_progress=not args.smoke, others=others, metadata=metadata)
    return report


def pooled(reports: list[dict[str, Any]], first: str, second: str) -> dict[str, dict[str, float]]:
    """`first - second` on liked NDCG@10, disliked HR@10 and overall NDCG@10, each user's difference averaged over
    the seeds, with a bootstrap interval over users."""
    import numpy as np

    from rlrec.data.feedback import FeedbackRule
    from rlrec.evaluation.paired import bootstrap_mean_interval, per_user_metric

    out = {}
    rule = FeedbackRule(reports[0]["feedback"]["liked_threshold"], reports[0]["feedback"]["disliked_threshold"])
    labels = [rule.label(r) for r in reports[0]["per_user"]["target_ratings"]]
    for metric, group in (("NDCG", "liked"), ("HR", "disliked"), ("NDCG", "all")):
        diffs = np.mean([per_user_metric(rep["per_user"]["ranks"][first], metric, K)
                         - per_user_metric(rep["per_user"]["ranks"][second], metric, K) for rep in reports], axis=0)
        keep = np.array([group == "all" or label == group for label in labels])
        out[f"{metric}@{K} {group}"] = bootstrap_mean_interval(diffs[keep], num_samples=5000, seed=0)
    return out


def summarise(reports: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    import numpy as np

    names = list(reports[0]["models"])
    table = {}
    for name in names:
        row = {}
        for key, group, metric in (("liked NDCG@10", "liked", "NDCG"), ("disliked HR@10", "disliked", "HR"),
                                   ("NDCG@10", "all", "NDCG")):
            values = [rep["models"][name][group][f"{metric}@{K}"] for rep in reports]
            row[key] = float(np.mean(values))
            row[f"{key} per seed"] = values
        table[name] = row
    best_baseline = max(BASELINES, key=lambda name: table[name]["liked NDCG@10"])
    # the best baseline is the one best on test liked NDCG@10: the hardest for a refinement to beat
    comparisons = {name: {"vs sft": pooled(reports, name, "sft"),
                          **({f"vs {best_baseline}": pooled(reports, name, best_baseline)}
                             if name != best_baseline else {})}
                   for name in (*REFINEMENTS, *BASELINES) if name in names}
    return {"seeds": seeds, "table": table, "best_baseline": best_baseline, "comparisons": comparisons,
            "users": reports[0]["counts"]}


def write_markdown(result: dict[str, Any], path: Path) -> None:
    lines = ["| model | liked NDCG@10 | disliked HR@10 (lower is better) | NDCG@10 (all) |",
             "| --- | --- | --- | --- |"]
    for name, row in result["table"].items():
        lines.append(f"| {name} | {row['liked NDCG@10']:.4f} | {row['disliked HR@10']:.4f} | {row['NDCG@10']:.4f} |")
    lines += ["", f"Paired differences over seeds {result['seeds']} (bootstrap 95% interval over users):", "",
              "| model | against | liked NDCG@10 | disliked HR@10 | NDCG@10 (all) |",
              "| --- | --- | --- | --- | --- |"]
    for name, against in result["comparisons"].items():
        for other, stats in against.items():
            cells = [f"{s['mean']:+.4f} [{s['low']:+.4f}, {s['high']:+.4f}]" for s in stats.values()]
            lines.append(f"| {name} | {other.removeprefix('vs ')} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(result: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    for i, (name, row) in enumerate(result["table"].items()):
        xs, ys = row["disliked HR@10 per seed"], row["liked NDCG@10 per seed"]
        ax.scatter(xs, ys, color=f"C{i % 10}", label=name, marker="o" if name in REFINEMENTS else "s")
        ax.annotate(name, (xs[0], ys[0]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("HR@10 on disliked test targets (lower is better)")
    ax.set_ylabel("NDCG@10 on liked test targets")
    ax.set_title("what users liked against what they disliked (one point per seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.savefig(path, dpi=100)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", type=Path, default=Path("runs/ml-100k/data"))
    parser.add_argument("--sid_dir", type=Path, default=Path("runs/ml-100k-compact/sid"))
    parser.add_argument("--output_dir", type=Path, default=Path("runs/feedback-ml-100k"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    parser.add_argument("--sft_config", type=Path, default=RECIPES / "sft.yaml")
    parser.add_argument("--grpo_config", type=Path, default=RECIPES / "grpo-liked.yaml")
    parser.add_argument("--dpo_config", type=Path, default=RECIPES / "dpo.yaml")
    parser.add_argument("--future_window", type=int, default=5, help="The rating reward's future_window.")
    parser.add_argument("--rating_pairs", type=int, default=2, help="DPO's rating pairs per prompt.")
    parser.add_argument("--dpo_learning_rate", type=float, default=1e-5)
    # Chosen on valid: the mean valid HR@10-gap gain over seeds 42 and 7 at the chosen check was +0.0130 at 3e-6
    # (400 steps) against +0.0100 at 1e-5 (200 steps), where seed 7 kept its start (docs/feedback.md).
    parser.add_argument("--dpo_gap_learning_rate", type=float, default=3e-6)
    parser.add_argument("--dpo_gap_max_steps", type=int, default=400)
    # Both chosen on valid the same way: the mean valid gap gain over seeds 42 and 7 at the chosen check, at 3e-6 for
    # 400 steps against the recipe's 1e-5 for 100, was +0.0091 against +0.0031 without rated items and +0.0211
    # against +0.0146 with them; at 1e-5 seed 7 kept its start in both (docs/feedback.md).
    parser.add_argument("--grpo_gap_learning_rate", type=float, default=3e-6)
    parser.add_argument("--grpo_gap_max_steps", type=int, default=400)
    parser.add_argument("--grpo_rated_learning_rate", type=float, default=3e-6)
    parser.add_argument("--grpo_rated_max_steps", type=int, default=400)
    parser.add_argument("--weighted_grid", type=json.loads, default=WEIGHTED_GRID,
                        help="Rating-weighted SFT's [neutral, disliked] weight pairs (JSON), chosen on valid.")
    parser.add_argument("--smoke", action="store_true", help="Tiny generated data and models, in seconds.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    data, sid = smoke_inputs(args.output_dir) if args.smoke else (args.dataset_dir, args.sid_dir)
    start = time.perf_counter()
    reports = []
    for seed in args.seeds:
        models = train_seed(args, seed, data, sid)
        reports.append(evaluate_seed(args, seed, models, data))
    result = summarise(reports, args.seeds)
    result["seconds"] = round(time.perf_counter() - start, 1)
    (args.output_dir / "feedback.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_markdown(result, args.output_dir / "feedback.md")
    plot(result, args.output_dir / "feedback.png")
    print((args.output_dir / "feedback.md").read_text(encoding="utf-8"))
    print(f"[feedback] {len(args.seeds)} seeds in {result['seconds']:.0f}s -> {args.output_dir}")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
