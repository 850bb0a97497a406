"""SA-Init ablation: how fast the SID tokens converge from five initialisations, by the validation loss.

    # MiniOneRec's Industrial_and_Scientific with its SIDs, SmolLM2-135M, only the SID rows train (a CPU is enough):
    python benchmarks/sa_init_ablation.py --data_path data/MiniOneRec/data/Amazon \
        --keyword_file data/TS-Rec-Review/data/Amazon/semantics/Industrial_and_Scientific.description_keywords.json \
        --max_steps 100 --eval_steps 25 --output_dir runs/sa-init-ablation -- --use_cpu true --bf16 true
    # the same path on tiny generated data and a tiny model, in seconds (what the test suite runs):
    python benchmarks/sa_init_ablation.py --smoke --output_dir /tmp/sa-init-smoke

The five variants are `rlrec sft --config recipes/amazon-industrial/sft-fast.yaml` with the same seed, steps, lr
and batch, only the next-item task and `freeze_llm: true` (the SID rows are the only trainable weights), and:
`sa_init: none` (the model's random rows), `mean_vocab`, `keywords` from c-TF-IDF without and with norm matching,
and `keywords` from TS-Rec's released keyword file (norm matched). The validation loss is evaluated before the
first step (`eval_on_start`) and every `eval_steps` on the same `num_eval_examples` valid rows; the table gives
it per variant with the SID rows' mean norm after SA-Init (the manifest's `sa_init` report) and the wall time.
`rlrec prepare` and `rlrec sid` (MiniOneRec's SIDs) run first, as in `benchmarks/paper_table.py`. A variant whose
folder holds a finished run is skipped (delete it to redo it). Words after `--` go to every `rlrec sft` run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CATEGORY = "Industrial_and_Scientific"
RECIPES = ROOT / "recipes" / "amazon-industrial"

# name, `rlrec sft` flags. Every run takes keyword_source ctfidf (with `--keyword_file ''`, clearing the recipe's
# file) unless its flags name the file; SA-Init reads the keywords only in the keywords mode.
VARIANTS = [
    ("none (random rows)", ["--sa_init", "none"]),
    ("mean_vocab", ["--sa_init", "mean_vocab"]),
    ("keywords, c-TF-IDF, no norm match", ["--sa_init", "keywords", "--sa_init_match_norm", "false"]),
    ("keywords, c-TF-IDF, norm matched", ["--sa_init", "keywords"]),
    ("keywords, TS-Rec file, norm matched", ["--sa_init", "keywords", "--keyword_source", "file"]),
]
FOLDERS = ["none", "mean_vocab", "ctfidf_raw_norm", "ctfidf", "tsrec_file"]

# --smoke: a tiny model on tiny data, CPU, fp32.
SMOKE_SFT = ["--use_cpu", "true", "--bf16", "false", "--dtype", "float32", "--per_device_eval_batch_size", "8"]


def paper_table():
    """benchmarks/paper_table.py as a module: its smoke data, smoke model and prepare/sid command lines."""
    spec = importlib.util.spec_from_file_location("paper_table", ROOT / "benchmarks" / "paper_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sft_argv(args: argparse.Namespace, data: Path, sid: Path, out: Path, flags: list[str]) -> list[str]:
    argv = ["--config", str(RECIPES / "sft-fast.yaml"), "--dataset_dir", str(data), "--sid_dir", str(sid),
            "--output_dir", str(out), "--tasks", '{"next_item": 1.0}', "--freeze_llm", "true",
            "--max_steps", str(args.max_steps), "--per_device_train_batch_size", str(args.batch_size),
            "--gradient_accumulation_steps", "1", "--learning_rate", str(args.learning_rate),
            "--lr_scheduler_type", "constant", "--warmup_steps", "0", "--weight_decay", "0.0",
            "--eval_strategy", "steps", "--eval_steps", str(args.eval_steps), "--eval_on_start", "true",
            "--num_eval_examples", str(args.num_eval_examples), "--early_stopping_patience", "0",
            "--save_strategy", "no", "--eval_at_end", "false", "--logging_steps", str(args.eval_steps),
            "--report_to", "none", "--seed", str(args.seed), "--keyword_source", "ctfidf", "--keyword_file", ""]
    if args.model_name_or_path:
        argv += ["--model_name_or_path", args.model_name_or_path]
    if "file" in flags:  # the later flag wins
        flags = flags + ["--keyword_file", str(args.keyword_file)]
    return argv + flags + args.sft_args


def curve(manifest: dict) -> dict[int, float]:
    return {int(point["step"]): float(point["eval_loss"]) for point in manifest["eval_loss"]["curve"]}


def table(manifests: dict[str, dict]) -> str:
    """Valid loss per variant at every evaluated step, with the SID rows' norm after init and the wall time."""
    steps = sorted({step for manifest in manifests.values() for step in curve(manifest)})
    head = ["variant", "SID row norm at init (keyword rows)"] + [f"step {s}" for s in steps] + ["seconds"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for name, manifest in manifests.items():
        losses = curve(manifest)
        report = manifest["sa_init"]
        norm = report.get("keyword_row_norm", report.get("sid_row_norm"))  # keyword modes: the rows SA-Init wrote
        cells = [name, "" if norm is None else f"{norm:.2f}"]
        cells += [f"{losses[s]:.3f}" if s in losses else "" for s in steps]
        cells.append(f"{manifest.get('seconds', float('nan')):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    sft_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_path", help="MiniOneRec's data/Amazon folder (valid/ test/ info/ index/)")
    parser.add_argument("--keyword_file", help="TS-Rec's Industrial_and_Scientific.description_keywords.json")
    parser.add_argument("--model_name_or_path", default=None, help="Default: the recipe's (SmolLM2-135M)")
    parser.add_argument("--output_dir", default="runs/sa-init-ablation")
    parser.add_argument("--max_steps", type=int, default=100)
    parser.add_argument("--eval_steps", type=int, default=25)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--num_eval_examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--smoke", action="store_true", help="Tiny generated data and model, a few steps, CPU")
    parser.add_argument("--variants", nargs="+", choices=FOLDERS, default=FOLDERS,
                        help="Run only these variants (their folder names); default: all five")
    args = parser.parse_args(argv)
    args.sft_args = sft_args

    from rlrec.cli import run_stage

    out = Path(args.output_dir)
    pt = paper_table()
    if args.smoke:
        args.data_path = str(pt.write_smoke_data(out / "smoke-data", CATEGORY))
        args.model_name_or_path = str(pt.smoke_model(out / "smoke-model"))
        args.keyword_file = str(Path(args.data_path) / "semantics" / f"{CATEGORY}.description_keywords.json")
        args.max_steps, args.eval_steps, args.batch_size, args.num_eval_examples = 4, 2, 4, 8
        args.sft_args = SMOKE_SFT + args.sft_args
    elif not args.data_path or not args.keyword_file:
        parser.error("--data_path and --keyword_file are required (MiniOneRec's data/Amazon, TS-Rec's keyword "
                     "file), or run --smoke")
    folders = {"prepare": out / "data", "sid": out / "sid"}
    pt_args = argparse.Namespace(data_path=args.data_path, smoke=False)
    for stage in ("prepare", "sid"):
        if not pt.finished(stage, folders[stage]):
            run_stage(stage, pt.stage_argv(stage, RECIPES, "", folders, pt_args, CATEGORY))
    manifests = {}
    for (name, flags), folder in zip(VARIANTS, FOLDERS, strict=True):
        if folder not in args.variants:
            continue
        run = out / folder
        if not pt.finished("sft", run):
            command = sft_argv(args, folders["prepare"], folders["sid"], run, flags)
            print(f"=== {name}: rlrec sft {' '.join(repr(a) if a == '' or ' ' in a else a for a in command)}",
                  flush=True)
            start = time.perf_counter()
            run_stage("sft", command)
            print(f"=== {name}: {time.perf_counter() - start:.0f} s", flush=True)
        manifests[name] = json.loads((run / "manifest.json").read_text())
    text = table(manifests)
    print(f"\n{CATEGORY}: valid loss of the next-item task on {args.num_eval_examples} valid rows, "
          f"{args.max_steps} steps of batch {args.batch_size}, lr {args.learning_rate} ({out}):\n{text}")
    if not all(math.isfinite(v) for m in manifests.values() for v in curve(m).values()):
        print("warning: a non-finite validation loss", file=sys.stderr)
    return text


if __name__ == "__main__":
    main()
