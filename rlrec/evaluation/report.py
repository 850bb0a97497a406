"""The evaluation report: `report.json`, a `metrics.png` plot, and a plain-text comparison table.

`report.json` is what later stages read (the export's model card, comparisons across runs):

    {"split": "test", "k_values": [1, 3, 5, 10, 20],
     "models": {"<name>": {"all": {"HR@1": .., "NDCG@1": ..}, "warm": {...}, "cold": {...},
                           "counts": {"all": n, "warm": n, "cold": n}}},
     "counts": {"all": n, "warm": n, "cold": n}, "metadata": {...}}

On rated data every model also has `liked` / `neutral` / `disliked` groups, and a top-level `feedback` entry
gives the rule, the group sizes and each model's liked - disliked gap with its interval.

Both files are written to temporary names and renamed into place together, so a failed run never
leaves a report that disagrees with its plot. The plot shows HR@K and NDCG@K against K (all
examples, one line per model) and, below, bars at one K per group (all / warm / cold / ...), where
the differences that matter for generative recommenders show.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rlrec.evaluation.metrics import check_k_values, order_groups

logger = logging.getLogger(__name__)

REPORT_FILE = "report.json"
PLOT_FILE = "metrics.png"
METRIC_NAMES = ("HR", "NDCG")
DEFAULT_TABLE_GROUPS = ("all", "warm", "cold")


def main_k(k_values: Iterable[int], preferred: int = 10) -> int:
    """The K shown in tables and bar charts: `preferred` when evaluated, else the largest K below it."""
    ks = check_k_values(k_values)
    below = [k for k in ks if k <= preferred]
    return below[-1] if below else ks[0]


def _rounded(obj: Any, digits: int = 6) -> Any:
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, Mapping):
        return {key: _rounded(value, digits) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(value, digits) for value in obj]
    return obj


def build_report(split: str, models: Mapping[str, Mapping[str, Any]], k_values: Iterable[int],
                 metadata: Mapping[str, Any] | None = None,
                 sections: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `report.json` content. Top-level counts are the first model's; a model whose count of a
    shared group differs is logged, since its numbers are then not comparable. `sections` are more
    top-level entries (`paired`, `per_user`)."""
    if not models:
        raise ValueError("no models to report")
    names = list(models)
    counts = dict(models[names[0]].get("counts", {}))
    for name in names[1:]:
        other = models[name].get("counts", {})
        if any(other[g] != counts[g] for g in set(other) & set(counts)):
            logger.warning("model %r was evaluated on other example counts than %r: %s vs %s",
                           name, names[0], models[name].get("counts"), counts)
    report: dict[str, Any] = {
        "split": split,
        "k_values": list(check_k_values(k_values)),
        "models": _rounded({name: dict(metrics) for name, metrics in models.items()}),
        "counts": counts,
    }
    report.update(_rounded(dict(sections or {})))
    if metadata:
        report["metadata"] = dict(metadata)
    return report


def _atomic_files(writers: Mapping[Path, Callable[[Path], None]]) -> None:
    """Write every file under a temporary name next to it, then rename them all into place."""
    temps: dict[Path, Path] = {}
    try:
        for path, write in writers.items():
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
            temps[path] = tmp
            write(tmp)
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    for path, tmp in temps.items():
        os.replace(tmp, path)


def write_report(out_dir: str | os.PathLike, split: str, models: Mapping[str, Mapping[str, Any]],
                 k_values: Iterable[int], metadata: Mapping[str, Any] | None = None,
                 plot: bool = True, sections: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write `report.json` (and `metrics.png` when `plot`) into `out_dir`; return the report.

    Without matplotlib the plot is skipped with a warning rather than losing the numbers.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(split, models, k_values, metadata, sections)

    def write_json(path: Path) -> None:
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    writers: dict[Path, Callable[[Path], None]] = {out / REPORT_FILE: write_json}
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            logger.warning("matplotlib is not installed; skipping %s (pip install matplotlib)", PLOT_FILE)
        else:
            writers[out / PLOT_FILE] = lambda path: plot_metrics(report, path)
    _atomic_files(writers)
    logger.info("wrote evaluation report to %s", out)
    return report


def plot_metrics(report: Mapping[str, Any], path: str | os.PathLike) -> None:
    """HR@K and NDCG@K vs K (all examples) on top; bars at the main K per group below."""
    # The object-oriented API (no pyplot) needs no display and leaves global backend state alone.
    from matplotlib.figure import Figure

    ks = list(report["k_values"])
    models: Mapping[str, Mapping[str, Any]] = report["models"]
    counts: Mapping[str, int] = report.get("counts", {})
    k = main_k(ks)
    groups = ["all", *order_groups(g for m in models.values() for g in m if g not in ("all", "counts"))]
    colors = [f"C{i % 10}" for i in range(len(models))]

    has_beyond = any(f"tail_share@{k}" in m["all"] or f"novelty@{k}" in m["all"] for m in models.values())
    has_feedback = bool(report.get("feedback", {}).get("gap"))
    rows = 2 + has_beyond + has_feedback
    fig = Figure(figsize=(11, 4 * rows), layout="constrained")
    axes = fig.subplots(rows, 2)
    for col, metric in enumerate(METRIC_NAMES):
        ax = axes[0][col]
        for color, (name, metrics) in zip(colors, models.items(), strict=True):
            ax.plot(ks, [metrics["all"].get(f"{metric}@{kk}", float("nan")) for kk in ks], marker="o",
                    color=color, label=name)
        ax.set_xticks(ks)
        ax.set_xlabel("K")
        ax.set_ylabel(f"{metric}@K")
        ax.set_title(f"{metric}@K, all examples (n={counts.get('all', '?')})")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)

        ax = axes[1][col]
        width = 0.8 / max(1, len(models))
        for i, (color, (name, metrics)) in enumerate(zip(colors, models.items(), strict=True)):
            xs = [g + (i - (len(models) - 1) / 2) * width for g in range(len(groups))]
            ys = [metrics.get(group, {}).get(f"{metric}@{k}", float("nan")) for group in groups]  # nan: no bar
            bars = ax.bar(xs, ys, width=width, color=color, label=name)
            if len(models) <= 2:  # more labels would overlap; the table has the numbers
                ax.bar_label(bars, fmt=lambda v: "" if v != v else f"{v:.3f}", fontsize=7, padding=1)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{g}\n(n={counts.get(g, '?')})" for g in groups])
        ax.set_ylabel(f"{metric}@{k}")
        ax.set_title(f"{metric}@{k} by group")
        ax.grid(axis="y", alpha=0.3)
    if has_beyond:
        _plot_beyond(axes[2], models, k, colors)
    if has_feedback:
        _plot_feedback(axes[rows - 1], models, report["feedback"], colors)
    axes[0][0].legend(loc="best", fontsize="small")
    fig.suptitle(f"split: {report.get('split', '?')}")
    fig.savefig(path, format="png", dpi=100)


def _plot_beyond(axes: Any, models: Mapping[str, Mapping[str, Any]], k: int, colors: list[str]) -> None:
    """Accuracy against each model's tail share (left) and the [0, 1] beyond-accuracy metrics as bars (right)."""
    ax = axes[0]
    _scatter_models(ax, models, colors,
                    lambda metrics: (metrics["all"].get(f"tail_share@{k}"), metrics["all"].get(f"NDCG@{k}")))
    ax.set_xlabel(f"tail share@{k}")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title(f"accuracy against tail share at K={k}")
    ax.grid(alpha=0.3)

    ax = axes[1]
    names = ["coverage", "tail_share", "diversity"]
    width = 0.8 / max(1, len(models))
    for i, (color, (name, metrics)) in enumerate(zip(colors, models.items(), strict=True)):
        xs = [g + (i - (len(models) - 1) / 2) * width for g in range(len(names))]
        ax.bar(xs, [metrics["all"].get(f"{m}@{k}", float("nan")) for m in names], width=width, color=color,
               label=name)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{m}@{k}" for m in names])
    ax.set_ylim(0, 1)
    ax.set_title(f"beyond accuracy at K={k}")
    ax.grid(axis="y", alpha=0.3)


def _scatter_models(ax: Any, models: Mapping[str, Mapping[str, Any]], colors: list[str],
                    point_of: Callable[[Mapping[str, Any]], tuple[float | None, float | None]]) -> None:
    """One labelled point per model at `point_of(metrics)`; a model missing either coordinate is left out."""
    for color, (name, metrics) in zip(colors, models.items(), strict=True):
        x, y = point_of(metrics)
        if x is not None and y is not None:
            ax.scatter([x], [y], color=color, label=name)
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")


def _plot_feedback(axes: Any, models: Mapping[str, Mapping[str, Any]], feedback: Mapping[str, Any],
                   colors: list[str]) -> None:
    """Liked NDCG@K against disliked HR@K (up and to the left is better), and each model's gap with its interval."""
    k = feedback["k"]
    ax = axes[0]
    _scatter_models(ax, models, colors,
                    lambda metrics: (metrics.get("disliked", {}).get(f"HR@{k}"),
                                     metrics.get("liked", {}).get(f"NDCG@{k}")))
    ax.set_xlabel(f"HR@{k} on disliked targets (lower is better)")
    ax.set_ylabel(f"NDCG@{k} on liked targets")
    ax.set_title(f"liked against disliked (n={feedback['counts']['liked']} / {feedback['counts']['disliked']})")
    ax.grid(alpha=0.3)

    ax = axes[1]
    names = list(models)
    for metric_index, metric in enumerate(METRIC_NAMES):
        for i, (color, name) in enumerate(zip(colors, names, strict=True)):
            gap = feedback["gap"][name][f"{metric}@{k}"]
            x = metric_index + (i - (len(names) - 1) / 2) * 0.8 / max(1, len(names))
            ax.bar([x], [gap["mean"]], width=0.8 / max(1, len(names)), color=color,
                   yerr=[[gap["mean"] - gap["low"]], [gap["high"] - gap["mean"]]], capsize=2)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(METRIC_NAMES)))
    ax.set_xticklabels([f"{m}@{k} liked - disliked" for m in METRIC_NAMES])
    ax.set_title("gap between liked and disliked targets (95% interval)")
    ax.grid(axis="y", alpha=0.3)


def format_feedback_table(report: Mapping[str, Any], digits: int = 4) -> str:
    """HR@K / NDCG@K on liked and on disliked targets and their gap, one row per model; empty without ratings."""
    feedback = report.get("feedback")
    if not feedback:
        return ""
    k = feedback["k"]
    columns = [(group, m) for group in ("liked", "disliked") for m in METRIC_NAMES]
    rows = [["model", *(f"{m}@{k} {group}" for group, m in columns),
             *(f"{m}@{k} gap" for m in METRIC_NAMES if "gap" in feedback)]]
    for name, result in report["models"].items():
        cells = [result.get(group, {}).get(f"{m}@{k}") for group, m in columns]
        row = [name, *("-" if v is None else f"{v:.{digits}f}" for v in cells)]
        if "gap" in feedback:
            row += [f"{feedback['gap'][name][f'{m}@{k}']['mean']:+.{digits}f}" for m in METRIC_NAMES]
        rows.append(row)
    counts = feedback["counts"]
    return (_aligned(rows) + f"\ntargets: liked={counts['liked']} (rated >= {feedback['liked_threshold']:g}), "
            f"disliked={counts['disliked']} (rated <= {feedback['disliked_threshold']:g}); "
            "on disliked targets lower is better")


def format_beyond_table(models: Mapping[str, Mapping[str, Any]], k: int = 10, digits: int = 4) -> str:
    """The beyond-accuracy metrics at `k` (all users), one row per model; empty when no model has them."""
    from rlrec.evaluation.beyond import BEYOND_METRICS

    names = [m for m in BEYOND_METRICS if any(f"{m}@{k}" in r.get("all", {}) for r in models.values())]
    if not names:
        return ""
    rows = [["model", *(f"{m}@{k}" for m in names)]]
    for name, result in models.items():
        values = [result.get("all", {}).get(f"{m}@{k}") for m in names]
        rows.append([name, *("-" if v is None or v != v else f"{v:.{digits}f}" for v in values)])
    return _aligned(rows)


def _aligned(rows: list[list[str]]) -> str:
    """Rows as text: names left-aligned, numbers right-aligned so their decimal points line up."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                       for c, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(models: Mapping[str, Mapping[str, Any]], k: int = 10,
                 groups: Sequence[str] | None = None, metrics: Sequence[str] = METRIC_NAMES,
                 digits: int = 4) -> str:
    """Plain-text table, one row per model, columns `HR@10 all`, `HR@10 warm`, ...; `-` where missing.

    `groups` defaults to all / warm / cold, and `cold_pool` when a model has it. The last line gives the
    example count of each group (from the first model).
    """
    if groups is None:
        has_pool = any("cold_pool" in result for result in models.values())
        groups = DEFAULT_TABLE_GROUPS + (("cold_pool",) if has_pool else ())
    header = ["model", *(f"{m}@{k} {g}" for m in metrics for g in groups)]
    rows = [header]
    for name, result in models.items():
        row = [name]
        for m in metrics:
            for g in groups:
                value = result.get(g, {}).get(f"{m}@{k}")
                row.append("-" if value is None else f"{value:.{digits}f}")
        rows.append(row)
    lines = _aligned(rows).split("\n")
    if models:
        counts = next(iter(models.values())).get("counts", {})
        lines.append("examples: " + "  ".join(f"{g}={counts[g]}" for g in groups if g in counts))
    return "\n".join(lines)
