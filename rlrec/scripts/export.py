"""`rlrec export`: turn a training output folder into a Hub-ready model folder, and optionally push it.

    rlrec export --model_path runs/ml-100k/grpo --output_dir runs/ml-100k/export
    HF_HUB_OFFLINE=0 rlrec export --model_path runs/ml-100k/grpo --output_dir runs/ml-100k/export \
        --push_to_hub true --hub_repo_id me/rlrec-ml-100k [--hub_private true] [--hub_revision v1]

`rlrec.export.folder` describes the folder (model, tokenizer with SID tokens, SID index, item catalog,
generation / inference configs, model card with the latest HR@K / NDCG@K, manifest). The folder is
written first and atomically; the push uploads it as it is, so a failed push can be retried with
`--push_only true` without exporting again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from trl import TrlParser

from rlrec.utils.defaults import DEFAULT_NUM_BEAMS
from rlrec.utils.errors import ConfigError
from rlrec.utils.output_dirs import check_output_dir
from rlrec.utils.ranges import AT_LEAST_ONE, Range


@dataclass
class ExportConfig:
    """Settings of `rlrec export`: which model, written where, described how, pushed where."""

    field_ranges: ClassVar[dict[str, Range]] = {"max_history": AT_LEAST_ONE}  # checked by rlrec/utils/ranges.py

    model_path: str = field(
        default="runs/ml-100k/grpo",
        metadata={"help": "Output folder of `rlrec sft` or `rlrec grpo` (full model, merged LoRA, or adapter), or of "
                  "`rlrec setrec`."},
    )
    output_dir: str = field(default="runs/ml-100k/export", metadata={"help": "Folder the export is written to."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an output_dir that already holds something (refused otherwise)."}
    )
    merge_lora: bool = field(
        default=True,
        metadata={"help": "Merge a LoRA adapter into its base weights (true) or export the adapter as it is "
                  "(false; its base model is then the local path it was trained from)."},
    )
    dataset_dir: str | None = field(
        default=None,
        metadata={"help": "Prepared dataset whose items.jsonl gives the catalog; None: the training manifest's."},
    )
    sid_dir: str | None = field(default=None, metadata={"help": "SID index folder; None: `<model_path>/sid`."})
    dtype: str = field(
        default="auto", metadata={"help": "dtype of the exported weights: `auto` (as saved), `float32`, `bfloat16`."}
    )
    num_beams: int = field(
        default=DEFAULT_NUM_BEAMS, metadata={"help": "Default beam width written to the inference config."}
    )
    max_history: int | None = field(
        default=None, metadata={"help": "History cap of prompts; None: as in training (`prompt_max_history`)."}
    )
    license: str = field(default="apache-2.0", metadata={"help": "License in the model card (match the base model "
                                                                 "and the data)."})
    base_model: str | None = field(
        default=None,
        metadata={"help": "Hub id of the base model for the card; None: the end of the base_model chain when it is "
                  "a Hub id (the embedded SmolLM2 maps to HuggingFaceTB/SmolLM2-135M-Instruct)."},
    )
    datasets: list[str] = field(default_factory=list, metadata={"help": "Hub dataset ids for the card."})
    tags: list[str] = field(default_factory=list, metadata={"help": "Extra tags for the card."})
    model_name: str | None = field(
        default=None, metadata={"help": "Name in the card and its model-index; None: hub_repo_id or the folder name."}
    )
    eval_report: str | None = field(
        default=None,
        metadata={"help": "Evaluation for the card: a report.json or the folder `rlrec evaluate` wrote it to; "
                  "None: the newest report inside model_path (end-of-training or `<model_path>/eval/<split>`)."},
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the exported folder to the Hub."})
    push_only: bool = field(default=False, metadata={"help": "Skip the export and push an existing output_dir."})
    hub_repo_id: str | None = field(default=None, metadata={"help": "Hub repository, `owner/name`."})
    hub_private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    hub_revision: str | None = field(default=None, metadata={"help": "Branch to push to (created); None: main."})
    hub_commit_message: str | None = field(default=None, metadata={"help": "Commit message of the upload."})

    def __post_init__(self) -> None:
        from rlrec.export.source import is_hub_id

        if (self.push_to_hub or self.push_only) and not self.hub_repo_id:
            raise ConfigError("push_to_hub: set hub_repo_id (owner/name)")
        if self.hub_repo_id and not is_hub_id(self.hub_repo_id):
            raise ConfigError(f"hub_repo_id={self.hub_repo_id!r}; expected owner/name")
        if self.num_beams < 1:
            raise ConfigError(f"num_beams={self.num_beams}; expected a positive integer")


def make_parser() -> TrlParser:
    return TrlParser((ExportConfig,))


def main(config: ExportConfig) -> dict[str, Any]:
    from rlrec.export import export_model, push_folder

    start = time.perf_counter()
    output = Path(config.output_dir)
    if config.push_only:
        if not output.is_dir():
            raise ConfigError(f"push_only: {output} does not exist; export first")
        manifest: dict[str, Any] = {"stage": "export", "output_dir": str(output)}
    else:
        check_output_dir(output, overwrite=config.overwrite_output_dir, stage="export")
        name = config.model_name or (config.hub_repo_id.split("/")[-1] if config.hub_repo_id else None)
        manifest = export_model(
            config.model_path, output, merge_lora=config.merge_lora, dataset_dir=config.dataset_dir,
            sid_dir=config.sid_dir, dtype=config.dtype, num_beams=config.num_beams, max_history=config.max_history,
            license=config.license, base_model=config.base_model, datasets=config.datasets, tags=config.tags,
            model_name=name, eval_report=config.eval_report,
        )
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in manifest["metrics"].items()) or "no evaluation recorded"
        print(f"rlrec export: {config.model_path} ({manifest['saved_as']}) -> {output} in "
              f"{time.perf_counter() - start:.1f}s; {metrics}", flush=True)
    if config.push_to_hub or config.push_only:
        pushed = push_folder(output, config.hub_repo_id, private=config.hub_private, revision=config.hub_revision,
                             commit_message=config.hub_commit_message)
        print(f"rlrec export: pushed to {pushed['url']} (revision {pushed['revision']})", flush=True)
        manifest = {**manifest, "pushed": pushed}
    return manifest


if __name__ == "__main__":  # `python rlrec/scripts/export.py ...` runs as `rlrec export ...`: the same checks
    from rlrec.cli import run_script

    run_script("export")
