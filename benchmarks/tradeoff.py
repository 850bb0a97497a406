"""Steering a recommender: GRPO with a beyond-accuracy reward against re-ranking the SFT model's beams.

    # ML-100k, the compact model of `rlrec demo` (SFT in runs/demo/compact-sft), every test user (~45 CPU minutes):
    python benchmarks/tradeoff.py --sft_model runs/demo/compact-sft --dataset_dir runs/demo/prepare --seeds 42 7 \
        --output_dir runs/tradeoff-ml-100k
    # the same path on tiny generated data and a tiny model, in seconds (what the test suite runs):
    python benchmarks/tradeoff.py --smoke --output_dir /tmp/tradeoff-smoke

From one SFT model:

- re-ranking: the SFT model's top `top_n` (50) per user, ranked once, then re-ordered at many weights by
  `score + w * novelty`, `score + w * [tail item]` and MMR in the SID index's text-embedding space
  (`rlrec.ranking.rerank`), the cheap alternative any recommender engineer tries first;
- GRPO: `rlrec grpo` with the recipe (`--grpo_config`, default `recipes/ml-100k-compact/grpo-steer.yaml`) and
  its accuracy rewards plus one objective's reward (`novelty`, `long_tail`, `diversity`) at each of
  `--grpo_weights`, one run per weight and seed, trained for the recipe's steps with no valid selection (each
  weight is one point of the trade-off, not a choice), then ranked the same way;
- the control: weight 0, the recipe's accuracy rewards alone (one run per seed), whose top N is re-ranked as
  the SFT model's is. GRPO may gain accuracy whatever its reward; the control's re-ranked frontier tells that
  gain apart from what the steering reward itself buys.

Every point is ranked on every user of `--split` (test by default; use valid to choose a recipe), and each
GRPO point is paired with the re-ranking point of each family (of the SFT model and of its seed's control)
nearest to it on the objective's metric
(tail share@10 for novelty and long_tail, diversity@10 for diversity): when they are within `--match_tolerance`,
the per-user NDCG@10 difference gets a bootstrap 95% interval. `tradeoff.json` holds every point (its metrics
and settings), the pairs and the timings; `tradeoff.png` plots NDCG@10 against each objective's metric, both
frontiers, with each point's 95% interval; `tradeoff.md` is the table. A GRPO run whose folder holds a finished
run is reused (delete it to redo it). Words after `--` go to every `rlrec grpo` run.
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
DEFAULT_GRPO_CONFIG = ROOT / "recipes" / "ml-100k-compact" / "grpo-steer.yaml"
K = 10
# objective reward -> (the metric it moves, the re-ranking families it is compared with)
OBJECTIVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "novelty": (f"tail_share@{K}", ("novelty", "tail")),
    "long_tail": (f"tail_share@{K}", ("novelty", "tail")),
    "diversity": (f"diversity@{K}", ("mmr",)),
}
RERANK_WEIGHTS = {  # fine enough that consecutive points move tail share by well under the match tolerance
    "novelty": [0.0, *[round(0.05 * 1.1 ** i, 4) for i in range(85)]],  # 0.05 .. ~165 on summed log-probs
    "tail": [0.0, *[round(0.02 * 1.1 ** i, 4) for i in range(70)]],  # 0.02 .. ~15
    "mmr": [round(0.025 * i, 3) for i in range(40)],  # 0 .. 0.975
}
SELECTION_KEYS = ("valid_every_steps", "valid_metric", "valid_floor", "valid_patience", "valid_max_examples")
SMOKE_GRPO = ["--use_cpu", "true", "--max_steps", "2", "--num_generations", "4", "--per_device_train_batch_size",
              "8", "--rollout_batch_size", "8", "--num_train_prompts", "16", "--learning_rate", "0.01",
              "--logging_steps", "1", "--dtype", "float32"]


def smoke_inputs(folder: Path) -> tuple[Path, Path]:
    """A tiny SFT model on a synthetic catalog whose SID index keeps (random) item embeddings."""
    import numpy as np

    from rlrec.cli import run_stage
    from rlrec.data.synthetic import synthetic_dataset
    from rlrec.models.tiny import tiny_model_and_tokenizer
    from rlrec.sid.index import SIDIndex

    data, sid, base, sft = folder / "data", folder / "sid", folder / "base", folder / "sft"
    if (sft / "manifest.json").is_file():
        return sft, data
    dataset = synthetic_dataset(num_users=40, num_items=60, seed=1, history_cut=8)
    data.mkdir(parents=True, exist_ok=True)
    dataset.save(data)
    items = sorted(dataset.items)
    rng = np.random.default_rng(0)
    codes = [(i // 16, (i // 4) % 4, i % 4) for i in range(len(items))]
    SIDIndex(items, codes, [4, 4, 4], embeddings=rng.normal(size=(len(items), 8)).astype(np.float32)).save(sid)
    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    run_stage("sft", ["--dataset_dir", str(data), "--sid_dir", str(sid), "--model_name_or_path", str(base),
                      "--output_dir", str(sft), "--use_cpu", "true", "--max_steps", "3",
                      "--per_device_train_batch_size", "8", "--num_train_examples", "24", "--save_strategy", "no",
                      "--report_to", "none", "--eval_at_end", "false", "--max_history", "5",
                      "--dtype", "float32"])
    return sft, data


def grpo_recipe(config: Path, out: Path) -> tuple[Path, list[Any]]:
    """The recipe without its valid selection (each run is one point of the trade-off), and its accuracy rewards."""
    import yaml

    recipe = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    for key in SELECTION_KEYS:
        recipe.pop(key, None)
    rewards = recipe.pop("rewards", None) or ["exact_match", "ranking"]
    # the recipe's own steering reward gives way to the objective's, at the study's weights
    rewards = [r for r in rewards if (r if isinstance(r, str) else r.get("name")) not in OBJECTIVES]
    path = out / "grpo-point.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path, rewards


class Describer:
    """Per-user NDCG@K and the beyond-accuracy metrics of top-K lists of one split's users."""

    def __init__(self, dataset: Any, index: Any, examples: list) -> None:
        from rlrec.evaluation.run import index_vectors, item_space
        from rlrec.evaluation.settings import EvalSettings

        self.examples = examples
        self.space = item_space(dataset, EvalSettings().head_fraction, index_vectors(index))

    def __call__(self, lists: list[list[str]]) -> dict[str, Any]:
        import numpy as np

        from rlrec.evaluation.beyond import BeyondAccuracyAccumulator
        from rlrec.evaluation.metrics import ndcg_at_k, target_rank

        beyond = BeyondAccuracyAccumulator(self.space, [K])
        beyond.add([row[:K] for row in lists])
        ndcg = np.array([ndcg_at_k(target_rank(row, ex.target, K), K)
                         for row, ex in zip(lists, self.examples, strict=True)])
        summary = {f"NDCG@{K}": float(ndcg.mean()), **beyond.compute()}
        return {"metrics": summary, "per_user": {f"NDCG@{K}": ndcg, **beyond.per_user(K)}}


def rank_top(model_path: Path, index: Any, histories: list[list[str]], top_n: int, max_history: int | None,
             batch_size: int) -> list[list[tuple[str, float]]]:
    from rlrec.ranking import load_ranker

    ranker = load_ranker(model_path, index=index, device="cpu", num_beams=top_n, batch_size=batch_size,
                         max_history=max_history)
    return ranker.rank(histories, top_n)


def interval(values: Any, seed: int = 0) -> dict[str, float]:
    from rlrec.evaluation.paired import bootstrap_mean_interval

    return bootstrap_mean_interval(values, num_samples=2000, seed=seed)


def matched_pairs(grpo: list[dict], rerank: list[dict], per_user: dict[str, dict], tolerance: float) -> list[dict]:
    """Each GRPO point against the nearest re-ranking point of each family on the objective's metric, re-ranking
    the SFT model's beams and those of the control run of the same seed (when there is one)."""
    pairs = []
    for point in grpo:
        metric, families = OBJECTIVES[point["objective"]][0], OBJECTIVES[point["objective"]][1]
        for base in ("SFT", f"control seed={point['seed']}"):
            for family in families:
                candidates = [r for r in rerank if r["family"] == family and r["base"] == base]
                if not candidates:
                    continue
                nearest = min(candidates, key=lambda r: abs(r["metrics"][metric] - point["metrics"][metric]))
                gap = nearest["metrics"][metric] - point["metrics"][metric]
                entry = {"grpo": point["name"], "rerank": nearest["name"], "base": base, "family": family,
                         "metric": metric, "gap": gap, "within_tolerance": abs(gap) <= tolerance}
                diff = per_user[point["name"]][f"NDCG@{K}"] - per_user[nearest["name"]][f"NDCG@{K}"]
                entry[f"NDCG@{K} grpo - rerank"] = interval(diff)
                pairs.append(entry)
    return pairs


def plot(result: dict, path: Path) -> None:
    """Top row: NDCG@K against the objective's metric, the re-ranking frontiers (of the SFT model, solid, and of
    the first control, dashed) and the GRPO points of each seed. Bottom row: each GRPO point's paired NDCG@K
    difference to its matched re-ranking point (within the tolerance), with its 95% interval."""
    from matplotlib.figure import Figure

    objectives = list(dict.fromkeys(p["objective"] for p in result["grpo"]))
    columns = max(1, len(objectives))
    fig = Figure(figsize=(6 * columns, 9), layout="constrained")
    axes = fig.subplots(2, columns, squeeze=False)
    sft = result["sft"]["metrics"]
    bases = list(dict.fromkeys(r["base"] for r in result["rerank"]))[:2]  # SFT and the first control
    seeds = list(dict.fromkeys(p["seed"] for p in result["grpo"]))
    for col, objective in enumerate(objectives):
        ax, diff_ax = axes[0][col], axes[1][col]
        metric, families = OBJECTIVES[objective]
        for j, base in enumerate(bases):
            for i, family in enumerate(families):
                pts = sorted((r for r in result["rerank"] if r["family"] == family and r["base"] == base),
                             key=lambda r: r["metrics"][metric])
                ax.plot([r["metrics"][metric] for r in pts], [r["metrics"][f"NDCG@{K}"] for r in pts],
                        linestyle="-" if j == 0 else "--", color=f"C{1 + i}",
                        label=f"re-rank {base} top {result['top_n']}: {family}")
        for s, seed in enumerate(seeds):
            pts = sorted((p for p in result["grpo"] if p["objective"] == objective and p["seed"] == seed),
                         key=lambda p: p["metrics"][metric])
            ax.plot([p["metrics"][metric] for p in pts], [p["metrics"][f"NDCG@{K}"] for p in pts],
                    marker="os^"[s % 3], color="C0", alpha=1.0 if s == 0 else 0.6,
                    label=f"GRPO + {objective} reward, seed {seed}")
            if s == 0:
                for p in pts:
                    ax.annotate(f"w={p['weight']:g}", (p["metrics"][metric], p["metrics"][f"NDCG@{K}"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
        ax.scatter([sft[metric]], [sft[f"NDCG@{K}"]], marker="*", s=150, color="black", zorder=5, label="SFT")
        for control in result.get("controls", [])[:1]:
            c = control["metrics"]
            ax.scatter([c[metric]], [c[f"NDCG@{K}"]], marker="s", s=60, color="grey", zorder=5,
                       label=f"GRPO control (accuracy rewards only), seed {control['seed']}")
        ax.set_xlabel(metric)
        ax.set_ylabel(f"NDCG@{K}")
        ax.set_title(f"{objective}: {result['split']}, {result['users']} users")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")

        grpo = {p["name"]: p for p in result["grpo"]}
        series = sorted({(pair["base"].split(" seed=")[0], pair["family"]) for pair in result["pairs"]
                         if grpo[pair["grpo"]]["objective"] == objective})
        for n, (base, family) in enumerate(series):
            chosen = [pair for pair in result["pairs"] if pair["within_tolerance"] and pair["family"] == family
                      and pair["base"].split(" seed=")[0] == base and grpo[pair["grpo"]]["objective"] == objective]
            xs = [grpo[pair["grpo"]]["metrics"][metric] + 0.002 * (n - len(series) / 2) for pair in chosen]
            stats = [pair[f"NDCG@{K} grpo - rerank"] for pair in chosen]
            errors = [[st["mean"] - st["low"] for st in stats], [st["high"] - st["mean"] for st in stats]]
            diff_ax.errorbar(xs, [st["mean"] for st in stats], yerr=errors,
                             fmt="o", capsize=3, color=f"C{1 + families.index(family)}",
                             markerfacecolor="white" if base != "SFT" else None,
                             label=f"GRPO - re-rank {base}: {family}")
        diff_ax.axhline(0.0, color="black", linewidth=0.8)
        diff_ax.set_xlabel(f"{metric} of the GRPO point")
        diff_ax.set_ylabel(f"NDCG@{K} GRPO - re-ranking (paired, 95% CI)")
        diff_ax.set_title(f"at matched {metric} (within {result.get('match_tolerance', 0.02):g})")
        diff_ax.grid(alpha=0.3)
        diff_ax.legend(fontsize="x-small")
    fig.savefig(path, format="png", dpi=100)


def table(result: dict) -> str:
    """Markdown: every GRPO point, the nearest re-ranking point of each family and their paired difference."""
    lines = [f"| GRPO point | NDCG@{K} | tail share@{K} | coverage@{K} | novelty@{K} | diversity@{K} "
             f"| nearest re-ranking | its NDCG@{K} | its metric | NDCG@{K} GRPO - re-rank [95% CI] |",
             "|" + " --- |" * 10]
    points = {p["name"]: p for p in [result["sft"], *result["grpo"], *result["rerank"]]}

    def fmt(value: float | None) -> str:
        return "-" if value is None or value != value else f"{value:.4f}"

    sft = result["sft"]["metrics"]
    lines.append(f"| SFT | {fmt(sft[f'NDCG@{K}'])} | {fmt(sft.get(f'tail_share@{K}'))} | "
                 f"{fmt(sft.get(f'coverage@{K}'))} | {fmt(sft.get(f'novelty@{K}'))} | {fmt(sft.get(f'diversity@{K}'))}"
                 " | | | | |")
    for control in result.get("controls", []):
        c = control["metrics"]
        lines.append(f"| {control['name']} | {fmt(c[f'NDCG@{K}'])} | {fmt(c.get(f'tail_share@{K}'))} | "
                     f"{fmt(c.get(f'coverage@{K}'))} | {fmt(c.get(f'novelty@{K}'))} | {fmt(c.get(f'diversity@{K}'))}"
                     " | | | | |")
    for pair in result["pairs"]:
        g, r = points[pair["grpo"]]["metrics"], points[pair["rerank"]]["metrics"]
        stats = pair[f"NDCG@{K} grpo - rerank"]
        mark = "" if pair["within_tolerance"] else " (not matched)"
        lines.append(f"| {pair['grpo']} | {fmt(g[f'NDCG@{K}'])} | {fmt(g.get(f'tail_share@{K}'))} | "
                     f"{fmt(g.get(f'coverage@{K}'))} | {fmt(g.get(f'novelty@{K}'))} | "
                     f"{fmt(g.get(f'diversity@{K}'))} | "
                     f"{pair['rerank']}{mark} | {fmt(r[f'NDCG@{K}'])} | {pair['metric']} {fmt(r[pair['metric']])} | "
                     f"{stats['mean']:+.4f} [{stats['low']:+.4f}, {stats['high']:+.4f}] |")
    return "\n".join(lines)


def summary(result: dict) -> str:
    """Per objective and re-ranked base (best family at each point): how many GRPO points were matched, and how
    many of them are significantly above or below re-ranking on NDCG@K (paired 95% interval)."""
    grpo = {p["name"]: p for p in result["grpo"]}
    key = f"NDCG@{K} grpo - rerank"
    lines = [f"| objective | re-ranked base | matched GRPO points | mean NDCG@{K} GRPO - re-rank "
             "| GRPO above (CI > 0) | GRPO below (CI < 0) |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for objective in dict.fromkeys(p["objective"] for p in result["grpo"]):
        for base in ("SFT", "control"):
            best: dict[str, dict] = {}  # per GRPO point, the matched family with the highest re-ranked NDCG
            for pair in result["pairs"]:
                if (grpo[pair["grpo"]]["objective"] != objective or not pair["within_tolerance"]
                        or pair["base"].split(" seed=")[0] != base):
                    continue
                current = best.get(pair["grpo"])
                if current is None or pair[key]["mean"] < current[key]["mean"]:
                    best[pair["grpo"]] = pair
            if not best:
                continue
            stats = [pair[key] for pair in best.values()]
            mean = sum(st["mean"] for st in stats) / len(stats)
            above, below = sum(st["low"] > 0 for st in stats), sum(st["high"] < 0 for st in stats)
            lines.append(f"| {objective} | {base} | {len(stats)} | {mean:+.4f} | {above} | {below} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sft_model", help="The SFT model folder (rlrec sft, e.g. runs/demo/compact-sft)")
    parser.add_argument("--dataset_dir", help="Its prepared dataset (rlrec prepare)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--grpo_config", default=str(DEFAULT_GRPO_CONFIG), help="The GRPO recipe of every run")
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    parser.add_argument("--grpo_weights", nargs="+", type=float, default=[0.0, 0.2, 0.5, 1.0, 2.0, 4.0],
                        help="Weights of the objective's reward; 0 is the control run (the recipe's rewards alone)")
    parser.add_argument("--reward_params", default="{}", help="JSON params of the objective reward (within_rank)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--top_n", type=int, default=50, help="Beams each model ranks; re-ranking re-orders them")
    parser.add_argument("--match_tolerance", type=float, default=0.02)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--smoke", action="store_true", help="Tiny generated data and model, two GRPO steps")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    import numpy as np

    from rlrec.cli import run_stage
    from rlrec.data.popularity import item_popularity
    from rlrec.data.schema import PreparedDataset
    from rlrec.ranking import RankingSpec, load_sid_index
    from rlrec.ranking.rerank import reorderer

    if args.smoke:
        sft_model, dataset_dir = smoke_inputs(out / "smoke")
        extra = SMOKE_GRPO + extra
        args.top_n = min(args.top_n, 20)
    else:
        if not args.sft_model or not args.dataset_dir:
            parser.error("--sft_model and --dataset_dir are required (or run --smoke)")
        sft_model, dataset_dir = Path(args.sft_model), Path(args.dataset_dir)
    reward_params = json.loads(args.reward_params)
    started = time.perf_counter()
    dataset = PreparedDataset.load(dataset_dir)
    index = load_sid_index(sft_model / "sid")
    examples = [ex for ex in dataset.split(args.split) if ex.target in index]
    histories = [ex.history for ex in examples]
    describe = Describer(dataset, index, examples)
    max_history = RankingSpec.load(sft_model).max_history
    seconds: dict[str, float] = {}
    per_user: dict[str, dict] = {}

    def point(name: str, lists: list[list[str]], **info: Any) -> dict:
        described = describe(lists)
        per_user[name] = described["per_user"]
        return {"name": name, **info, "metrics": described["metrics"],
                "interval": interval(described["per_user"][f"NDCG@{K}"])}

    # Re-ranking: a model's top N once, re-ordered at every weight of every family.
    families = sorted({f for objective in args.objectives for f in OBJECTIVES[objective][1]})
    popularity = item_popularity(dataset.train)
    rows = {item: i for i, item in enumerate(index.item_ids)}
    rerank: list[dict] = []

    def rerank_frontiers(base: str, top: list[list[tuple[str, float]]]) -> None:
        tick = time.perf_counter()
        for family in families:
            for weight in RERANK_WEIGHTS[family]:
                reorder = reorderer(family, weight, popularity=popularity, vectors=index.embeddings,
                                    vector_rows=rows)
                lists = [[item for item, _ in reorder(row)] for row in top]
                rerank.append(point(f"rerank {base} {family} w={weight:g}", lists, base=base, family=family,
                                    weight=weight))
        seconds[f"rerank {base}"] = time.perf_counter() - tick

    tick = time.perf_counter()
    sft_top = rank_top(sft_model, index, histories, args.top_n, max_history, args.batch_size)
    seconds["sft_rank"] = time.perf_counter() - tick
    sft = point("SFT", [[item for item, _ in row] for row in sft_top])
    rerank_frontiers("SFT", sft_top)

    # GRPO: one run per objective, weight and seed, each ranked on the same users. Weight 0 is the control: the
    # recipe's accuracy rewards alone, one run per seed, whose beams are re-ranked too (is it the reward that
    # steers, or GRPO's accuracy gain under re-ranking?).
    recipe, base_rewards = grpo_recipe(Path(args.grpo_config), out)
    grpo: list[dict] = []
    controls: dict[int, dict] = {}

    def train(folder: Path, rewards: list, seed: int) -> None:
        if not (folder / "manifest.json").is_file():
            run_stage("grpo", ["--config", str(recipe), "--model_name_or_path", str(sft_model),
                               "--dataset_dir", str(dataset_dir), "--output_dir", str(folder),
                               "--overwrite_output_dir", "true", "--rewards", json.dumps(rewards),
                               "--seed", str(seed), "--eval_at_end", "false", "--report_to", "none",
                               "--save_strategy", "no", *extra])

    for seed in args.seeds:
        if 0.0 in args.grpo_weights:
            tick = time.perf_counter()
            name, folder = f"grpo control seed={seed}", out / f"grpo-control-s{seed}"
            train(folder, base_rewards, seed)
            top = rank_top(folder, index, histories, args.top_n, max_history, args.batch_size)
            seconds[name] = time.perf_counter() - tick
            controls[seed] = point(name, [[item for item, _ in row] for row in top], objective="control", weight=0.0,
                                   seed=seed, rewards=base_rewards)
            rerank_frontiers(f"control seed={seed}", top)
        for objective in args.objectives:
            for weight in [w for w in args.grpo_weights if w != 0.0]:
                tick = time.perf_counter()
                name = f"grpo {objective} w={weight:g} seed={seed}"
                folder = out / f"grpo-{objective}-w{weight:g}-s{seed}"
                rewards = [*base_rewards, {"name": objective, "weight": weight, **reward_params}]
                train(folder, rewards, seed)
                top = rank_top(folder, index, histories, K, max_history, args.batch_size)
                seconds[name] = time.perf_counter() - tick
                grpo.append(point(name, [[item for item, _ in row] for row in top], objective=objective,
                                  weight=weight, seed=seed, rewards=rewards))

    result = {"split": args.split, "users": len(examples), "top_n": args.top_n, "k": K,
              "match_tolerance": args.match_tolerance,
              "sft_model": str(sft_model), "dataset_dir": str(dataset_dir), "grpo_config": str(args.grpo_config),
              "grpo_extra_flags": extra, "reward_params": reward_params, "sft": sft, "rerank": rerank,
              "grpo": grpo, "controls": list(controls.values()),
              "pairs": matched_pairs(grpo, rerank, per_user, args.match_tolerance),
              "seconds": {key: round(value, 1) for key, value in seconds.items()}}
    result["seconds"]["total"] = round(time.perf_counter() - started, 1)
    result["summary"] = summary(result)
    text = table(result) + "\n\n" + result["summary"]
    (out / "tradeoff.json").write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    (out / "tradeoff.md").write_text(text + "\n", encoding="utf-8")
    plot(result, out / "tradeoff.png")
    np.savez_compressed(out / "per_user.npz", **{f"{name}|{metric}": np.asarray(values, dtype=np.float64)
                                                 for name, metrics in per_user.items()
                                                 for metric, values in metrics.items()})
    print(text)
    print(f"tradeoff: {len(grpo)} GRPO runs and {len(rerank)} re-rankings on {len(examples)} {args.split} users in "
          f"{result['seconds']['total'] / 60:.1f} min; {out / 'tradeoff.json'}, {out / 'tradeoff.png'}")
    return result


if __name__ == "__main__":
    main()
