"""``ecellm evaluate`` refuses a join that failed or is partial (unless told), and an output it
cannot write (before scoring); each refusal is one line with exit code 2 and writes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

from ecellm import cli
from ecellm.data.loaders import load_samples

FX = FIXTURES / "reference_layout"


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["ecellm", "evaluate", "--data", str(FX), "--tasks", "PM", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code or 0
    return code, capsys.readouterr().err


def _preds(tmp_path: Path, ids: list[str]) -> Path:
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"id": i, "prediction": "yes"}) + "\n" for i in ids))
    return p


def _pm_ids() -> list[str]:
    return [s.id for s in load_samples(FX, tasks="PM", splits="test")]


@pytest.mark.parametrize("ids", [["PM-nope-1", "PM-nope-2"], []], ids=["no-id-matches", "empty-file"])
def test_no_matching_prediction_is_an_error(monkeypatch, capsys, tmp_path, ids) -> None:
    out = tmp_path / "m.json"
    for flags in ([], ["--allow-partial"]):  # zero coverage is never what "partial" means
        code, err = _run(monkeypatch, capsys, "-p", str(_preds(tmp_path, ids)), "-o", str(out), *flags)
        assert code == 2 and err.count("\n") == 1, err
        assert "no prediction matches any of the" in err and "p.jsonl" in err
        assert not out.exists()


def test_partial_coverage_needs_allow_partial(monkeypatch, capsys, tmp_path) -> None:
    ids = _pm_ids()
    preds = _preds(tmp_path, ids[:2])
    out = tmp_path / "m.json"
    code, err = _run(monkeypatch, capsys, "-p", str(preds), "-o", str(out))
    assert code == 2 and err.count("\n") == 1 and f"cover 2 of {len(ids)}" in err and "--allow-partial" in err
    assert not out.exists()
    code, _ = _run(monkeypatch, capsys, "-p", str(preds), "-o", str(out), "--allow-partial")
    assert code == 0
    row = json.loads(out.read_text())["results"][0]
    assert row["missing"] == len(ids) - 2 and row["n"] == len(ids)
    code, _ = _run(monkeypatch, capsys, "-p", str(preds), "--only-predicted")
    assert code == 0


@pytest.mark.parametrize("where", ["directory", "read-only", "under-a-file"])
def test_unwritable_output_is_refused_before_scoring(monkeypatch, capsys, tmp_path, where) -> None:
    def no_scoring(*a, **k):
        raise AssertionError("scoring must not start")

    monkeypatch.setattr("ecellm.evaluate.run.evaluate", no_scoring)
    (tmp_path / "file").write_text("x")
    out = {
        "directory": tmp_path,
        "read-only": Path("/sys/m.json"),
        "under-a-file": tmp_path / "file" / "m.json",
    }
    code, err = _run(monkeypatch, capsys, "-p", str(_preds(tmp_path, _pm_ids())), "-o", str(out[where]))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err


def test_a_failing_write_is_one_line(monkeypatch, capsys, tmp_path) -> None:
    def denied(path, obj, **kw):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("ecellm.evaluate.run.write_json", denied)
    out = tmp_path / "m.json"
    code, err = _run(monkeypatch, capsys, "-p", str(_preds(tmp_path, _pm_ids())), "-o", str(out))
    assert code == 2 and err == f"error: {out}: Permission denied\n"
