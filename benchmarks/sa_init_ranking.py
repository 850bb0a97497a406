"""Do SA-Init and TS-Align change what the LLM recommends? The CPU stand-in, measured on ranking.

    # ML-100k, the layer-truncated SmolLM2 of recipes/ml-100k-llm-cpu (data and SIDs from `rlrec demo`):
    python benchmarks/sa_init_ranking.py --dataset_dir runs/demo/prepare --sid_dir runs/demo/compact-sid \
        --seeds 42 7 --output_dir runs/sa-init-ranking
    # Amazon Industrial (MiniOneRec's split and SIDs: recipes/amazon-industrial) with TS-Rec's teacher keywords
    # and descriptions; words after `--` go to every run:
    python benchmarks/sa_init_ranking.py --dataset_dir runs/amazon-industrial/data \
        --sid_dir runs/amazon-industrial/sid --variants keywords random next_item_only \
        --output_dir runs/sa-init-ranking-industrial -- --num_train_epochs 6 --valid_max_examples 1000 \
        --keyword_source file --keyword_file PATH/TO/Industrial_and_Scientific.description_keywords.json \
        --train_sampling_strategy group_by_length
    # (TS-Rec's descriptions are paragraphs: batches grouped by length spare the short SID rows their padding)
    # the same path on tiny generated data and a tiny model, in seconds (what the test suite runs):
    python benchmarks/sa_init_ranking.py --smoke --output_dir /tmp/sa-init-ranking-smoke

Each variant is `rlrec sft --config recipes/ml-100k-llm-cpu/sft.yaml` with the same budget, data and seed, and:

- `keywords`: SA-Init (c-TF-IDF keywords of each cluster, rows norm-matched) with the TS-Align mixture: the recipe;
- `mean_vocab`: every SID row starts at the vocabulary mean, same mixture;
- `random`: the rows transformers gives new tokens (`sa_init: none`), same mixture;
- `next_item_only`: SA-Init, but next-item rows only (no TS-Align), trained for as many optimizer steps as the
  recipe took (an epoch of its rows is shorter: same budget, a little more next-item data);
- `keywords_centered`: SA-Init with each level's mean keyword row subtracted before the norm matching
  (`sa_init_center`): long keyword lists pool to rows that nearly share one direction.

Each run chooses its checkpoint on valid (the recipe's valid selection); then one `rlrec evaluate` per seed ranks
every test user with every variant and the baselines (popularity, SASRec with its epoch chosen on valid), and with
`--compact_model` the compact model trained from scratch beside them. The table gives test HR@10 and NDCG@10 per
seed, and the recipe's (`keywords`) per-user NDCG@10 (averaged over the seeds) minus each other model's, with a
paired bootstrap 95% interval (positive: the recipe ranks better). Words after `--` go to every `rlrec sft` run.
A finished run is not run again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "ml-100k-llm-cpu" / "sft.yaml"
K = 10
REFERENCE = "keywords"
VARIANTS: dict[str, list[str]] = {
    "keywords": [],
    "mean_vocab": ["--sa_init", "mean_vocab"],
    "random": ["--sa_init", "none"],
    "next_item_only": ["--tasks", '{"next_item": 1.0}'],
    "keywords_centered": ["--sa_init_center", "true"],
}
# Variants with fewer rows an epoch than the recipe: trained for the recipe's number of optimizer steps.
SAME_STEPS_AS_REFERENCE = {"next_item_only"}
# --smoke: a 2-layer tiny model cut to 1 layer, a few steps, on generated data.
SMOKE_SFT = ["--bf16", "false", "--truncate_layers", "1", "--max_steps", "4", "--per_device_train_batch_size", "8",
             "--valid_every_epochs", "null", "--valid_every_steps", "2", "--num_train_examples", "32"]


def smoke_inputs(out: Path) -> tuple[Path, Path, Path]:
    """Tiny generated data, a SID index over it and a tiny pretrained-style model folder."""
    from rlrec.data.synthetic import synthetic_dataset
    from rlrec.models.tiny import tiny_model_and_tokenizer
    from rlrec.sid.synthetic import synthetic_sid_index

    data, sid, base = out / "smoke-data", out / "smoke-sid", out / "smoke-model"
    if not (data / "manifest.json").is_file():
        dataset = synthetic_dataset(num_users=40, num_items=40, seed=3, history_cut=6)
        data.mkdir(parents=True, exist_ok=True)
        dataset.save(data)
        synthetic_sid_index(sorted(dataset.items)).save(sid)
        model, tokenizer = tiny_model_and_tokenizer(num_layers=2)
        model.save_pretrained(base)
        tokenizer.save_pretrained(base)
    return data, sid, base


def finished(folder: Path) -> bool:
    return (folder / "manifest.json").is_file()


def evaluated(folder: Path, models: list[str]) -> bool:
    """A finished evaluation that ranked every model asked for (a run with fewer variants is evaluated again)."""
    report = folder / "report.json"
    return report.is_file() and set(models) <= set(json.loads(report.read_text())["models"])


def gains(ranks: list[int | None]) -> list[float]:
    """Per-user NDCG@K of 0-based target ranks (None: not in the list)."""
    return [1.0 / math.log2(r + 2) if r is not None and r < K else 0.0 for r in ranks]


def summarise(reports: dict[int, dict], names: list[str], reference: str = REFERENCE) -> tuple[str, dict]:
    """Per-seed test HR@K / NDCG@K of every model, and `reference`'s seed-averaged per-user NDCG@K minus each
    other model's, with a paired bootstrap interval (the same users throughout)."""
    from rlrec.evaluation.paired import paired_values

    seeds = sorted(reports)
    users = [tuple(reports[s]["per_user"]["user_ids"]) for s in seeds]
    if len(set(users)) != 1:
        raise ValueError("the seeds' evaluations ranked different users; expected the same test users")
    per_user = {}
    for name in names:
        columns = [gains(reports[s]["per_user"]["ranks"][name]) for s in seeds]
        per_user[name] = {f"NDCG@{K}": [sum(v) / len(v) for v in zip(*columns, strict=True)]}
    against = paired_values(per_user, reference, seed=seeds[0])
    head = ["model"] + [f"seed {s}: HR@{K} / NDCG@{K}" for s in seeds] + [f"NDCG@{K}, seed mean",
                                                                           f"{reference} − model, paired 95% interval"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    summary: dict = {}
    for name in names:
        cells = [name]
        for s in seeds:
            metrics = reports[s]["models"][name]["all"]
            cells.append(f"{metrics[f'HR@{K}']:.4f} / {metrics[f'NDCG@{K}']:.4f}")
        mean = sum(per_user[name][f"NDCG@{K}"]) / len(users[0])
        cells.append(f"{mean:.4f}")
        interval = against.get(name, {}).get(f"NDCG@{K}")
        cells.append("" if interval is None else
                     f"{interval['mean']:+.4f} [{interval['low']:+.4f}, {interval['high']:+.4f}]")
        lines.append("| " + " | ".join(cells) + " |")
        summary[name] = {"ndcg_seed_mean": mean, "against_reference": interval}
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    sft_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", help="Prepared dataset folder (rlrec prepare)")
    parser.add_argument("--sid_dir", help="SID index folder (ML-100k: the compact model's)")
    parser.add_argument("--config", default=str(RECIPE), help="The SFT recipe every variant starts from")
    parser.add_argument("--model_name_or_path", default=None, help="Default: the recipe's (SmolLM2-135M)")
    parser.add_argument("--compact_model", default=None, help="A compact SFT model folder to rank beside them")
    parser.add_argument("--output_dir", default="runs/sa-init-ranking")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--reference", choices=list(VARIANTS), default=REFERENCE,
                        help="The variant the table compares every model with (default: the recipe's)")
    parser.add_argument("--smoke", action="store_true", help="Tiny generated data and model, a few steps, CPU")
    args = parser.parse_args(argv)

    from rlrec.cli import run_stage

    out = Path(args.output_dir)
    if args.smoke:
        data, sid, base = smoke_inputs(out)
        args.dataset_dir, args.sid_dir, args.model_name_or_path = str(data), str(sid), str(base)
        sft_args = SMOKE_SFT + sft_args
    elif not args.dataset_dir or not args.sid_dir:
        parser.error("--dataset_dir and --sid_dir are required, or run --smoke")
    if REFERENCE not in args.variants or args.reference not in args.variants:
        parser.error(f"--variants must include {REFERENCE!r} (the recipe; other runs take its step count) and "
                     f"--reference {args.reference!r}")
    reports, seconds = {}, {}
    for seed in args.seeds:
        runs = {}
        for name in sorted(args.variants, key=lambda name: name != REFERENCE):  # the recipe first
            run = out / f"{name}-seed{seed}"
            runs[name] = run
            if not finished(run):
                command = ["--config", args.config, "--dataset_dir", args.dataset_dir, "--sid_dir", args.sid_dir,
                           "--output_dir", str(run), "--seed", str(seed), "--eval_at_end", "false",
                           "--overwrite_output_dir", "true", *VARIANTS[name], *sft_args]
                if name in SAME_STEPS_AS_REFERENCE:
                    steps = json.loads((runs[REFERENCE] / "manifest.json").read_text())["global_step"]
                    command += ["--max_steps", str(steps)]
                if args.model_name_or_path:
                    command += ["--model_name_or_path", args.model_name_or_path]
                print(f"=== {name}, seed {seed}: rlrec sft {' '.join(command)}", flush=True)
                start = time.perf_counter()
                run_stage("sft", command)
                seconds[f"{name}-seed{seed}"] = round(time.perf_counter() - start, 1)
        compare = [f"{name}={path}" for name, path in runs.items() if name != REFERENCE]
        if args.compact_model:
            compare.append(f"compact={args.compact_model}")
        evaluation = out / f"evaluate-seed{seed}"
        if not evaluated(evaluation, [REFERENCE, *(c.split("=", 1)[0] for c in compare)]):
            shutil.rmtree(evaluation, ignore_errors=True)
            run_stage("evaluate", [
                "--model_path", str(runs[REFERENCE]), "--model_name", REFERENCE, "--compare", *compare,
                "--dataset_dir", args.dataset_dir, "--split", "test", "--k_values", "1", "5", str(K),
                "--num_beams", "20", "--baselines", "popularity", "sasrec", "--seed", str(seed),
                "--output_dir", str(evaluation), "--plot", "false", *(["--device", "cpu"] if args.smoke else [])])
        reports[seed] = json.loads((evaluation / "report.json").read_text())
    names = list(args.variants) + (["compact"] if args.compact_model else []) + ["popularity", "sasrec"]
    text, summary = summarise(reports, names, args.reference)
    users = len(reports[args.seeds[0]]["per_user"]["user_ids"])
    print(f"\nTest, all {users} users, seeds {args.seeds}; each variant's checkpoint chosen on valid "
          f"({out}):\n{text}")
    report_path = out / "sa_init_ranking.json"  # training times of runs reused here come from the earlier report
    earlier = json.loads(report_path.read_text()).get("seconds", {}) if report_path.is_file() else {}
    report_path.write_text(json.dumps({"reference": args.reference, "seconds": {**earlier, **seconds},
                                       "summary": summary}, indent=2))
    (out / "sa_init_ranking.md").write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
