"""What an export reads from a training output folder: its manifest, its latest evaluation, its base model.

A training stage (`rlrec sft`, `rlrec grpo`) writes a model folder with `manifest.json` (written last: a
folder without it is an unfinished run) and evaluation reports: the end-of-training one inside the
manifest (`eval`) and in `eval/report.json`, and those `rlrec evaluate` writes later to
`eval/<split>/report.json`. The model card shows the most recent of them (by file time), because that
is the one the user last looked at.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrec.evaluation.report import REPORT_FILE
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import read_json
from rlrec.utils.output_dirs import MANIFEST

logger = logging.getLogger(__name__)

# `base_model: null` / "smollm2" in a recipe means the embedded SmolLM2 GGUF, converted from this Hub model.
EMBEDDED_BASE_MODELS = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass
class SourceModel:
    """A training output folder as the export sees it."""

    path: Path
    manifest: dict[str, Any]
    eval_report: dict[str, Any] | None = None
    eval_report_path: str | None = None
    base_chain: list[str] = field(default_factory=list)

    @property
    def stage(self) -> str:
        return str(self.manifest.get("stage", "unknown"))


def read_source(path: str | Path, eval_report: str | Path | None = None) -> SourceModel:
    """Read the folder's manifest (required: it marks a finished run) and find its latest evaluation.

    `eval_report` (a `report.json`, or the folder `rlrec evaluate` wrote it to) is used instead of the
    folder's own reports, for an evaluation written elsewhere (`output_dir` outside the model folder).
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: model folder not found")
    if not (folder / MANIFEST).is_file():
        raise ConfigError(f"{folder}: no {MANIFEST}; expected the output folder of a finished `rlrec sft`, "
                          "`rlrec grpo` or `rlrec setrec` run (the manifest is written last)")
    manifest = read_json(folder / MANIFEST)
    if not isinstance(manifest, dict):
        raise DataError(f"{folder / MANIFEST}: expected a JSON object")
    report, where = read_report(eval_report) if eval_report else latest_eval(folder, manifest)
    return SourceModel(folder, manifest, report, where, base_model_chain(folder, manifest))


def read_report(path: str | Path) -> tuple[dict[str, Any], str]:
    """An evaluation report given by the user: a `report.json` file or a folder holding one."""
    path = Path(path).expanduser()
    file = path / REPORT_FILE if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"eval_report: {path}: no {REPORT_FILE} found; expected the file or the folder "
                          "`rlrec evaluate` wrote it to")
    report = read_json(file)
    if not isinstance(report, dict) or not isinstance(report.get("models"), dict):
        raise DataError(f"{file}: not an rlrec evaluation report (expected a JSON object with `models`)")
    return report, str(file)


def latest_eval(folder: Path, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The most recent evaluation report of the folder (manifest `eval` or an `eval/**/report.json`)."""
    candidates: list[tuple[float, dict[str, Any], str]] = []
    if isinstance(manifest.get("eval"), dict):
        candidates.append(((folder / MANIFEST).stat().st_mtime, manifest["eval"], f"{MANIFEST}:eval"))
    for path in sorted((folder / "eval").rglob(REPORT_FILE)) if (folder / "eval").is_dir() else []:
        try:
            report = read_json(path)
        except DataError as err:
            logger.warning("skipping %s: %s", path, err)
            continue
        if isinstance(report, dict) and isinstance(report.get("models"), dict):
            candidates.append((path.stat().st_mtime, report, str(path.relative_to(folder))))
    if not candidates:
        return None, None
    _, report, where = max(candidates, key=lambda c: c[0])
    return report, where


def base_model_chain(folder: Path, manifest: dict[str, Any], max_hops: int = 8) -> list[str]:
    """`base_model` followed through earlier rlrec outputs: GRPO → SFT folder → the pretrained base."""
    return [base for base, _ in _manifest_chain(manifest, max_hops)]


def base_truncation(manifest: dict[str, Any], max_hops: int = 8) -> dict[str, Any] | None:
    """`{"kept_layers", "of_layers"}` when the SFT stage down the chain cut its base model (`truncate_layers`)."""
    for _, stage_manifest in _manifest_chain(manifest, max_hops):
        if isinstance(stage_manifest.get("truncated"), dict):
            return stage_manifest["truncated"]
    return None


def _manifest_chain(manifest: dict[str, Any], max_hops: int) -> list[tuple[str, dict[str, Any]]]:
    """(base_model, the manifest that names it) from this stage down to the pretrained base."""
    chain: list[tuple[str, dict[str, Any]]] = []
    current = manifest
    for _ in range(max_hops):
        base = current.get("base_model")
        if not base:
            break
        chain.append((str(base), current))
        nxt = Path(str(base)) / MANIFEST
        if not nxt.is_file():
            break
        try:
            current = read_json(nxt)
        except DataError:
            break
        if not isinstance(current, dict):
            break
    return chain


def hub_base_model(chain: list[str]) -> str | None:
    """The Hub id of the pretrained model at the end of the chain, or None when it is only a local folder."""
    if not chain:
        return None
    base = chain[-1]
    if base == "scratch":  # a from-scratch SID model has no pretrained base
        return None
    if base.lower() in EMBEDDED_BASE_MODELS:
        return EMBEDDED_BASE_MODELS[base.lower()]
    if _HUB_ID.fullmatch(base) and not Path(base).exists():
        return base
    return None


def is_hub_id(value: str) -> bool:
    return bool(_HUB_ID.fullmatch(value))
