"""The model card (`README.md`) of an exported model: Hub metadata in YAML front matter, then prose.

The front matter is what the Hub indexes: `base_model`, `datasets`, `tags`, `license`, `library_name`
and a `model-index` holding the latest evaluation's HR@K / NDCG@K (all test users), so the numbers
show on the model page and in leaderboards. It is built with `huggingface_hub`'s `ModelCardData` and
`EvalResult`, so its schema is the Hub's own. The Hub refuses a card whose `base_model` or `datasets`
are not Hub ids, so local paths stay out of the front matter and appear in the text instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from rlrec.evaluation.report import main_k

LIBRARY_NAME = "transformers"
DEFAULT_TAGS = ("rlrec", "recommendation", "generative-recommendation", "semantic-ids", "trl")
METRIC_NAMES = ("HR", "NDCG")


def evaluated_model(report: Mapping[str, Any]) -> str | None:
    """The report's entry of the trained model (`model`, else the first that is not a baseline)."""
    models = report.get("models") or {}
    if "model" in models:
        return "model"
    baselines = {"popularity", "sasrec"}
    return next((name for name in models if name not in baselines), None)


def report_metrics(report: Mapping[str, Any] | None, group: str = "all") -> dict[str, float]:
    """`{"HR@10": .., "NDCG@10": .., ...}` of the trained model in `report`, for one user group."""
    if not report:
        return {}
    name = evaluated_model(report)
    values = (report.get("models") or {}).get(name, {}).get(group, {}) if name else {}
    ks = report.get("k_values") or []
    return {f"{m}@{k}": float(values[f"{m}@{k}"]) for k in ks for m in METRIC_NAMES if f"{m}@{k}" in values}


def card_metadata(*, model_name: str, base_model: str | None, datasets: Sequence[str], license: str,
                  tags: Sequence[str], report: Mapping[str, Any] | None, dataset_name: str,
                  pipeline_tag: str = "text-generation") -> ModelCardData:
    """The front matter: the Hub's `ModelCardData`, the report's metrics as `EvalResult`s (the `model-index`)."""
    results = [
        EvalResult(task_type="text-generation", task_name="Sequential recommendation (next item)",
                   dataset_type=datasets[0] if datasets else dataset_name, dataset_name=dataset_name,
                   dataset_split=str(report.get("split", "test")), metric_type=name.lower(), metric_name=name,
                   metric_value=round(value, 6))
        for name, value in report_metrics(report).items()
    ]
    return ModelCardData(base_model=base_model or None, datasets=list(datasets) or None, library_name=LIBRARY_NAME,
                         license=license, pipeline_tag=pipeline_tag, tags=list(dict.fromkeys([*DEFAULT_TAGS, *tags])),
                         model_name=model_name if results else None, eval_results=results or None)


def _card(metadata: ModelCardData, body: list[str]) -> ModelCard:
    return ModelCard("\n".join(["---", metadata.to_yaml(), "---", "", *body]))


def _eval_table(report: Mapping[str, Any]) -> list[str]:
    k = main_k(report.get("k_values") or [10])
    groups = [g for g in ("all", "warm", "cold", "cold_pool", "head", "tail")
              if any(g in entry for entry in report["models"].values())]
    header = "| model | " + " | ".join(f"{m}@{k} {g}" for m in METRIC_NAMES for g in groups) + " |"
    lines = [header, "|" + " --- |" * (1 + len(METRIC_NAMES) * len(groups))]
    for name, entry in report["models"].items():
        cells = []
        for m in METRIC_NAMES:
            for g in groups:
                value = entry.get(g, {}).get(f"{m}@{k}")
                cells.append("" if value is None else f"{value:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counts = report.get("counts") or {}
    if counts:
        lines += ["", "Users per group: " + ", ".join(f"{g} {n}" for g, n in counts.items()) + "."]
    return lines


def _usage_lines() -> list[str]:
    return [
        "## Use", "",
        "```python",
        "from rlrec.inference import Recommender",
        "",
        'rec = Recommender.from_pretrained("path/or/downloaded/folder")',
        'for item in rec.recommend(["<item id or title>", "..."], k=10).items:',
        "    print(item.item_id, item.title, item.score)",
        "```", "",
        "or `rlrec recommend --model_path FOLDER --history '[\"id1\", \"id2\"]' --k 10`.",
        "",
    ]


def _evaluation_lines(report: Mapping[str, Any] | None, report_source: str | None) -> list[str]:
    lines = ["## Evaluation", ""]
    if report and report.get("models"):
        lines += [f"Split `{report.get('split', 'test')}`, from `{report_source}`; HR@K and NDCG@K with the "
                  "target as the single relevant item.", ""]
        lines += _eval_table(report)
    else:
        lines.append("No evaluation was recorded for this model (run `rlrec evaluate` before exporting).")
    return lines


def setrec_model_card(*, metadata: ModelCardData, model_name: str, base_chain: Sequence[str],
                      dataset_dir: str | None, dataset_summary: str, num_items: int, num_warm_items: int | None,
                      num_semantic_tokens: int, beta: float, max_history: int,
                      report: Mapping[str, Any] | None, report_source: str | None) -> ModelCard:
    """The `README.md` of an exported SETRec model (`rlrec setrec`): front matter, usage, method, evaluation."""
    lines = [
        f"# {model_name}", "",
        "A generative recommender trained with rlrec after SETRec (SIGIR '25): every item is a set of "
        f"continuous tokens, one collaborative-filtering token and {num_semantic_tokens} semantic tokens (an "
        "autoencoder over the item's text embedding). The LLM reads a history as token sets under a sparse "
        "attention mask and writes all tokens of the next item in one forward pass; every item is then "
        f"scored against them, `(1-β)·s_CF + β·Σ s_k` with β = {beta} (semantic tokens alone for items never "
        "seen in training). No beam search.", "",
        *_usage_lines(),
        "## How it was made", "",
        "- Training stage: `setrec`.",
    ]
    if base_chain:
        lines.append("- Base model chain (most recent first): " + " → ".join(f"`{b}`" for b in base_chain) + ".")
    warm = f" ({num_warm_items} with a CF token)" if num_warm_items is not None else ""
    lines += [
        f"- Data: {dataset_summary}" + (f" (prepared folder `{dataset_dir}`)." if dataset_dir else "."),
        f"- Items: {num_items}{warm}; history capped at {max_history} items.",
        "",
        *_evaluation_lines(report, report_source),
        "", "## Files", "",
        "- `llm/`: the language model (LoRA merged) and its tokenizer;",
        "- `setrec.pt`, `setrec.json`: the item tokenizers, query vectors and item ids;",
        "- `catalog.jsonl`: item id and title of every recommendable item;",
        "- `inference_config.json`: how `Recommender` serves it;",
        "- `manifest.json`: where the model came from and the evaluation above.",
        "",
    ]
    return _card(metadata, lines)


def model_card(*, metadata: ModelCardData, model_name: str, stage: str, saved_as: str,
               base_chain: Sequence[str], dataset_dir: str | None, dataset_summary: str, num_items: int,
               sid_shape: Sequence[int], max_history: int | None, num_beams: int,
               report: Mapping[str, Any] | None, report_source: str | None,
               truncated: Mapping[str, Any] | None = None, sid_only_prompts: bool = False) -> ModelCard:
    """The whole `README.md`: front matter, usage, how the model was made, evaluation, files."""
    levels = " × ".join(str(s) for s in sid_shape)
    lines = [
        f"# {model_name}", "",
        "A generative recommender trained with rlrec (on TRL): the model reads a user's "
        "history of items, each written as its Semantic ID (a short sequence of new tokens such as "
        "`<a_12><b_3><c_200>`), and writes the Semantic ID of the next item. Decoding is constrained beam "
        "search over the catalog's Semantic IDs, so every recommendation is a real item.", "",
        *_usage_lines(),
        "## How it was made", "",
        f"- Training stage: `{stage}`; saved as `{saved_as}`.",
    ]
    if base_chain:
        lines.append("- Base model chain (most recent first): " + " → ".join(f"`{b}`" for b in base_chain) + ".")
    if truncated:
        lines.append(f"- The base model was cut to its first {truncated.get('kept_layers')} of "
                     f"{truncated.get('of_layers')} decoder layers before training (`truncate_layers`).")
    lines += [
        f"- Data: {dataset_summary}" + (f" (prepared folder `{dataset_dir}`)." if dataset_dir else "."),
        f"- Semantic IDs: {len(sid_shape)} levels ({levels} codes) over {num_items} items; `sid/index.json` maps "
        "items to codes and tokens, with each token's keywords.",
        (f"- Model: a compact causal LM trained from scratch over the SID tokens only; its prompt is `<bos>` and "
         f"the history's SIDs, history capped at {max_history or 'all'} items"
         if base_chain and base_chain[-1] == "scratch" else
         f"- Prompt: a start token and the history's SIDs, no words (`sid_only_prompts`), history capped at "
         f"{max_history or 'all'} items"
         if sid_only_prompts else
         f"- Prompt: the next-item chat prompt of `rlrec.tasks.prompts`, history capped at {max_history or 'all'} "
         "items") + f"; {num_beams} beams by default (`inference_config.json`).",
        "",
        *_evaluation_lines(report, report_source),
    ]
    lines += [
        "", "## Files", "",
        "- model weights, `config.json`, `generation_config.json`, and the tokenizer with the SID tokens;",
        "- `sid/index.json`: item ↔ codes ↔ SID tokens, and each token's keywords;",
        "- `catalog.jsonl`: item id, title and SID of every recommendable item;",
        "- `inference_config.json`: beam width and history cap for `Recommender`;",
        "- `manifest.json`: where the model came from and the evaluation above.",
        "",
    ]
    return _card(metadata, lines)
