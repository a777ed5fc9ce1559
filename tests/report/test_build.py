"""ecellm report: paper rows copied exactly, our cells/means/deltas checked against hand values."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import FIXTURES, REPO_ROOT

from ecellm.errors import InputError
from ecellm.report import build_tables, load_runs, make_report, paper_tables
from ecellm.report.commands import collect_inputs

FIX = FIXTURES / "metrics"
BASE, TUNED, STRICT = FIX / "base.json", FIX / "tuned.json", FIX / "strict.json"
ROOT = REPO_ROOT


def _rows(csv_path: Path) -> dict[str, dict[str, str]]:
    with csv_path.open(encoding="utf-8") as fh:
        return {f"{r['kind']}:{r['label']}:{r['mode']}": r for r in csv.DictReader(fh)}


def test_bundled_paper_tables_equal_the_shared_reference() -> None:
    shared = ROOT.parent / "shared" / "reference" / "paper_tables.json"
    if not shared.exists():
        pytest.skip(f"{shared} not present")
    assert paper_tables() == json.loads(shared.read_text(encoding="utf-8"))


def test_before_after_report_files_and_cells(tmp_path: Path) -> None:
    written = make_report(TUNED, tmp_path, label="tuned", baseline=("base", BASE))
    expected = {"tables.md", "tables.json", "manifest.json"} | {
        f"{k}.{ext}" for k in ("table2_ind", "table3_ood", "table4_unseen_ind") for ext in ("csv", "png")
    }
    assert set(written) == expected
    for path in written.values():
        assert path.exists() and path.stat().st_size > 0
    assert written["table2_ind.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    ind = _rows(tmp_path / "table2_ind.csv")
    # paper rows copied exactly, in paper order, mean over the 10 tasks by hand
    gpt = ind["paper:GPT-4 Turbo:paper"]
    assert [float(gpt[t]) for t in ("AVE", "PRP", "PM", "SA", "SR", "MPC", "PSI", "QPR", "AP", "AG")] == [
        0.495,
        0.326,
        0.753,
        0.516,
        0.387,
        0.611,
        0.195,
        0.875,
        0.649,
        0.858,
    ]
    assert float(gpt["mean"]) == pytest.approx(5.665 / 10)
    assert list(ind)[:10] == [f"paper:{name}:paper" for name in paper_tables()["table2_ind"]]
    # ours: base sums to 5.0 and tuned to 5.5 over 10 tasks
    assert float(ind["ours:base:paper"]["mean"]) == pytest.approx(0.5)
    assert float(ind["ours:tuned:paper"]["mean"]) == pytest.approx(0.55)
    # invalid rate: base 4/20 on AVE, pooled 6 invalid over 190 outputs (PM has n=10)
    inv = ind["invalid_rate:base: invalid rate:paper"]
    assert float(inv["AVE"]) == pytest.approx(0.2) and float(inv["PRP"]) == pytest.approx(0.1)
    assert float(inv["mean"]) == pytest.approx(6 / 190)
    # delta row shows the loss on PSI and zeros where equal
    delta = ind["delta:delta: tuned - base:paper"]
    assert float(delta["PSI"]) == pytest.approx(-0.1)
    assert float(delta["AVE"]) == pytest.approx(0.2)
    assert float(delta["PM"]) == 0.0 and float(delta["MPC"]) == 0.0
    assert float(delta["mean"]) == pytest.approx(0.05)

    md = (tmp_path / "tables.md").read_text(encoding="utf-8")
    assert "| -0.100 |" in md and "| +0.200 |" in md
    assert "better on 7 (AVE, PRP, SA, SR, QPR, AP, AG), worse on 1 (PSI), unchanged on 2 (PM, MPC)" in md
    assert "| **tuned** | paper | 0.300 | 0.250 | 0.300 | 0.500 |" in md
    assert "coverage below 100%: AVE 90.0%" in md  # 1 invalid + 1 missing of 20
    assert "tuned [paper] has missing predictions (scored as wrong): AVE 1/20." in md


def test_ood_partial_run_uses_shared_task_mean(tmp_path: Path) -> None:
    make_report(TUNED, tmp_path, label="tuned", baseline=("base", BASE))
    ood = _rows(tmp_path / "table3_ood.csv")
    header = list(next(iter(ood.values())).keys())
    assert header[3:9] == ["AVE", "PRP", "SA", "SR", "AP", "AG"]  # only the 6 OOD tasks
    tuned = ood["ours:tuned:paper"]
    assert tuned["AG"] == "" and tuned["mean"] == ""  # no AG -> no full mean, never a 0
    assert float(tuned["mean_shared"]) == pytest.approx(2.1 / 5)
    assert float(ood["ours:base:paper"]["mean"]) == pytest.approx(2.4 / 6)
    assert float(ood["ours:base:paper"]["mean_shared"]) == pytest.approx(1.6 / 5)
    assert float(ood["paper:GPT-4 Turbo:paper"]["mean_shared"]) == pytest.approx(2.177 / 5)
    assert float(ood["delta:delta: tuned - base:paper"]["mean_shared"]) == pytest.approx(0.1)
    md = (tmp_path / "tables.md").read_text(encoding="utf-8")
    assert "Mean (5 shared)" in md and "tuned [paper] has no score for AG" in md


def test_unseen_table_flattens_paper_variants() -> None:
    tables = {t.spec.key: t for t in build_tables(load_runs(TUNED, label="tuned"))}
    assert set(tables) == {"table2_ind", "table3_ood", "table4_unseen_ind"}
    rows = {r.label: r for r in tables["table4_unseen_ind"].rows}
    single = rows["eCeLLM-M (single-instruction tuning)"]
    assert single.cells["AVE"] == 0.0 and single.cells["AG"] == 0.85
    assert rows["tuned"].cells["PSI"] == 0.5 and rows["tuned"].cells["AVE"] is None
    assert rows["tuned"].mean_shared == pytest.approx(0.475)


def test_strict_rows_are_flagged_against_paper_mode(tmp_path: Path) -> None:
    make_report([("paper-run", BASE), ("strict-run", STRICT)], tmp_path)
    md = (tmp_path / "tables.md").read_text(encoding="utf-8")
    assert "| **strict-run** | strict |" in md
    assert "strict-run is scored in strict mode; the paper rows are paper-mode" in md
    data = json.loads((tmp_path / "tables.json").read_text(encoding="utf-8"))
    assert [r["label"] for r in data["runs"]] == ["paper-run", "strict-run"]


def test_delta_needs_the_same_mode(tmp_path: Path) -> None:
    make_report(STRICT, tmp_path, label="s", baseline=BASE)
    ind = _rows(tmp_path / "table2_ind.csv")
    assert not [k for k in ind if k.startswith("delta:")]
    assert "No delta for s [strict]: base has no strict-mode results." in (tmp_path / "tables.md").read_text()


def test_lenient_results_are_a_separate_mode() -> None:
    data = json.loads(BASE.read_text(encoding="utf-8"))
    for entry in data["results"]:
        entry["lenient"] = True
    run = load_runs(data, label="len")[0]
    assert run.modes("IND_Diverse_Instruction") == ["paper+lenient"]


def test_dict_input_and_stem_collision_labels(tmp_path: Path) -> None:
    data = json.loads(BASE.read_text(encoding="utf-8"))
    runs = load_runs(data, label="mine")
    assert runs[0].label == "mine" and runs[0].cells[("IND_Diverse_Instruction", "paper")]["PM"].n == 10
    for name, src in (("a", BASE), ("b", TUNED)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    runs = load_runs([tmp_path / "a" / "metrics.json", tmp_path / "b" / "metrics.json"])
    assert [r.label for r in runs] == ["a/metrics", "b/metrics"]
    with pytest.raises(InputError, match="used twice"):
        load_runs([("x", BASE), ("x", TUNED)])


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"task": "NOPE", "setting": "IND_Diverse_Instruction", "mode": "paper", "score": 0.1}, "task"),
        ({"task": "PM", "setting": "IND_Diverse_Instruction", "mode": "paper", "score": "high"}, "score"),
        ({"task": "PM", "setting": "IND_Diverse_Instruction", "score": 0.5}, "mode"),
        ({"task": "PM", "setting": "IND_Diverse_Instruction", "mode": "paper"}, "score"),
        (
            {
                "task": "PM",
                "setting": "IND_Diverse_Instruction",
                "mode": "paper",
                "score": 0.5,
                "n": 2,
                "invalid": 3,
            },
            "invalid",
        ),
    ],
)
def test_bad_results_name_file_record_and_field(tmp_path: Path, entry: dict, field: str) -> None:
    good = {"task": "SA", "setting": "IND_Diverse_Instruction", "mode": "paper", "score": 0.5}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"results": [good, entry]}), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_runs(path)
    assert err.value.file == str(path) and err.value.record == "results[1]" and err.value.field == field


def test_collect_inputs_labels() -> None:
    assert collect_inputs([str(BASE), f"t={TUNED}"], [f"b={BASE}"]) == [("b", str(BASE)), ("t", str(TUNED))]
    assert collect_inputs([], [f"x={BASE}"]) == [("x", str(BASE))]
    with pytest.raises(InputError):
        collect_inputs([], [])


def test_cli_writes_report_and_fails_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecellm",
            "report",
            f"tuned={TUNED}",
            "--baseline",
            f"base={BASE}",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "delta: tuned - base" in (out / "tables.md").read_text(encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": [{"task": "PM"}]}', encoding="utf-8")
    out2 = tmp_path / "rep2"
    fail = subprocess.run(
        [sys.executable, "-m", "ecellm", "report", str(TUNED), str(bad), "--out", str(out2)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert fail.returncode == 2
    assert fail.stderr.strip().count("\n") == 0 and "bad.json" in fail.stderr and "setting" in fail.stderr
    assert not out2.exists()  # validated before anything is written
