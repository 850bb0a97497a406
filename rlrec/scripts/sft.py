"""`rlrec sft`: teach an LLM to write the SID of a user's next item, with TRL's `SFTTrainer`.

    rlrec sft --config recipes/ml-100k/sft.yaml [--max_steps 50 --use_peft true ...]
    accelerate launch --config_file accelerate_configs/zero2.yaml -m rlrec sft --config ...

Steps: load the base model (a local folder, a .gguf file, or the embedded SmolLM2), add one token per
SID (level, code), SA-Init their rows from the clusters' keywords, build the task mixture
(`rlrec.tasks`), train (full fine-tune or LoRA with the SID rows trainable; loss on the answer only,
since every example is a conversational prompt-completion pair), save, then evaluate with constrained
beam search.

`output_dir` receives the trainer's `checkpoint-N` folders (for `--resume_from_checkpoint`), then a
plain model folder (LoRA merged unless `merge_lora: false`) with the tokenizer, `sid/index.json`
(the index with every token's keywords and descriptions) and `manifest.json`. The manifest is written last: a folder
without it is an unfinished run, and the stages that read an SFT model refuse it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trl import ModelConfig, TrlParser

from rlrec.models.scratch import SCRATCH, ScratchModelArguments, is_scratch
from rlrec.ranking.spec import RankingSpec
from rlrec.training.config import EndEvalArguments, RecSFTConfig, SFTScriptArguments
from rlrec.training.sft_setup import build_trainer, rebuild_base, wants_eval_loss
from rlrec.training.valid_selection import ValidSelectionArguments


def make_parser() -> TrlParser:
    return TrlParser((SFTScriptArguments, EndEvalArguments, RecSFTConfig, ModelConfig, ScratchModelArguments,
                      ValidSelectionArguments))


def main(script_args: SFTScriptArguments, eval_args: EndEvalArguments, training_args: RecSFTConfig,
         model_args: ModelConfig, scratch_args: ScratchModelArguments | None = None,
         valid_args: ValidSelectionArguments | None = None) -> dict[str, Any]:
    from rlrec.training.end_eval import end_eval_config, run_end_eval
    from rlrec.training.model import save_final_model
    from rlrec.training.stage import StageRun
    from rlrec.training.valid_selection import settle_valid_selection, valid_ranking

    valid_args = valid_args or ValidSelectionArguments()
    run = StageRun.open("sft", training_args, {"script": script_args, "eval": eval_args, "model": model_args,
                                               "valid_selection": valid_args, "training": training_args})
    script_args.settle(is_scratch(model_args.model_name_or_path))
    eval_config = end_eval_config(eval_args, training_args, run.output_dir, script_args.dataset_dir,
                                  script_args.max_history)
    checkpoints = settle_valid_selection(training_args, valid_args)
    eval_loss = wants_eval_loss(training_args)
    setup = build_trainer(script_args, training_args, model_args, scratch_args, valid_args)
    trainer, tokenizer, index = setup.trainer, setup.tokenizer, setup.index
    ranking = valid_ranking(valid_args, setup.dataset, index, tokenizer, script_args.max_history,
                            training_args.seed)
    if training_args.early_stopping_patience is not None:
        from transformers import EarlyStoppingCallback

        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=training_args.early_stopping_patience))
    result, selection = run.train(trainer, ranking, checkpoints)
    manifest = run.manifest(
        trainer, result, base_model=model_args.model_name_or_path or "smollm2", dataset_dir=script_args.dataset_dir,
        sid_dir=script_args.sid_dir, num_sid_tokens=len(setup.sid_ids),
        prompt_max_history=script_args.max_history, truncated=setup.truncated, sa_init=setup.sa_init_report,
        keywords=setup.keywords_report,
        # the size fields of a new scratch model (a continued one keeps its own config.json)
        scratch=dataclasses.asdict(scratch_args or ScratchModelArguments())
        if model_args.model_name_or_path == SCRATCH else None,
        tasks=setup.task_summary, valid_selection=selection,
        eval_loss={
            "curve": [{"step": e["step"], "eval_loss": e["eval_loss"]}
                      for e in trainer.state.log_history if "eval_loss" in e],
            "best_checkpoint": trainer.state.best_model_checkpoint, "best": trainer.state.best_metric,
            "stopped_early": training_args.early_stopping_patience is not None
            and trainer.state.global_step < trainer.state.max_steps,
        } if eval_loss else None,
    )
    del setup, ranking

    saved_as = save_final_model(trainer, run.output_dir, script_args.merge_lora,  # every process takes part
                                rebuild=lambda: rebuild_base(model_args, index, script_args.truncate_layers))
    if trainer.accelerator.is_main_process:  # beside the model: what every later stage reads
        tokenizer.save_pretrained(run.output_dir)
        index.save(run.output_dir / "sid")
        RankingSpec(max_history=script_args.max_history, num_beams=eval_args.eval_num_beams).save(run.output_dir)
    if not run.end_training(trainer):
        return {}
    report = run_end_eval(eval_config) if eval_config is not None and saved_as != "adapter" else None
    return run.write_manifest({**manifest, "saved_as": saved_as, **({"eval": report} if report else {})})
