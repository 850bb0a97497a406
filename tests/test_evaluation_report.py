"""report.json schema, the PNG plot, atomic writing, and the text table."""

import json

import pytest

from rlrec.evaluation import report as report_module
from rlrec.evaluation.report import format_table, main_k, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K_VALUES = (1, 5, 10)


def metrics(scale: float, cold: bool = True) -> dict:
    result = {"all": {}, "warm": {}, "counts": {"all": 10, "warm": 8}}
    groups = ["all", "warm"]
    if cold:
        result["cold"] = {}
        result["counts"]["cold"] = 2
        groups.append("cold")
    for g, factor in zip(groups, (1.0, 1.1, 0.5), strict=False):
        for k in K_VALUES:
            result[g][f"HR@{k}"] = scale * factor * k / 10
            result[g][f"NDCG@{k}"] = scale * factor * k / 20
    return result


def models() -> dict:
    return {"sft": metrics(0.4), "popularity": metrics(0.1234567891)}


def test_write_report_schema_and_png(tmp_path):
    out = tmp_path / "eval"
    report = write_report(out, "test", models(), K_VALUES, metadata={"checkpoint": "ckpt"})
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == report
    assert set(on_disk) == {"split", "k_values", "models", "counts", "metadata"}
    assert on_disk["split"] == "test" and on_disk["k_values"] == [1, 5, 10]
    assert list(on_disk["models"]) == ["sft", "popularity"]
    assert on_disk["counts"] == {"all": 10, "warm": 8, "cold": 2}
    assert on_disk["models"]["popularity"]["all"]["HR@10"] == 0.123457  # rounded to 6 digits
    assert on_disk["models"]["sft"]["cold"]["NDCG@5"] == pytest.approx(0.4 * 0.5 * 5 / 20)
    png = (out / "metrics.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    assert sorted(p.name for p in out.iterdir()) == ["metrics.png", "report.json"]  # no temp files left


def test_failed_plot_leaves_nothing(tmp_path, monkeypatch):
    def broken(report, path):
        path.write_bytes(b"partial")
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report_module, "plot_metrics", broken)
    with pytest.raises(RuntimeError):
        write_report(tmp_path, "valid", models(), K_VALUES)
    assert list(tmp_path.iterdir()) == []


def test_write_report_without_plot_and_without_models(tmp_path):
    write_report(tmp_path, "valid", {"only": metrics(0.2, cold=False)}, K_VALUES, plot=False)
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with pytest.raises(ValueError, match="no models"):
        write_report(tmp_path, "valid", {}, K_VALUES)


def test_format_table():
    table = format_table(models(), k=10)
    lines = table.splitlines()
    assert lines[0].split() == ["model", "HR@10", "all", "HR@10", "warm", "HR@10", "cold",
                                "NDCG@10", "all", "NDCG@10", "warm", "NDCG@10", "cold"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["sft", "0.4000", "0.4400", "0.2000", "0.2000", "0.2200", "0.1000"]
    assert lines[3].startswith("popularity") and "0.1235" in lines[3]
    assert lines[-1] == "examples: all=10  warm=8  cold=2"
    assert len({len(line) for line in lines[:4]}) == 1  # aligned columns


def test_format_table_missing_group_and_main_k():
    table = format_table({"m": metrics(0.2, cold=False)}, k=5, groups=("all", "cold"), metrics=("HR",))
    assert table.splitlines()[2].split() == ["m", "0.1000", "-"]
    assert main_k((1, 5, 10, 20)) == 10
    assert main_k((1, 3, 5)) == 5
    assert main_k((20, 50)) == 20


def test_mismatched_counts_are_logged(tmp_path, caplog):
    other = metrics(0.3)
    other["counts"] = {**other["counts"], "all": 9}
    with caplog.at_level("WARNING"):
        write_report(tmp_path, "test", {"a": metrics(0.2), "b": metrics(0.1, cold=False)}, K_VALUES, plot=False)
    assert not caplog.records  # a missing group is not a mismatch
    with caplog.at_level("WARNING"):
        write_report(tmp_path, "test", {"a": metrics(0.2), "b": other}, K_VALUES, plot=False)
    assert "other example counts" in caplog.text
