"""SFT throughput of rlrec's SFT path: real (non-padding) tokens/s and ms/step.

    HF_HUB_OFFLINE=1 python benchmarks/sft_throughput.py --dataset_dir runs/demo/data --sid_dir runs/demo/sid \
        [--steps 12] [--warmup 2] [--batch 8] [--variants padded,padding_free] [--attn sdpa] [any `rlrec sft` flag]
    # the compact from-scratch SID model (0.62M parameters), as its recipe trains it:
    HF_HUB_OFFLINE=1 python benchmarks/sft_throughput.py --config recipes/ml-100k-compact/sft.yaml \
        --dataset_dir runs/ml-100k/data --sid_dir runs/ml-100k/sid --batch 256 --steps 40 --attn eager \
        --variants padded --repeats 2 [--bf16 false]

It builds exactly what `rlrec sft` trains (the recipe `--config`, default `recipes/ml-100k/sft.yaml`: SA-Init
SID rows, the task mixture, TRL's `SFTTrainer`) and times `--steps` optimizer steps per variant, leaving out the
first `--warmup`. Real tokens are counted on every collated batch (attention-mask ones when the batch is padded,
every position when it is padding-free), so a padded batch and a padding-free one are compared on the work that
matters. Variants:

- `padded`: TRL's default collation, every row padded to the longest of its batch;
- `padding_free`: rows concatenated into one sequence with restarting position ids (no padding at all;
  transformers turns the position ids into a block-diagonal mask for SDPA and eager attention, and
  flash-attention kernels take them directly);
- `packed`: TRL's `packing=True` (BFD packing into `max_length` rows, padding-free underneath).

Extra flags go to `rlrec sft`'s parser unchanged (`--optim adamw_torch_fused`, `--torch_compile true`,
`--bf16 true`, `--gradient_checkpointing true`, ...), which is how a profile of the options is run. Prints one
line per variant and, last, the best variant's `real tokens/s`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VARIANTS = {
    "padded": [],
    "padding_free": ["--padding_free", "true"],
    "packed": ["--packing", "true"],
}


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="recipes/ml-100k/sft.yaml")
    parser.add_argument("--dataset_dir", default="runs/demo/data")
    parser.add_argument("--sid_dir", default="runs/demo/sid")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps timed per variant")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the figures (>= 1)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every variant, alternating")
    parser.add_argument("--batch", type=int, default=8, help="per-device batch size")
    parser.add_argument("--variants", default="padded,padding_free", help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--attn", default="sdpa", help="attention implementation (sdpa, eager, flash_attention_2)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    return parser.parse_known_args()


def time_variant(name: str, args: argparse.Namespace, extra: list[str]) -> dict[str, float]:
    """Train `args.steps` steps of the SFT path with `name`'s collation; return its figures."""
    from transformers import TrainerCallback

    from rlrec.scripts import sft
    from rlrec.training.sft_setup import build_trainer

    class CountingCollator:
        """The trainer's collator, counting the real tokens of every batch it builds."""

        def __init__(self, collate) -> None:
            self.collate, self.tokens = collate, 0

        def __call__(self, examples):
            batch = self.collate(examples)
            mask = batch.get("attention_mask")
            self.tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
            return batch

    class StepClock(TrainerCallback):
        """Wall time and the real-token count at the end of every step."""

        def __init__(self, counter: CountingCollator) -> None:
            self.counter, self.marks = counter, []

        def on_step_end(self, training_args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), time.process_time(), self.counter.tokens))

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--config", args.config, "--dataset_dir", args.dataset_dir, "--sid_dir", args.sid_dir,
                "--output_dir", tmp, "--max_steps", str(args.steps), "--per_device_train_batch_size",
                str(args.batch), "--num_train_examples", str(args.steps * args.batch), "--logging_steps",
                str(args.steps), "--report_to", "none", "--eval_at_end", "false", "--attn_implementation", args.attn,
                *VARIANTS[name], *extra]
        configs = sft.make_parser().parse_args_and_config(argv)
        script_args, _eval_args, training_args, model_args, scratch_args = configs[:5]
        if training_args.padding_free and not training_args.packing:
            training_args.max_length = None  # TRL refuses a max_length it would not enforce; rows are short
        trainer = build_trainer(script_args, training_args, model_args, scratch_args).trainer
        counter = CountingCollator(trainer.data_collator)
        trainer.data_collator = counter  # the train dataloader is built in train(), from this attribute
        clock = StepClock(counter)
        trainer.add_callback(clock)
        trainer.train()
    timed = clock.marks[args.warmup - 1:]
    (t0, c0, n0), (t1, c1, n1) = timed[0], timed[-1]
    steps = len(timed) - 1
    return {"steps": steps, "ms_per_step": 1000 * (t1 - t0) / steps, "tokens_per_s": (n1 - n0) / (t1 - t0),
            "tokens_per_step": (n1 - n0) / steps, "cpu_ms_per_step": 1000 * (c1 - c0) / steps}


def main() -> None:
    args, extra = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; expected any of {', '.join(VARIANTS)}")
    if not 1 <= args.warmup < args.steps or args.repeats < 1:
        raise SystemExit("expected 1 <= --warmup < --steps and --repeats >= 1")
    print(f"SFT path of {args.config} on {args.dataset_dir}: batch {args.batch}, {args.steps} steps "
          f"({args.warmup} warm-up), attention {args.attn}, {args.threads} threads, extra flags {extra or 'none'}")
    results: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.repeats):  # variants alternate, so a slow spell of a shared machine hits them alike
        for name in names:
            figures = time_variant(name, args, extra)
            results.setdefault(name, []).append(figures)
            print(f"{name:>13}: {figures['tokens_per_s']:9.1f} real tokens/s  {figures['ms_per_step']:8.1f} ms/step  "
                  f"{figures['cpu_ms_per_step']:8.1f} CPU ms/step  {figures['tokens_per_step']:7.1f} real tokens/step",
                  flush=True)
    best_of = {name: max(runs, key=lambda f: f["tokens_per_s"]) for name, runs in results.items()}
    if args.repeats > 1:
        for name, figures in best_of.items():
            print(f"{name:>13} best of {args.repeats}: {figures['tokens_per_s']:9.1f} real tokens/s  "
                  f"{figures['ms_per_step']:8.1f} ms/step")
    best = max(best_of, key=lambda n: best_of[n]["tokens_per_s"])
    print(f"best: {best}")
    print(f"real tokens/s: {best_of[best]['tokens_per_s']:.1f}")


if __name__ == "__main__":
    main()
