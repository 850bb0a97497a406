"""Write a Hub-ready folder from a training output folder: everything needed to recommend, nothing else.

The export holds the model (LoRA merged into the base weights unless `merge_lora=False` keeps an
adapter), the tokenizer with the SID tokens, `sid/index.json`, `catalog.jsonl` (item id, title, SID:
the only part of the dataset a deployed model needs), `generation_config.json`, `inference_config.json`
(beam width and the trained history cap, read by `Recommender`), the model card `README.md`, the
latest evaluation report and `manifest.json`. It is written with `atomic_output_dir`, so a failed export
leaves no folder (and an earlier export is replaced only by a complete one).

A kept adapter names its base model by the local path it was trained from (`base_model_name_or_path`),
which only exists on the machine that trained it: export merged weights to publish on the Hub.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rlrec
from rlrec.export.card import card_metadata, model_card, report_metrics, setrec_model_card
from rlrec.export.source import SourceModel, base_truncation, hub_base_model, read_source
from rlrec.inference.catalog import CATALOG_FILE, Catalog
from rlrec.inference.recommender import MANIFEST
from rlrec.models.sid_vocab import uses_sid_only_prompts
from rlrec.ranking.spec import RankingSpec
from rlrec.sid.index import INDEX_FILE, SIDIndex
from rlrec.utils.defaults import DEFAULT_NUM_BEAMS
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import atomic_output_dir, read_json, write_json

logger = logging.getLogger(__name__)

EVAL_REPORT_FILE = "eval_report.json"
CARD_FILE = "README.md"


def _dataset_summary(dataset_dir: Path) -> tuple[str, str | None]:
    """A one-line description of the prepared dataset and its source name, from its manifest."""
    path = dataset_dir / "manifest.json"
    if not path.is_file():
        return f"prepared dataset `{dataset_dir.name}`", None
    manifest = read_json(path)
    config = manifest.get("config") if isinstance(manifest, dict) else None
    source = config.get("source") if isinstance(config, dict) else None
    counts = manifest.get("counts") if isinstance(manifest, dict) else None
    parts = [f"`{source}`" if source else f"`{dataset_dir.name}`"]
    if isinstance(counts, dict):
        parts.append(", ".join(f"{v} {k}" for k, v in counts.items() if isinstance(v, int)))
    return " — ".join(p for p in parts if p), source


def _check_not_inside(source: Path, output: Path) -> None:
    src, out = source.resolve(), output.resolve()
    if out == src or src in out.parents or out in src.parents:
        raise ConfigError(f"output_dir {output} overlaps the model folder {source}; export to a separate folder")


def _save_model(source: Path, out: Path, merge_lora: bool, dtype: str) -> tuple[str, Any, Any]:
    """Save weights + tokenizer into `out`; return (saved_as, model config or None, tokenizer)."""
    from rlrec.models.checkpoint import ADAPTER_CONFIG, ADAPTER_WEIGHTS, is_adapter_dir, load_checkpoint
    from rlrec.models.loading import load_tokenizer

    if is_adapter_dir(source) and not merge_lora:
        # Checked by loading once: an adapter that cannot be rebuilt must not be published.
        load_checkpoint(source, device="cpu", dtype=dtype)
        for name in (ADAPTER_CONFIG, *ADAPTER_WEIGHTS):
            if (source / name).is_file():
                shutil.copy2(source / name, out / name)
        tokenizer = load_tokenizer(source)
        tokenizer.save_pretrained(out)
        return "adapter", None, tokenizer
    model, tokenizer = load_checkpoint(source, device="cpu", dtype=dtype)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    merged = is_adapter_dir(source) or read_json(source / MANIFEST).get("saved_as") == "merged"
    return ("merged" if merged else "full"), model.config, tokenizer


def _save_generation_config(out: Path, tokenizer: Any, model_config: Any, num_levels: int, num_beams: int) -> None:
    """Plain `generate` settings matching the SIDs (depth, beams); rlrec itself decodes with its trie."""
    from transformers import GenerationConfig

    eos = getattr(model_config, "eos_token_id", None) if model_config is not None else None
    config = GenerationConfig(
        max_new_tokens=num_levels, num_beams=num_beams, num_return_sequences=num_beams, do_sample=False,
        eos_token_id=eos if eos is not None else tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=getattr(model_config, "bos_token_id", None) if model_config is not None else None,
    )
    config.save_pretrained(out)


def _catalog(source: SourceModel, dataset_dir: str | os.PathLike | None, item_ids: Sequence[str],
             what: str) -> tuple[Path, Catalog]:
    """The prepared dataset folder and its catalog, checked to hold every item the model can recommend."""
    data_dir = dataset_dir or source.manifest.get("dataset_dir")
    if not data_dir or not (Path(data_dir) / "items.jsonl").is_file():
        raise DataError(f"{source.path}: the item catalog is needed ({data_dir or 'no dataset_dir in the manifest'}"
                        "/items.jsonl not found); set dataset_dir to the prepared dataset the model was trained on")
    data_dir = Path(data_dir)
    catalog = Catalog.load(data_dir / "items.jsonl")
    missing = [item for item in item_ids if item not in catalog]
    if missing:
        raise DataError(f"{data_dir / 'items.jsonl'}: {len(missing)} items of {what} are not in the catalog "
                        f"(first: {missing[0]!r}); use the dataset the model was trained on")
    return data_dir, catalog


def _write_manifest(tmp: Path, source: SourceModel, *, source_path: str, saved_as: str, hub_base: str | None,
                    data_dir: Path, num_items: int, **extra: Any) -> dict[str, Any]:
    """Write the export's `manifest.json` last (it marks a complete folder), listing every file; return it."""
    manifest = {
        "stage": "export",
        "rlrec_version": rlrec.__version__,
        "source": source_path,
        "source_stage": source.stage,
        "saved_as": saved_as,
        "base_model": source_path,
        "hub_base_model": hub_base,
        "dataset_dir": str(data_dir),
        **extra,
        "num_items": num_items,
        "eval_source": source.eval_report_path,
        "metrics": report_metrics(source.eval_report),
        "files": sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()) + [MANIFEST],
    }
    write_json(tmp / MANIFEST, manifest)
    return manifest


def export_model(model_path: str | os.PathLike, output_dir: str | os.PathLike, *, merge_lora: bool = True,
                 dataset_dir: str | os.PathLike | None = None, sid_dir: str | os.PathLike | None = None,
                 dtype: str = "auto", num_beams: int = DEFAULT_NUM_BEAMS, max_history: int | None = None,
                 license: str = "apache-2.0", base_model: str | None = None, datasets: Sequence[str] = (),
                 tags: Sequence[str] = (), model_name: str | None = None,
                 eval_report: str | os.PathLike | None = None) -> dict[str, Any]:
    """Export the training output folder `model_path` to `output_dir`; return the export's manifest.

    `dataset_dir` / `sid_dir` / `max_history` default to what the training manifest recorded;
    `base_model` and `datasets` are the Hub ids for the card (default: the pretrained base at the end of
    the `base_model` chain when it is a Hub id, and none). `model_name` names the model in the card
    (default: the output folder's name). `eval_report` points at an evaluation written outside the model
    folder (default: the folder's latest own report).
    """
    source = read_source(model_path, eval_report)
    output = Path(output_dir)
    _check_not_inside(source.path, output)
    if source.stage == "setrec":
        return export_setrec(source, output, dataset_dir=dataset_dir, license=license, base_model=base_model,
                             datasets=datasets, tags=tags, model_name=model_name)
    if num_beams < 1:
        raise ConfigError(f"num_beams={num_beams}; expected a positive integer")
    sid_folder = Path(sid_dir) if sid_dir else source.path / "sid"
    if not (sid_folder / INDEX_FILE).is_file():
        raise ConfigError(f"{sid_folder}: no SID index ({INDEX_FILE}); set sid_dir to the index the model was "
                          "trained with")
    index = SIDIndex.load(sid_folder)
    data_dir, catalog = _catalog(source, dataset_dir, index.item_ids, f"the SID index {sid_folder}")
    trained = RankingSpec.load(source.path)
    if max_history is None:
        max_history = trained.max_history
    name = model_name or output.name
    summary, data_source = _dataset_summary(data_dir)
    hub_base = base_model or hub_base_model(source.base_chain)

    with atomic_output_dir(output) as tmp:
        saved_as, model_config, tokenizer = _save_model(source.path, tmp, merge_lora, dtype)
        _save_generation_config(tmp, tokenizer, model_config, index.num_levels, num_beams)
        index.save(tmp / "sid")
        catalog.save(tmp / CATALOG_FILE, index)
        RankingSpec(max_history=max_history, num_beams=num_beams,
                    details={"num_levels": index.num_levels, "codebook_sizes": index.codebook_sizes}).save(tmp)
        if source.eval_report is not None:
            write_json(tmp / EVAL_REPORT_FILE, source.eval_report)
        metadata = card_metadata(model_name=name, base_model=hub_base, datasets=list(datasets), license=license,
                                 tags=list(tags), report=source.eval_report,
                                 dataset_name=data_source or data_dir.name)
        model_card(
            metadata=metadata, model_name=name, stage=source.stage, saved_as=saved_as, base_chain=source.base_chain,
            dataset_dir=str(data_dir), dataset_summary=summary, num_items=len(index),
            sid_shape=index.codebook_sizes, max_history=max_history, num_beams=num_beams,
            report=source.eval_report, report_source=source.eval_report_path,
            truncated=base_truncation(source.manifest), sid_only_prompts=uses_sid_only_prompts(tokenizer),
        ).save(tmp / CARD_FILE)
        manifest = _write_manifest(tmp, source, source_path=str(model_path), saved_as=saved_as, hub_base=hub_base,
                                   data_dir=data_dir, num_items=len(index), prompt_max_history=max_history)
    logger.info("exported %s (%s) to %s", model_path, saved_as, output)
    return manifest


def export_setrec(source: SourceModel, output: Path, *, dataset_dir: str | os.PathLike | None = None,
                  license: str = "apache-2.0", base_model: str | None = None, datasets: Sequence[str] = (),
                  tags: Sequence[str] = (), model_name: str | None = None) -> dict[str, Any]:
    """Export a SETRec folder (`rlrec setrec`): its model files as saved (LoRA already merged), the catalog
    without SIDs, an inference config, the latest evaluation, a SETRec model card and the manifest."""
    from rlrec.setrec.io import LLM_DIR, META_FILE, WEIGHTS_FILE

    meta = read_json(source.path / META_FILE) if (source.path / META_FILE).is_file() else None
    if not isinstance(meta, dict) or not isinstance(meta.get("item_ids"), list) or "config" not in meta:
        raise DataError(f"{source.path / META_FILE}: missing or malformed; expected a folder written by rlrec setrec")
    for name in (LLM_DIR, WEIGHTS_FILE):
        if not (source.path / name).exists():
            raise DataError(f"{source.path}: not a saved SETRec model (missing {name})")
    item_ids = [str(i) for i in meta["item_ids"]]
    config = meta["config"]
    data_dir, catalog = _catalog(source, dataset_dir, item_ids, "the SETRec model")
    name = model_name or output.name
    summary, data_source = _dataset_summary(data_dir)
    hub_base = base_model or hub_base_model(source.base_chain)
    with atomic_output_dir(output) as tmp:
        shutil.copytree(source.path / LLM_DIR, tmp / LLM_DIR)
        for file in (WEIGHTS_FILE, META_FILE):
            shutil.copy2(source.path / file, tmp / file)
        catalog.save(tmp / CATALOG_FILE, item_ids=item_ids)
        RankingSpec(decoding="setrec_grounding", max_history=config.get("max_history"),
                    details={"num_semantic_tokens": config.get("num_semantic_tokens"),
                             "beta": config.get("beta")}).save(tmp)
        if source.eval_report is not None:
            write_json(tmp / EVAL_REPORT_FILE, source.eval_report)
        metadata = card_metadata(model_name=name, base_model=hub_base, datasets=list(datasets), license=license,
                                 tags=["setrec", *tags], report=source.eval_report,
                                 dataset_name=data_source or data_dir.name, pipeline_tag="feature-extraction")
        setrec_model_card(
            metadata=metadata, model_name=name, base_chain=source.base_chain, dataset_dir=str(data_dir),
            dataset_summary=summary, num_items=len(item_ids), num_warm_items=source.manifest.get("num_warm_items"),
            num_semantic_tokens=int(config.get("num_semantic_tokens", 0)), beta=float(config.get("beta", 0.0)),
            max_history=int(config.get("max_history", 0)), report=source.eval_report,
            report_source=source.eval_report_path,
        ).save(tmp / CARD_FILE)
        manifest = _write_manifest(tmp, source, source_path=str(source.path), saved_as="setrec", hub_base=hub_base,
                                   data_dir=data_dir, num_items=len(item_ids))
    logger.info("exported SETRec model %s to %s", source.path, output)
    return manifest
